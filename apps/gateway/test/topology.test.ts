// modelgate as it runs in production, every part its own process on
// loopback: the control plane (with its audit worker), two gateway replicas
// behind a load balancer, three agents of one connection dialling both
// replicas, and two runtimes. Steady streaming and non-streaming load goes
// through the load balancer with the `openai` SDK while each agent is
// restarted in turn (drained), one agent is killed with SIGKILL, one gateway
// is restarted (SIGTERM) and later the other is killed with SIGKILL.
//
// Nothing fails but requests running through a process at the moment it was
// SIGKILLed, and those end with a clean error, never a truncated success;
// every answered request has its audit session; agents are back on a
// restarted gateway within 2 s of its readiness; the load spreads over all
// three agents.
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { AUDIT_QUEUE } from "@modelgate/audit";
import { generateSecret } from "@modelgate/core";
import { createTestDatabase, type TestDatabase } from "@modelgate/db/testing";
import { type RuntimeFixture, startRuntimeFixture } from "@modelgate/runtime-fixture";
import { Queue } from "bullmq";
import OpenAI, { APIError } from "openai";
import { type LoadBalancer, startLoadBalancer } from "./load-balancer.js";
import {
  type AgentProcess,
  type ControlPlaneProcess,
  freePort,
  type GatewayProcess,
  startAgentProcess,
  startControlPlaneProcess,
  startGatewayProcess,
} from "./processes.js";
import { RUNTIME_API_KEY, waitFor } from "./stack.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const PREFIX = `topology-${randomBytes(4).toString("hex")}`;
/** The runtimes' deterministic answer: a success must carry exactly this. */
const ANSWER = "alpha bravo charlie delta echo foxtrot golf hotel india juliet";
/** Concurrent callers; well within the agents' capacity, so the restarts, not the load, are under test. */
const WORKERS = 4;
/** Generous: a record is in transit for milliseconds, on a loaded machine for longer. */
const RECORD_IN_TRANSIT_MS = 500;

interface Outcome {
  stream: boolean;
  start: number;
  end: number;
  ok: boolean;
  /** The gateway that answered (the load balancer says). */
  backend?: string | null;
  sessionId?: string | null;
  content?: string | null | undefined;
  finish?: string | null | undefined;
  error?: string;
}

interface Kill {
  what: "agent" | "gateway";
  /** When the signal was sent. */
  at: number;
  /**
   * When the test saw the process gone. Until its sockets close with it, the
   * kernel still accepts connections to a dying process: a request that
   * starts in between is running through it too.
   */
  diedAt: number;
}

let database: TestDatabase;
let controlPlane: ControlPlaneProcess;
const runtimes: RuntimeFixture[] = [];
const gateways: GatewayProcess[] = [];
const gatewayEnvs: Record<string, string>[] = [];
const agents: AgentProcess[] = [];
const agentEnvs: Record<string, string>[] = [];
const agentIds: string[] = [];
let balancer: LoadBalancer;
let apiKey: string;
const adminToken = generateSecret("mgadmin_");
const gatewayToken = generateSecret("mggateway_");

// biome-ignore lint/suspicious/noExplicitAny: the test reads parsed JSON of several shapes
async function admin(method: string, path: string, body?: unknown): Promise<any> {
  const response = await fetch(`${controlPlane.url}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const parsed = await response.json();
  if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(parsed)}`);
  return parsed;
}

async function readyz(ops: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return fetch(`${ops}/readyz`).then(
    async (response) => ({ status: response.status, body: (await response.json()) as Record<string, unknown> }),
    () => ({ status: 0, body: {} }),
  );
}

/** The agent is registered with both gateways. */
async function bothTunnelsUp(agent: AgentProcess): Promise<boolean> {
  const { body } = await readyz(agent.ops);
  const tunnels = (body.tunnels ?? []) as { state: string }[];
  return tunnels.length === 2 && tunnels.every((tunnel) => tunnel.state === "connected");
}

async function startGateway(index: number): Promise<GatewayProcess> {
  const gateway = await startGatewayProcess(gatewayEnvs[index] as Record<string, string>);
  gateways[index] = gateway;
  return gateway;
}

/** Restarts a gateway on its ports; resolves with how long after its readiness all three agents were back. */
async function restartGateway(index: number): Promise<number> {
  const gateway = await startGateway(index);
  let ready = 0;
  await waitFor(
    async () => {
      const { status, body } = await readyz(gateway.ops);
      if (status === 200 && ready === 0) ready = performance.now();
      return status === 200 && body.agents === 3;
    },
    { timeoutMs: 15_000, what: `gateway ${index} to be ready with all three agents` },
  );
  return Math.round(performance.now() - ready);
}

async function startAgent(index: number): Promise<AgentProcess> {
  const agent = await startAgentProcess(agentEnvs[index] as Record<string, string>);
  agents[index] = agent;
  await waitFor(() => bothTunnelsUp(agent), { timeoutMs: 15_000, what: `agent ${index} on both gateways` });
  return agent;
}

beforeAll(async () => {
  database = await createTestDatabase();
  controlPlane = await startControlPlaneProcess({
    DATABASE_URL: database.url,
    MODELGATE_ADMIN_TOKEN: adminToken,
    MODELGATE_GATEWAY_TOKEN: gatewayToken,
    MODELGATE_REDIS_URL: REDIS_URL,
    MODELGATE_AUDIT_QUEUE_PREFIX: PREFIX,
    MODELGATE_DB_POOL_SIZE: "4",
  });
  await admin("POST", "/connections", { name: "llama", protocol: "openai", models: ["demo-chat"] });
  apiKey = (await admin("POST", "/api-keys", { name: "load", groups: ["load"] })).key;
  await admin("POST", "/policies", {
    name: "load",
    subjects: { groups: ["load"] },
    resources: [{ connection: "llama", models: ["*"] }],
    operations: ["inference"],
  });

  // Two runtimes: agents 0 and 1 serve the first, agent 2 the second.
  for (let index = 0; index < 2; index++) {
    runtimes.push(
      await startRuntimeFixture({
        requiredBearer: RUNTIME_API_KEY,
        models: ["demo-chat"],
        completionText: ANSWER,
        streamChunks: 10,
        chunkIntervalMs: 40,
      }),
    );
  }

  for (let index = 0; index < 2; index++) {
    const [port, tunnelPort, opsPort] = [await freePort(), await freePort(), await freePort()];
    gatewayEnvs.push({
      MODELGATE_GATEWAY_PORT: String(port),
      MODELGATE_TUNNEL_PORT: String(tunnelPort),
      MODELGATE_GATEWAY_OPS_PORT: String(opsPort),
      MODELGATE_CONTROL_PLANE_GRPC_URL: `grpc://${controlPlane.grpc}`,
      MODELGATE_GATEWAY_TOKEN: gatewayToken,
      MODELGATE_REDIS_URL: REDIS_URL,
      MODELGATE_AUDIT_QUEUE_PREFIX: PREFIX,
      // Long enough for the load balancer (checking every 100 ms) to move clients away.
      MODELGATE_SHUTDOWN_DELAY_MS: "1000",
      // A replica that has just started holds requests until its agents arrive.
      MODELGATE_AGENT_WAIT_MS: "3000",
    });
    await startGateway(index);
  }
  for (let index = 0; index < 3; index++) {
    const { id, token } = await admin("POST", "/connections/llama/agents", { name: `gpu-${index}` });
    agentIds.push(id);
    agentEnvs.push({
      MODELGATE_GATEWAY_URLS: gateways.map((gateway) => `grpc://${gateway.tunnel}`).join(","),
      MODELGATE_AGENT_TOKEN: token,
      MODELGATE_RUNTIME_URL: (runtimes[index === 2 ? 1 : 0] as RuntimeFixture).url,
      MODELGATE_RUNTIME_API_KEY: RUNTIME_API_KEY,
      MODELGATE_AGENT_CAPACITY: "8",
      MODELGATE_DRAIN_TIMEOUT_MS: "10000",
    });
  }
  // Every gateway has the agents' tokens before they dial it.
  await waitFor(
    async () =>
      (await Promise.all(gateways.map(async (gateway) => (await readyz(gateway.ops)).status))).every(
        (status) => status === 200,
      ),
    { timeoutMs: 15_000, what: "both gateways ready" },
  );
  await sleep(300);
  for (let index = 0; index < 3; index++) await startAgent(index);
  balancer = await startLoadBalancer(
    gateways.map((gateway, index) => ({ name: `gateway-${index}`, url: gateway.url, ops: gateway.ops })),
  );
}, 90_000);

afterAll(async () => {
  await balancer?.close();
  for (const agent of agents) await agent?.kill();
  for (const gateway of gateways) await gateway?.stop();
  await controlPlane?.stop();
  for (const runtime of runtimes) await runtime.close();
  await database?.drop();
  const queue = new Queue(AUDIT_QUEUE, { connection: { url: REDIS_URL }, prefix: PREFIX });
  await queue.obliterate({ force: true });
  await queue.close();
});

function describeError(error: unknown): string {
  if (error instanceof APIError) return `${error.constructor.name} ${error.status ?? "-"}: ${error.message}`;
  return `${(error as Error).constructor.name}: ${(error as Error).message}`;
}

async function call(client: OpenAI, stream: boolean): Promise<Outcome> {
  const start = performance.now();
  const request = {
    model: "llama/demo-chat",
    messages: [{ role: "user" as const, content: "load" }],
  };
  // Non-streamed answers take a moment too, so some are running at every kill.
  const options = { headers: { "x-fixture-delay-ms": stream ? "0" : "150" } };
  try {
    if (stream) {
      const { data, response } = await client.chat.completions
        .create({ ...request, stream: true }, options)
        .withResponse();
      let content = "";
      let finish: string | null | undefined;
      for await (const chunk of data) {
        content += chunk.choices[0]?.delta?.content ?? "";
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
      const sessionId = response.headers.get("x-modelgate-session");
      const backend = response.headers.get("x-load-balancer-backend");
      return { stream, start, end: performance.now(), ok: true, backend, sessionId, content, finish };
    }
    const { data, response } = await client.chat.completions.create(request, options).withResponse();
    const sessionId = response.headers.get("x-modelgate-session");
    const choice = data.choices[0];
    return {
      stream,
      start,
      end: performance.now(),
      ok: true,
      backend: response.headers.get("x-load-balancer-backend"),
      sessionId,
      content: choice?.message.content,
      finish: choice?.finish_reason,
    };
  } catch (error) {
    return { stream, start, end: performance.now(), ok: false, error: describeError(error) };
  }
}

/** Every audit session the control plane has stored, by id. */
async function sessions(): Promise<Map<string, { agentId: string | null; responseStatus: number | null }>> {
  const found = new Map<string, { agentId: string | null; responseStatus: number | null }>();
  let cursor: string | null = null;
  do {
    const page: {
      items: { id: string; agentId: string | null; responseStatus: number | null }[];
      nextCursor: string | null;
    } = await admin("GET", `/sessions?limit=500${cursor ? `&cursor=${cursor}` : ""}`);
    for (const item of page.items) found.set(item.id, item);
    cursor = page.nextCursor;
  } while (cursor);
  return found;
}

it("loses nothing but what runs through a SIGKILLed process, while every agent and gateway is restarted", async () => {
  const began = performance.now();
  const client = new OpenAI({ baseURL: `${balancer.url}/v1`, apiKey, maxRetries: 0, timeout: 30_000 });
  const outcomes: Outcome[] = [];
  let loading = true;
  const workers = Array.from({ length: WORKERS }, async (_, worker) => {
    for (let n = 0; loading; n++) outcomes.push(await call(client, (n + worker) % 2 === 0));
  });
  const kills: Kill[] = [];
  const phase = async (ms: number) => sleep(ms);
  /** What happened when: printed with any request that failed unexplained. */
  const timeline: { at: number; what: string }[] = [];
  const mark = (what: string) => timeline.push({ at: Math.round(performance.now()), what });

  await phase(1_500);
  // Rolling restart: each agent drains (SIGTERM) and a new one takes its place.
  for (let index = 0; index < 3; index++) {
    mark(`agent ${index} SIGTERM`);
    expect(await (agents[index] as AgentProcess).stop()).toBe(0);
    mark(`agent ${index} exited`);
    await startAgent(index);
    mark(`agent ${index} back`);
    await phase(500);
  }
  // One agent dies without a drain.
  const agentKilledAt = performance.now();
  mark("agent 0 SIGKILL");
  await (agents[0] as AgentProcess).kill();
  kills.push({ what: "agent", at: agentKilledAt, diedAt: performance.now() });
  await startAgent(0);
  mark("agent 0 back");
  await phase(1_000);
  // One gateway restarts (SIGTERM: unready, then drained).
  mark("gateway 0 SIGTERM");
  expect(await (gateways[0] as GatewayProcess).stop()).toBe(0);
  mark("gateway 0 exited");
  const firstBackMs = await restartGateway(0);
  mark("gateway 0 back with its agents");
  await phase(1_500);
  // The other dies without a drain.
  const gatewayKilledAt = performance.now();
  mark("gateway 1 SIGKILL");
  (gateways[1] as GatewayProcess).child.kill("SIGKILL");
  await new Promise((resolve) => (gateways[1] as GatewayProcess).child.once("exit", resolve));
  kills.push({ what: "gateway", at: gatewayKilledAt, diedAt: performance.now() });
  const secondBackMs = await restartGateway(1);
  mark("gateway 1 back with its agents");
  await phase(1_500);
  loading = false;
  await Promise.all(workers);
  const loadMs = Math.round(performance.now() - began);

  // Only requests running through a SIGKILLed process failed, each with the error that process's death explains.
  const unexplained = outcomes.filter(
    (outcome) =>
      !outcome.ok &&
      !kills.some(
        (kill) =>
          outcome.start < kill.diedAt &&
          outcome.end >= kill.at &&
          (kill.what === "agent"
            ? /the agent disconnected during the request/.test(outcome.error ?? "")
            : /Connection error|terminated|socket|ECONNRESET/i.test(outcome.error ?? "")),
      ),
  );
  expect(
    unexplained.map((outcome) => ({
      ...outcome,
      during: timeline.filter((event) => event.at <= outcome.end + 50).slice(-2),
    })),
  ).toEqual([]);
  // No success is a truncated answer.
  const answered = outcomes.filter((outcome) => outcome.ok);
  expect(answered.filter((outcome) => outcome.content !== ANSWER || outcome.finish !== "stop")).toEqual([]);
  expect(answered.length).toBeGreaterThan(50);
  expect(answered.some((outcome) => outcome.stream)).toBe(true);
  expect(answered.some((outcome) => !outcome.stream)).toBe(true);

  // Every answered request has its audit session. One exception, a known
  // limit (docs/audit.md): a gateway submits a record just after the
  // answer's last byte and holds it in memory until Redis has it, so one
  // SIGKILLed in that moment takes the batch in flight with it. Allowed only
  // for answers of the killed gateway that ended at most
  // RECORD_IN_TRANSIT_MS before its kill, and counted (none so far).
  const gatewayKill = kills.find((kill) => kill.what === "gateway") as Kill;
  const inTransit = (outcome: Outcome) =>
    outcome.backend === "gateway-1" && Math.abs(gatewayKill.at - outcome.end) < RECORD_IN_TRANSIT_MS;
  let stored = new Map<string, { agentId: string | null; responseStatus: number | null }>();
  const missing = () => answered.filter((outcome) => !outcome.sessionId || !stored.has(outcome.sessionId));
  await waitFor(
    async () => {
      stored = await sessions();
      return missing().every(inTransit);
    },
    { timeoutMs: 20_000, what: "every answered request's audit session" },
  ).catch(() => undefined);
  expect(missing().filter((outcome) => !inTransit(outcome))).toEqual([]);
  const lostInTransit = missing().length;

  // The load spread over all three agents, and so over both runtimes.
  const perAgent = agentIds.map(
    (id) => answered.filter((outcome) => stored.get(outcome.sessionId as string)?.agentId === id).length,
  );
  for (const count of perAgent) expect(count).toBeGreaterThan(answered.length / 10);
  const atRuntime = runtimes.map(
    (runtime) => runtime.requests.filter((request) => request.path === "/v1/chat/completions").length,
  );
  expect(atRuntime[1]).toBeGreaterThan(answered.length / 10);

  // Agents were back on each restarted gateway within 2 s of its readiness.
  expect(firstBackMs).toBeLessThan(2_000);
  expect(secondBackMs).toBeLessThan(2_000);

  process.stdout.write(
    `topology: ${outcomes.length} requests over ${loadMs} ms, ${outcomes.length - answered.length} failed ` +
      `(SIGKILLs), ${lostInTransit} records lost in transit, per agent ${perAgent.join("/")}, ` +
      `agents back on gateway 0 after ${firstBackMs} ms, gateway 1 after ${secondBackMs} ms\n`,
  );
}, 100_000);
