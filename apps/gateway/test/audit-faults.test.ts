// No audit record is lost when a component fails: the built gateway process
// sends its records through a Redis of its own (persistent, append-only, as
// production Redis for modelgate must be) to a control plane whose Postgres
// is its own too, so both can be stopped and started without touching the
// shared services the other test files use. The gateway's audit spool
// directory is the file's own and survives the gateway's restarts.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { once } from "node:events";
import { copyFile, mkdtemp, readdir, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { startAgent } from "@modelgate/agent";
import { AUDIT_QUEUE, DEFAULT_COMMIT_INTERVAL_MS } from "@modelgate/audit";
import { type RunningControlPlane, startControlPlane } from "@modelgate/control-plane";
import { createDatabaseClient, type Database, migrate } from "@modelgate/db";
import type { RuntimeFixture } from "@modelgate/runtime-fixture";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import {
  type DedicatedPostgres,
  type DedicatedRedis,
  type GatewayProcess,
  startDedicatedPostgres,
  startDedicatedRedis,
  startGatewayProcess,
} from "./processes.js";
import { captureLogger, RUNTIME_API_KEY, type Stack, startStack, waitFor } from "./stack.js";

const PREFIX = `audit-faults-${randomBytes(4).toString("hex")}`;
/**
 * Small, so that a short Redis outage fills it; it bounds the requests in
 * flight too (each holds a place for its record), so it stays above the
 * burst below.
 */
const BUFFER_RECORDS = 16;
/**
 * How long after its request was answered a record may still be only in
 * the gateway's memory while Redis is down (docs/audit.md): the spool's
 * group-commit interval, plus what writing and fsync take on this disk and
 * the gateway's event loop on a busy machine.
 */
const DURABLE_WITHIN_MS = DEFAULT_COMMIT_INTERVAL_MS + 450;

let stack: Stack;
let runtime: RuntimeFixture;
let redis: DedicatedRedis;
let postgres: DedicatedPostgres;
/** The control plane that stores the records (the stack's own keeps configuration on the shared Postgres). */
let recorder: RunningControlPlane | undefined;
let sessionsDb: Database;
let gateway: GatewayProcess;
let stopAgent: (() => Promise<void>) | undefined;
let spoolDir: string;
const recorderAdminToken = randomBytes(24).toString("hex");

async function startRecorder() {
  recorder = await startControlPlane({
    host: "127.0.0.1",
    port: 0,
    ops: { host: "127.0.0.1", port: 0 },
    grpc: { host: "127.0.0.1", port: 0 },
    databaseUrl: postgres.url,
    dbPoolSize: 4,
    redisUrl: redis.url,
    auditQueuePrefix: PREFIX,
    // Retries every few hundred milliseconds, so the test does not wait out minutes of backoff.
    auditRetry: { baseMs: 100, maxMs: 500 },
    // The SIEM test's webhook receiver listens on loopback, which exporters refuse unless allowed.
    exportAllowCidrs: ["127.0.0.0/8"],
    adminToken: recorderAdminToken,
    gatewayToken: randomBytes(24).toString("hex"),
    version: "test",
    logger: captureLogger("recorder").logger,
  });
}

async function startGateway(env: Record<string, string> = {}) {
  gateway = await startGatewayProcess({
    MODELGATE_CONTROL_PLANE_GRPC_URL: `grpc://${stack.controlPlane.grpcAddress}`,
    MODELGATE_GATEWAY_TOKEN: stack.gatewayToken,
    MODELGATE_REDIS_URL: redis.url,
    MODELGATE_AUDIT_QUEUE_PREFIX: PREFIX,
    MODELGATE_AUDIT_BUFFER_RECORDS: String(BUFFER_RECORDS),
    MODELGATE_AUDIT_SPOOL_DIR: spoolDir,
    ...env,
  });
  await stopAgent?.();
  const { token } = await stack.issueAgentToken("llama", `agent-${randomBytes(3).toString("hex")}`);
  const agent = startAgent({
    gateways: [{ address: gateway.tunnel, tls: false }],
    token,
    runtimeUrl: runtime.url,
    runtimeCredential: { kind: "bearer", token: RUNTIME_API_KEY },
    runtimeHealthPath: "/health",
    healthIntervalMs: 500,
    capacity: 16,
    version: "test",
    logger: captureLogger("agent").logger,
    reconnectBackoff: { initialMs: 50, maxMs: 500 },
  });
  stopAgent = () => agent.close();
  await waitFor(async () => (await readiness()).agents > 0, { timeoutMs: 15_000, what: "the agent at the gateway" });
}

async function readiness() {
  const answer = await fetch(`${gateway.ops}/readyz`);
  const body = (await answer.json()) as {
    agents: number;
    audit: { accepting: boolean; spool: { records: number; bytes: number; maxBytes: number } };
  };
  return { httpStatus: answer.status, ...body };
}

/** Sends one request; half stream, every fourth names a model out of reach (a refusal is recorded too). */
async function call(index: number, stream = index % 2 === 0): Promise<{ status: number; sessionId: string }> {
  const model = index % 4 === 3 ? "llama/not-there" : "llama/demo-chat";
  const answer = await fetch(`${gateway.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ model, stream, messages: [{ role: "user", content: `call ${index}` }] }),
  });
  const text = await answer.text();
  // A failure says why in the test's output.
  if (answer.status >= 500) return { status: answer.status, sessionId: text };
  return { status: answer.status, sessionId: answer.headers.get("x-modelgate-session") ?? "" };
}

/** Jobs of the audit queue not yet done. */
async function pendingJobs(): Promise<number> {
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const queue = new Queue(AUDIT_QUEUE, { connection, prefix: PREFIX });
  try {
    const counts = await queue.getJobCounts("waiting", "active", "delayed", "prioritized", "waiting-children");
    return Object.values(counts).reduce((sum, count) => sum + count, 0);
  } finally {
    await queue.close();
    await connection.quit();
  }
}

async function storedCount(ids: readonly string[]): Promise<number> {
  return sessionsDb.session.count({ where: { id: { in: [...ids] } } });
}

async function expectAllStored(ids: readonly string[], what: string) {
  await waitFor(async () => (await storedCount(ids).catch(() => -1)) >= ids.length, { timeoutMs: 30_000, what });
  expect(await storedCount(ids)).toBe(ids.length);
}

beforeAll(async () => {
  spoolDir = path.join(await mkdtemp(path.join(tmpdir(), "modelgate-audit-faults-")), "spool");
  [stack, redis, postgres] = await Promise.all([startStack(), startDedicatedRedis(), startDedicatedPostgres()]);
  await migrate({ databaseUrl: postgres.url });
  sessionsDb = createDatabaseClient({ databaseUrl: postgres.url, maxConnections: 2 });
  runtime = await stack.addConnection("llama", { fixture: { chunkIntervalMs: 5 } });
  const rule = await stack.admin("POST", "/policies", {
    name: "no-bulk-export",
    subjects: { groups: ["everyone"] },
    resources: [{ connection: "llama", models: ["*"] }],
    operations: ["inference"],
    promptRules: [{ pattern: "export every customer", flags: "i", action: "block" }],
  });
  if (rule.status !== 201) throw new Error(JSON.stringify(rule.body));
  await startRecorder();
  await startGateway();
}, 90_000);

// A test that fails while Redis is stopped must not take the next ones down with it.
afterEach(async () => {
  await redis.start();
}, 15_000);

afterAll(async () => {
  // A failed test may have left a service stopped; the gateway's shutdown flush needs Redis.
  await redis?.start().catch(() => undefined);
  await stopAgent?.();
  await gateway?.stop();
  await recorder?.close();
  await sessionsDb?.$disconnect();
  await Promise.all([stack?.close(), redis?.close(), postgres?.close()]);
  if (spoolDir) await rm(path.dirname(spoolDir), { recursive: true, force: true });
}, 60_000);

it("stores exactly the N sessions of a burst made while Postgres was stopped, once it is back", async () => {
  await postgres.stop();
  const burst = await Promise.all(Array.from({ length: 12 }, (_, index) => call(index)));
  // The data path never waits for Postgres.
  expect(burst.filter((result) => result.status >= 500)).toEqual([]);
  expect(burst.map((result) => result.status).sort()).toEqual([...Array(9).fill(200), ...Array(3).fill(403)]);
  await postgres.start();
  const ids = burst.map((result) => result.sessionId);
  await expectAllStored(ids, "the burst's sessions after Postgres returned");
  expect(await sessionsDb.session.count()).toBe(ids.length);
}, 60_000);

it("loses nothing across a Redis restart: records waiting in Redis and records the gateway held meanwhile", async () => {
  const before = await sessionsDb.session.count();
  // No worker: records wait in Redis, where only its append-only file keeps them across the restart.
  await recorder?.close();
  recorder = undefined;
  const waiting = await Promise.all(Array.from({ length: 5 }, (_, index) => call(index)));
  await redis.stop();
  const held: { status: number; sessionId: string }[] = [];
  for (let index = 0; index < 5; index++) held.push(await call(index));
  expect(held.every((result) => result.status === 200 || result.status === 403)).toBe(true);
  await redis.start();
  await startRecorder();
  const ids = [...waiting, ...held].map((result) => result.sessionId);
  await expectAllStored(ids, "the sessions from before and during the Redis restart");
  expect(await sessionsDb.session.count()).toBe(before + ids.length);
}, 60_000);

it("keeps the records of a gateway killed with SIGKILL while Redis is down, and stores each once after a restart", async () => {
  const before = await sessionsDb.session.count();
  await redis.stop();
  const total = 300;
  const answered: { sessionId: string; status: number; at: number }[] = [];
  let next = 0;
  // Eight clients at once (the buffer's 16 places also bound the requests in flight).
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < total) {
        const result = await call(next++);
        answered.push({ ...result, at: performance.now() });
      }
    }),
  );
  const killedAt = performance.now();
  await gateway.kill();
  expect(answered.filter((result) => result.status !== 200 && result.status !== 403)).toEqual([]);
  // A copy of what the killed gateway left, to replay a second time below.
  const backup = await mkdtemp(path.join(tmpdir(), "modelgate-spool-copy-"));
  const left = (await readdir(spoolDir)).filter((name) => name.endsWith(".spool"));
  expect(left).toHaveLength(1);
  for (const name of left) await copyFile(path.join(spoolDir, name), path.join(backup, name));

  // The next gateway adopts the dead one's records while Redis is still down.
  await startGateway();
  const adopted = (await readiness()).audit.spool.records;
  await redis.start();
  const all = answered.map((result) => result.sessionId);
  await waitFor(async () => (await storedCount(all).catch(() => -1)) >= adopted, {
    timeoutMs: 30_000,
    what: "the adopted records to be stored",
  });
  const stored = new Set(
    (await sessionsDb.session.findMany({ where: { id: { in: all } }, select: { id: true } })).map((row) => row.id),
  );
  // 300 of 300, less at most the records of requests answered within the
  // commit window before the kill; each stored once.
  const lost = answered.filter((result) => !stored.has(result.sessionId));
  expect(lost.filter((result) => result.at < killedAt - DURABLE_WITHIN_MS)).toEqual([]);
  expect(stored.size).toBe(adopted);
  expect(await sessionsDb.session.count()).toBe(before + adopted);

  // Replaying the same file again (a gateway killed while handing it over) stores nothing twice.
  await waitFor(async () => (await readiness()).audit.spool.records === 0, { what: "the spool to be handed over" });
  await gateway.stop();
  for (const name of left) await copyFile(path.join(backup, name), path.join(spoolDir, name));
  await rm(backup, { recursive: true, force: true });
  await startGateway();
  await waitFor(async () => (await readiness()).audit.spool.records === 0, { what: "the copy to be handed over" });
  expect((await readdir(spoolDir)).filter((name) => name.endsWith(".spool"))).toEqual([]);
  // Handed over means in the queue (a batch the queue still knows is not added twice); once
  // the queue is idle, every replayed record has been through the recorder.
  await waitFor(async () => (await pendingJobs()) === 0, { timeoutMs: 30_000, what: "the audit queue to be idle" });
  expect(await sessionsDb.session.count()).toBe(before + adopted);
}, 60_000);

it("refuses requests with 503 audit_unavailable once its spool is full, and serves again when Redis returns", async () => {
  // A 64 KiB spool fills after a few dozen records.
  await gateway.stop();
  await startGateway({ MODELGATE_AUDIT_SPOOL_MAX_BYTES: String(64 * 1024) });
  await redis.stop();
  const served: string[] = [];
  let refused: Response | undefined;
  for (let index = 0; index < 1_000; index++) {
    const answer = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "llama/demo-chat", messages: [{ role: "user", content: `held ${index}` }] }),
    });
    if (answer.status === 503) {
      refused = answer;
      break;
    }
    expect(answer.status).toBe(200);
    await answer.arrayBuffer();
    served.push(answer.headers.get("x-modelgate-session") ?? "");
  }
  // Served until the spool was full; the next one is refused, with a reason.
  expect(served.length).toBeGreaterThan(BUFFER_RECORDS);
  if (!refused) throw new Error("no request was refused");
  expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("audit_unavailable");
  const notReady = await readiness();
  expect(notReady.httpStatus).toBe(503);
  expect(notReady.audit.accepting).toBe(false);
  expect(notReady.audit.spool.bytes).toBeGreaterThanOrEqual(64 * 1024);

  await redis.start();
  await waitFor(async () => (await readiness()).httpStatus === 200, {
    timeoutMs: 15_000,
    what: "the gateway to accept",
  });
  await expectAllStored(served, "the sessions held in the gateway's spool");
  expect((await call(0)).status).toBe(200);
}, 60_000);

it("sends signed session events and one alert for three blocked prompts in a minute to a webhook", async () => {
  const secret = randomBytes(32).toString("hex");
  const received: { headers: Record<string, string | string[] | undefined>; body: string }[] = [];
  const receiver: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => {
      body += chunk;
    });
    req.on("end", () => {
      received.push({ headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  receiver.listen(0, "127.0.0.1");
  await once(receiver, "listening");
  const recorderApi = async (path: string, body: unknown) => {
    const answer = await fetch(`${recorder?.url}/api/v1${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${recorderAdminToken}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    expect(answer.status).toBe(201);
  };
  try {
    await recorderApi("/exporters", {
      name: "siem",
      kind: "webhook",
      url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/events`,
      secret,
      types: ["session", "alert"],
      decisions: ["blocked"],
    });
    await recorderApi("/alert-rules", {
      name: "repeated-blocks",
      kind: "blocked_repeated",
      threshold: 3,
      windowSeconds: 60,
      decisions: ["blocked"],
    });
    const attempts: string[] = [];
    for (let index = 0; index < 3; index++) {
      const answer = await fetch(`${gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({
          model: "llama/demo-chat",
          messages: [{ role: "user", content: `attempt ${index}: export every customer` }],
        }),
      });
      expect(answer.status).toBe(403);
      await answer.arrayBuffer();
      attempts.push(answer.headers.get("x-modelgate-session") ?? "");
    }
    const events = () => received.map((delivery) => JSON.parse(delivery.body));
    await waitFor(() => events().some((event) => event.type === "alert"), {
      timeoutMs: 30_000,
      what: "the alert at the webhook",
    });
    await waitFor(() => events().filter((event) => event.type === "session").length >= 3, {
      timeoutMs: 30_000,
      what: "the three session events at the webhook",
    });

    // Every delivery is signed over its timestamp and raw body with the exporter's secret.
    for (const delivery of received) {
      const signature = String(delivery.headers["x-modelgate-signature"]);
      const [, timestamp, digest] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(signature) ?? [];
      const expected = createHmac("sha256", secret).update(`${timestamp}.${delivery.body}`).digest();
      expect(timingSafeEqual(Buffer.from(digest ?? "", "hex"), expected)).toBe(true);
    }
    const sessionEvents = events().filter((event) => event.type === "session");
    expect(sessionEvents.map((event) => event.session.id).sort()).toEqual([...attempts].sort());
    expect(sessionEvents.every((event) => event.session.decision === "blocked")).toBe(true);
    // Bodies never leave in events.
    expect(received.some((delivery) => delivery.body.includes("export every customer"))).toBe(false);
    const alerts = events().filter((event) => event.type === "alert");
    expect(alerts).toHaveLength(1);
    expect(alerts[0].alert).toMatchObject({ kind: "blocked_repeated", ruleName: "repeated-blocks" });
    expect([...alerts[0].alert.sessionIds].sort()).toEqual([...attempts].sort());
  } finally {
    receiver.close();
  }
}, 60_000);

it("finishes in-flight requests on SIGTERM and hands over their records before exiting", async () => {
  const chunks = 10;
  const inFlight = Array.from({ length: 4 }, async (_, index) => {
    const answer = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${stack.apiKey}`,
        "content-type": "application/json",
        "x-fixture-chunks": String(chunks),
        "x-fixture-interval-ms": "100",
      },
      body: JSON.stringify({
        model: "llama/demo-chat",
        stream: true,
        messages: [{ role: "user", content: `${index}` }],
      }),
    });
    const text = await answer.text();
    return { status: answer.status, sessionId: answer.headers.get("x-modelgate-session") ?? "", text };
  });
  // The four streams are running at the runtime.
  await waitFor(() => runtime.inFlight() >= 4, { what: "the four streams to reach the runtime" });
  const exitCode = await gateway.stop();
  const results = await Promise.all(inFlight);
  expect(exitCode).toBe(0);
  for (const result of results) {
    expect(result.status).toBe(200);
    expect(result.text.trimEnd().endsWith("data: [DONE]")).toBe(true);
  }
  await expectAllStored(
    results.map((result) => result.sessionId),
    "the records of the requests in flight at SIGTERM",
  );
  expect(gateway.lines.some((line) => line.includes("could not be handed over"))).toBe(false);
}, 60_000);
