// The ops listeners of the data path: the gateway's and the agent's /livez,
// /readyz and /metrics are served on a port of their own, never on the
// gateway's public port, where connection names would reach any caller.
import { startAgent, startAgentOps } from "@modelgate/agent";
import { createStoreTransport } from "@modelgate/audit";
import { generateSecret, type OpsServer } from "@modelgate/core";
import { type GatewayOptions, startGateway } from "@modelgate/gateway";
import type { RuntimeFixture } from "@modelgate/runtime-fixture";
import OpenAI from "openai";
import { freePort } from "./processes.js";
import { captureLogger, RUNTIME_API_KEY, type Stack, startStack, waitFor } from "./stack.js";

const OPS_PATHS = ["/livez", "/readyz", "/metrics"];

let stack: Stack;
let runtime: RuntimeFixture;

beforeAll(async () => {
  stack = await startStack();
  runtime = await stack.addConnection("llama");
  await stack.addAgent("llama", runtime);
});

afterAll(async () => {
  await stack?.close();
});

async function readyz(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${url}/readyz`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** A gateway of this file's stack, on free ports, with `overrides`. */
function gatewayOptions(overrides: Partial<GatewayOptions>): GatewayOptions {
  return {
    host: "127.0.0.1",
    port: 0,
    ops: { host: "127.0.0.1", port: 0 },
    tunnelHost: "127.0.0.1",
    tunnelPort: 0,
    controlPlane: { address: stack.controlPlane.grpcAddress, token: stack.gatewayToken },
    maxBodyBytes: 1024 * 1024,
    upstreamTimeoutMs: 5_000,
    queueWaitMs: 0,
    agentWaitMs: 0,
    audit: {
      transport: createStoreTransport({ store: stack.controlPlane.auditStore, logger: captureLogger("audit").logger }),
    },
    version: "test",
    logger: captureLogger("gateway").logger,
    processMetrics: false,
    ...overrides,
  };
}

describe("gateway", () => {
  it("serves none of the ops endpoints on the public port, to anonymous and authenticated callers alike", async () => {
    for (const path of OPS_PATHS) {
      const anonymous = await fetch(`${stack.gateway.url}${path}`);
      const anonymousText = await anonymous.text();
      expect({ path, status: anonymous.status }).toEqual({ path, status: 401 });
      const authenticated = await fetch(`${stack.gateway.url}${path}`, {
        headers: { authorization: `Bearer ${stack.apiKey}` },
      });
      const authenticatedText = await authenticated.text();
      expect({ path, status: authenticated.status, code: JSON.parse(authenticatedText).error.code }).toEqual({
        path,
        status: 404,
        code: "not_found",
      });
      for (const text of [anonymousText, authenticatedText]) {
        expect(text).not.toContain("modelgate_");
        expect(text).not.toContain("llama");
      }
    }
    // Liveness stays where load balancers look for it.
    expect((await fetch(`${stack.gateway.url}/healthz`)).status).toBe(200);
  });

  it("serves them on the ops listener", async () => {
    expect(stack.gateway.opsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(stack.gateway.opsUrl).not.toBe(stack.gateway.url);
    expect((await fetch(`${stack.gateway.opsUrl}/livez`)).status).toBe(200);
    expect(await readyz(stack.gateway.opsUrl)).toMatchObject({
      status: 200,
      body: { status: "ready", draining: false, agents: 1, config: { source: "live" } },
    });
    const metrics = await (await fetch(`${stack.gateway.opsUrl}/metrics`)).text();
    expect(metrics).toMatch(/^modelgate_agents_connected\{connection="llama"\} 1$/m);
    expect((await fetch(`${stack.gateway.opsUrl}/v1/models`)).status).toBe(404);
  });

  it("is not ready before its first configuration arrives", async () => {
    const gateway = await startGateway(
      // Nobody listens there: the configuration never comes.
      gatewayOptions({ controlPlane: { address: `127.0.0.1:${await freePort()}`, token: stack.gatewayToken } }),
    );
    try {
      expect(await readyz(gateway.opsUrl)).toMatchObject({
        status: 503,
        body: { status: "not_ready", config: { source: "none" } },
      });
      expect((await fetch(`${gateway.opsUrl}/livez`)).status).toBe(200);
    } finally {
      await gateway.close(0);
    }
    // The ops listener closes with the gateway.
    await expect(fetch(`${gateway.opsUrl}/livez`)).rejects.toThrow();
  });

  it("refuses to start when its ops port is taken", async () => {
    const taken = Number(new URL(stack.gateway.opsUrl).port);
    await expect(startGateway(gatewayOptions({ ops: { host: "127.0.0.1", port: taken } }))).rejects.toMatchObject({
      code: "EADDRINUSE",
    });
  });
});

describe("agent", () => {
  const agentOptions = (gatewayAddress: string, token: string, runtimeUrl: string) => ({
    gateways: [{ address: gatewayAddress, tls: false }],
    token,
    runtimeUrl,
    runtimeCredential: { kind: "bearer" as const, token: RUNTIME_API_KEY },
    runtimeHealthPath: "/health",
    healthIntervalMs: 200,
    capacity: 4,
    version: "test",
    logger: captureLogger("agent").logger,
    reconnectBackoff: { initialMs: 50, maxMs: 200 },
    processMetrics: false,
  });

  it("is not ready while no gateway can be reached", async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const agent = startAgent(agentOptions(address, generateSecret("mgagent_"), runtime.url));
    let ops: OpsServer | undefined;
    try {
      ops = await startAgentOps(agent, { host: "127.0.0.1", port: 0, logger: captureLogger("agent").logger });
      expect(await readyz(ops.url)).toMatchObject({
        status: 503,
        body: { status: "not_ready", tunnels: [{ gateway: address, state: "connecting" }] },
      });
      expect((await fetch(`${ops.url}/livez`)).status).toBe(200);
      const metrics = await (await fetch(`${ops.url}/metrics`)).text();
      expect(metrics).toContain(`modelgate_agent_tunnel_state{gateway="${address}",state="connecting"} 1`);
      expect(metrics).toContain(`modelgate_agent_tunnel_state{gateway="${address}",state="connected"} 0`);
    } finally {
      await agent.close();
      await ops?.close();
    }
  });

  it("is ready once its tunnel is up, counts its requests by outcome, and not ready while draining", async () => {
    const other = await stack.addConnection("other");
    const { token } = await stack.issueAgentToken("other", "ops-agent");
    const agent = startAgent(agentOptions(stack.gateway.tunnelAddress, token, other.url));
    const ops = await startAgentOps(agent, { host: "127.0.0.1", port: 0, logger: captureLogger("agent").logger });
    try {
      await agent.connected();
      await waitFor(async () => (await readyz(ops.url)).body.runtime === "healthy", { what: "the runtime's health" });
      expect(await readyz(ops.url)).toMatchObject({
        status: 200,
        body: {
          status: "ready",
          tunnels: [{ gateway: stack.gateway.tunnelAddress, state: "connected" }],
          runtime: "healthy",
          capacity: 4,
        },
      });

      const client = new OpenAI({ baseURL: `${stack.gateway.url}/v1`, apiKey: stack.apiKey, maxRetries: 0 });
      await client.chat.completions.create({ model: "other/demo-chat", messages: [{ role: "user", content: "hi" }] });
      const metrics = await (await fetch(`${ops.url}/metrics`)).text();
      expect(metrics).toMatch(/^modelgate_agent_requests_total\{outcome="completed"\} 1$/m);
      expect(metrics).toMatch(/^modelgate_agent_requests_total\{outcome="runtime_unavailable"\} 0$/m);
      expect(metrics).toMatch(/^modelgate_agent_requests_in_flight 0$/m);
      expect(metrics).toMatch(/^modelgate_agent_runtime_healthy 1$/m);

      // Draining (or, with nothing in flight, already closed): no longer ready.
      const drained = agent.drain(5_000);
      const draining = await readyz(ops.url);
      expect(draining.status).toBe(503);
      expect(["draining", "closed"]).toContain((draining.body.tunnels as { state: string }[])[0]?.state);
      expect(await drained).toBe(true);
    } finally {
      await agent.close();
      await ops.close();
    }
  });

  it("as a process, logs its ops address and serves it there", async () => {
    const local = await stack.addConnection("local");
    const agent = await stack.addAgent("local", local, { process: true });
    let opsUrl: string | undefined;
    await waitFor(
      () => {
        const line = agent.logs.find((candidate) => candidate.includes('"msg":"agent ops listening"'));
        opsUrl = line ? (JSON.parse(line) as { ops: string }).ops : undefined;
        return opsUrl !== undefined;
      },
      { timeoutMs: 10_000, what: "the agent's ops listening line" },
    );
    expect(opsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await readyz(opsUrl as string)).toMatchObject({ status: 200, body: { status: "ready" } });
    await agent.stop();
  });
});
