// Rate limits are per subject per policy and shared by every gateway
// replica through Redis: two gateway processes (the built gateway) in front
// of one agent must together let through exactly the policy's budget.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { startAgent } from "@modelgate/agent";
import { captureLogger, RUNTIME_API_KEY, type Stack, startStack, waitFor } from "./stack.js";

const GATEWAY_MAIN = fileURLToPath(new URL("../dist/main.js", import.meta.url));
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const BUDGET = 5;

interface GatewayProcess {
  url: string;
  tunnel: string;
  child: ChildProcess;
  lines: string[];
}

async function startGatewayProcess(stack: Stack): Promise<GatewayProcess> {
  const child = spawn(process.execPath, [GATEWAY_MAIN], {
    env: {
      PATH: process.env.PATH,
      MODELGATE_GATEWAY_PORT: "0",
      MODELGATE_TUNNEL_PORT: "0",
      MODELGATE_CONTROL_PLANE_GRPC_URL: `grpc://${stack.controlPlane.grpcAddress}`,
      MODELGATE_GATEWAY_TOKEN: stack.gatewayToken,
      MODELGATE_REDIS_URL: REDIS_URL,
      LOG_LEVEL: "info",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  child.stdout?.on("data", (chunk) => lines.push(...String(chunk).split("\n").filter(Boolean)));
  child.stderr?.on("data", (chunk) => lines.push(...String(chunk).split("\n").filter(Boolean)));
  let listening: { url: string; tunnel: string } | undefined;
  await waitFor(
    () => {
      for (const line of lines) {
        if (!line.includes('"gateway listening"')) continue;
        listening = JSON.parse(line);
      }
      if (child.exitCode !== null) throw new Error(`gateway exited: ${lines.join("\n")}`);
      return listening !== undefined;
    },
    { timeoutMs: 15_000, what: "the gateway process to listen" },
  );
  const { url, tunnel } = listening as { url: string; tunnel: string };
  return { url, tunnel, child, lines };
}

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
  gateways.push(await startGatewayProcess(stack), await startGatewayProcess(stack));
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
        const ready = (await fetch(`${gateway.url}/readyz`).then((response) => response.json())) as {
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
  for (const gateway of gateways) {
    gateway.child.kill("SIGTERM");
    if (gateway.child.exitCode === null) await once(gateway.child, "exit");
  }
  await stack?.close();
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
