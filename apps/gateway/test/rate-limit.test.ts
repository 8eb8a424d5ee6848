// Rate limits are per subject per policy and shared by every gateway
// replica through Redis: two gateway processes (the built gateway) in front
// of one agent must together let through exactly the policy's budget.
import { randomBytes } from "node:crypto";
import { startAgent } from "@modelgate/agent";
import { AUDIT_QUEUE } from "@modelgate/audit";
import { Queue } from "bullmq";
import { type GatewayProcess, startGatewayProcess } from "./processes.js";
import { captureLogger, RUNTIME_API_KEY, type Stack, startStack, waitFor } from "./stack.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const BUDGET = 5;
/** This file's audit queue on the shared Redis, emptied at the end (nothing consumes it here). */
const AUDIT_PREFIX = `rate-limit-test-${randomBytes(4).toString("hex")}`;

let stack: Stack;
const gateways: GatewayProcess[] = [];
let stopAgent: (() => Promise<void>) | undefined;

beforeAll(async () => {
  stack = await startStack({}, { grantEveryone: false });
  const runtime = await stack.addConnection("llama");
  const created = await stack.admin("POST", "/policies", {
    name: "five-a-minute",
    subjects: { groups: ["everyone"] },
    resources: [{ connection: "llama" }],
    operations: ["inference"],
    limits: { requestsPerMinute: BUDGET },
  });
  expect(created.status).toBe(201);
  const env = {
    MODELGATE_CONTROL_PLANE_GRPC_URL: `grpc://${stack.controlPlane.grpcAddress}`,
    MODELGATE_GATEWAY_TOKEN: stack.gatewayToken,
    MODELGATE_REDIS_URL: REDIS_URL,
    MODELGATE_AUDIT_QUEUE_PREFIX: AUDIT_PREFIX,
  };
  gateways.push(await startGatewayProcess(env), await startGatewayProcess(env));
  const { token } = await stack.issueAgentToken("llama", "shared-agent");
  const agent = startAgent({
    gateways: gateways.map((gateway) => ({ address: gateway.tunnel, tls: false })),
    token,
    runtimeUrl: runtime.url,
    runtimeCredential: { kind: "bearer", token: RUNTIME_API_KEY },
    runtimeHealthPath: "/health",
    healthIntervalMs: 500,
    capacity: 4,
    version: "test",
    logger: captureLogger("agent").logger,
    reconnectBackoff: { initialMs: 50, maxMs: 500 },
  });
  stopAgent = () => agent.close();
  for (const gateway of gateways) {
    await waitFor(
      async () => {
        const ready = (await fetch(`${gateway.ops}/readyz`).then((response) => response.json())) as {
          status: string;
          agents: number;
          policies: number;
        };
        return ready.status === "ready" && ready.agents > 0 && ready.policies === 1;
      },
      { timeoutMs: 10_000, what: "the gateway to hold the policy and the agent" },
    );
  }
}, 60_000);

afterAll(async () => {
  await stopAgent?.();
  for (const gateway of gateways) await gateway.stop();
  await stack?.close();
  const queue = new Queue(AUDIT_QUEUE, { connection: { url: REDIS_URL }, prefix: AUDIT_PREFIX });
  await queue.obliterate({ force: true });
  await queue.close();
});

it("two gateway processes sharing Redis together allow exactly the policy's budget", async () => {
  const statuses: number[] = [];
  const retryAfter: string[] = [];
  for (let i = 0; i < BUDGET * 2; i++) {
    const gateway = gateways[i % 2] as GatewayProcess;
    const response = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "llama/demo-chat", messages: [{ role: "user", content: `call ${i}` }] }),
    });
    statuses.push(response.status);
    const body = (await response.json()) as { error: { code: string } };
    if (response.status === 429) {
      expect(body.error.code).toBe("rate_limited");
      retryAfter.push(response.headers.get("retry-after") ?? "");
    }
  }
  expect(statuses.filter((status) => status === 200)).toHaveLength(BUDGET);
  expect(statuses.filter((status) => status === 429)).toHaveLength(BUDGET);
  // Both gateways refused some: the budget is one, not one per replica.
  expect(statuses.slice(BUDGET).every((status) => status === 429)).toBe(true);
  for (const value of retryAfter) expect(Number(value)).toBeGreaterThanOrEqual(1);
});
