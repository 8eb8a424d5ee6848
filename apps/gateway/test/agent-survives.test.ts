// An agent outlives its gateways: with the only gateway stopped for 20 s the
// built agent process keeps running (live, not ready) and keeps trying, and
// once the gateway is back on its address the agent serves again within 2 s
// of the gateway's readiness. Before, an agent exited with status 0 when its
// gateways went away, or came back only after a reconnect delay of up to 15 s.
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { AUDIT_QUEUE } from "@modelgate/audit";
import type { RuntimeFixture } from "@modelgate/runtime-fixture";
import { Queue } from "bullmq";
import {
  type AgentProcess,
  freePort,
  type GatewayProcess,
  startAgentProcess,
  startGatewayProcess,
} from "./processes.js";
import { RUNTIME_API_KEY, type Stack, startStack, waitFor } from "./stack.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
/** This file's audit queue on the shared Redis, emptied at the end (nothing consumes it here). */
const AUDIT_PREFIX = `agent-survives-${randomBytes(4).toString("hex")}`;
const OUTAGE_MS = 20_000;

let stack: Stack;
let runtime: RuntimeFixture;
let gateway: GatewayProcess | undefined;
let agent: AgentProcess | undefined;
let gatewayEnv: Record<string, string>;

beforeAll(async () => {
  stack = await startStack();
  runtime = await stack.addConnection("llama");
  // Fixed ports: the gateway comes back where the agent knows it.
  const [port, tunnelPort, opsPort] = [await freePort(), await freePort(), await freePort()];
  gatewayEnv = {
    MODELGATE_GATEWAY_PORT: String(port),
    MODELGATE_TUNNEL_PORT: String(tunnelPort),
    MODELGATE_GATEWAY_OPS_PORT: String(opsPort),
    MODELGATE_CONTROL_PLANE_GRPC_URL: `grpc://${stack.controlPlane.grpcAddress}`,
    MODELGATE_GATEWAY_TOKEN: stack.gatewayToken,
    MODELGATE_REDIS_URL: REDIS_URL,
    MODELGATE_AUDIT_QUEUE_PREFIX: AUDIT_PREFIX,
  };
  gateway = await startGatewayProcess(gatewayEnv);
  const { token } = await stack.issueAgentToken("llama", "survivor");
  // Production defaults: no reconnect setting is shortened for the test.
  agent = await startAgentProcess({
    MODELGATE_GATEWAY_URLS: `grpc://${gateway.tunnel}`,
    MODELGATE_AGENT_TOKEN: token,
    MODELGATE_RUNTIME_URL: runtime.url,
    MODELGATE_RUNTIME_API_KEY: RUNTIME_API_KEY,
  });
}, 60_000);

afterAll(async () => {
  await agent?.kill();
  await gateway?.stop();
  await stack?.close();
  const queue = new Queue(AUDIT_QUEUE, { connection: { url: REDIS_URL }, prefix: AUDIT_PREFIX });
  await queue.obliterate({ force: true });
  await queue.close();
});

async function ask(url: string): Promise<number> {
  const response = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "llama/demo-chat", messages: [{ role: "user", content: "still there?" }] }),
  });
  await response.arrayBuffer();
  return response.status;
}

async function probe(url: string): Promise<number> {
  return fetch(url).then(
    async (response) => {
      await response.arrayBuffer();
      return response.status;
    },
    () => 0,
  );
}

it(
  "keeps running while its only gateway is away for 20 s, and serves within 2 s of its return",
  async () => {
    const first = gateway as GatewayProcess;
    const survivor = agent as AgentProcess;
    await waitFor(async () => (await probe(`${survivor.ops}/readyz`)) === 200, {
      timeoutMs: 10_000,
      what: "the agent's tunnel",
    });
    expect(await ask(first.url)).toBe(200);

    expect(await first.stop()).toBe(0);
    gateway = undefined;
    const away = Date.now();
    // Every second of the outage: still running, live, and saying it is not ready.
    while (Date.now() - away < OUTAGE_MS) {
      await sleep(1_000);
      expect(survivor.running).toBe(true);
      expect(await probe(`${survivor.ops}/livez`)).toBe(200);
      expect(await probe(`${survivor.ops}/readyz`)).toBe(503);
    }

    gateway = await startGatewayProcess(gatewayEnv);
    const back = gateway;
    await waitFor(async () => (await probe(`${back.ops}/readyz`)) === 200, {
      timeoutMs: 10_000,
      what: "the restarted gateway's readiness",
    });
    const ready = performance.now();
    // The first request the agent serves, asked as often as a client would.
    let status = 0;
    while (status !== 200 && performance.now() - ready < 10_000) {
      status = await ask(back.url);
      if (status !== 200) await sleep(20);
    }
    const servedAfterMs = Math.round(performance.now() - ready);
    process.stdout.write(`agent served again ${servedAfterMs} ms after the gateway was ready\n`);
    expect(status).toBe(200);
    expect(servedAfterMs).toBeLessThan(2_000);
    expect(survivor.running).toBe(true);

    const logs = survivor.lines.map((line) => JSON.parse(line) as { level: string; msg: string });
    // The gateway said Goodbye before it went: its leaving was expected, not an error.
    expect(logs.map((line) => line.msg)).toContain("gateway closed the tunnel after its goodbye; reconnecting");
    expect(logs.filter((line) => line.level === "error" || line.level === "fatal")).toEqual([]);
    // Tried all along, logged once at warn, then quietly.
    const warnings = logs.filter((line) => line.level === "warn");
    expect(warnings.length).toBeGreaterThan(0);
    expect(warnings.length).toBeLessThan(5);
  },
  OUTAGE_MS + 40_000,
);
