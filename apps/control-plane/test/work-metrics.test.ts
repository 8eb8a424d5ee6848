// The control plane's own metrics of its background work, on the ops
// listener: queue depth and age read from Redis at scrape time, the audit
// worker's throughput, chain verifications and SIEM deliveries.
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { AUDIT_JOB_NAME, AUDIT_JOB_OPTIONS, AUDIT_QUEUE, type AuditRecord, createAuditQueue } from "@modelgate/audit";
import { createLogger, generateSecret, uuidv7 } from "@modelgate/core";
import { createTestDatabase, type TestDatabase } from "@modelgate/db/testing";
import { Queue } from "bullmq";
import { Registry } from "prom-client";
import { EXPORT_QUEUE } from "../src/features/exporters/delivery.js";
import { watchQueues } from "../src/ops/queues.js";
import { createWorkMetrics } from "../src/ops/work-metrics.js";
import { type RunningControlPlane, startControlPlane } from "../src/server.js";

const REDIS_URL = process.env.REDIS_URL?.trim() || "redis://127.0.0.1:6379";

function record(): AuditRecord {
  const now = Date.now();
  return {
    version: 1,
    sessionId: uuidv7(),
    gatewayId: "gw-1",
    receivedAt: new Date(now).toISOString(),
    finishedAt: new Date(now + 5).toISOString(),
    subject: { id: "alice", email: "alice@example.com", groups: ["data-science"], authMethod: "oidc" },
    clientIp: "10.0.0.7",
    connection: "llama",
    model: "llama-3.1-8b-instruct",
    endpoint: "/v1/chat/completions",
    method: "POST",
    decision: "allowed",
    policyIds: [],
    capped: [],
    responseStatus: 200,
    latencyMs: 5,
    request: { text: "hello", truncated: false, bytes: 5 },
    response: { text: "hi", truncated: false, bytes: 2 },
    events: [],
  };
}

/** The value of one sample in Prometheus text, or undefined. */
function sample(text: string, name: string, labels = ""): number | undefined {
  const escaped = `${name}${labels ? `{${labels}}` : ""}`.replace(/[{}"]/g, (c) => `\\${c}`);
  const match = new RegExp(`^${escaped} ([0-9.e+-]+)$`, "m").exec(text);
  return match ? Number(match[1]) : undefined;
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("queue metrics read at scrape time", () => {
  const prefix = `mgtest-work-${randomBytes(4).toString("hex")}`;
  afterAll(async () => {
    for (const name of ["modelgate-audit", EXPORT_QUEUE]) {
      const queue = new Queue(name, { connection: { url: REDIS_URL }, prefix });
      await queue.obliterate({ force: true });
      await queue.close();
    }
  });

  it("reports each queue's waiting jobs and how long the oldest has waited", async () => {
    const registry = new Registry();
    const metrics = createWorkMetrics(registry);
    const watched = watchQueues(metrics, REDIS_URL, prefix);
    // No worker drains this prefix: the records wait.
    const producer = createAuditQueue({ connection: REDIS_URL, prefix });
    try {
      await producer.enqueue(record());
      await producer.enqueue(record());
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      const text = await registry.metrics();
      expect(sample(text, "modelgate_control_plane_queue_jobs", 'queue="audit",state="waiting"')).toBe(2);
      expect(sample(text, "modelgate_control_plane_queue_jobs", 'queue="export",state="waiting"')).toBe(0);
      expect(sample(text, "modelgate_control_plane_queue_readable", 'queue="audit"')).toBe(1);
      expect(
        sample(text, "modelgate_control_plane_queue_oldest_waiting_seconds", 'queue="audit"'),
      ).toBeGreaterThanOrEqual(1);
      expect(sample(text, "modelgate_control_plane_queue_oldest_waiting_seconds", 'queue="export"')).toBe(0);
    } finally {
      await producer.close();
      await watched.close();
    }
  });

  it("answers the scrape while Redis is away, saying the queues cannot be read", async () => {
    const registry = new Registry();
    const metrics = createWorkMetrics(registry);
    // A port nothing listens on.
    const nothing = createServer();
    nothing.listen(0, "127.0.0.1");
    await once(nothing, "listening");
    const { port } = nothing.address() as AddressInfo;
    await new Promise((resolve) => nothing.close(resolve));
    const watched = watchQueues(metrics, `redis://127.0.0.1:${port}`, prefix);
    try {
      const text = await registry.metrics();
      expect(sample(text, "modelgate_control_plane_queue_readable", 'queue="audit"')).toBe(0);
      expect(sample(text, "modelgate_control_plane_queue_jobs", 'queue="audit",state="waiting"')).toBeUndefined();
    } finally {
      await watched.close();
    }
  });
});

describe("a control plane's work, counted", () => {
  let database: TestDatabase;
  let controlPlane: RunningControlPlane;
  let receiver: Server;
  let received = 0;
  const prefix = `mgtest-work-${randomBytes(4).toString("hex")}`;
  const adminToken = generateSecret("mgadmin_");

  beforeAll(async () => {
    database = await createTestDatabase();
    receiver = createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        received += 1;
        res.writeHead(200).end();
      });
    });
    receiver.listen(0, "127.0.0.1");
    await once(receiver, "listening");
    controlPlane = await startControlPlane({
      host: "127.0.0.1",
      port: 0,
      ops: { host: "127.0.0.1", port: 0 },
      processMetrics: false,
      grpc: { host: "127.0.0.1", port: 0 },
      databaseUrl: database.url,
      dbPoolSize: 4,
      redisUrl: REDIS_URL,
      auditQueuePrefix: prefix,
      auditRetry: { baseMs: 50, maxMs: 200 },
      exportAllowCidrs: ["127.0.0.0/8"],
      adminToken,
      gatewayToken: generateSecret("mggateway_"),
      version: "test",
      logger: createLogger({ name: "control-plane", level: "silent" }),
    });
  });
  afterAll(async () => {
    await controlPlane?.close();
    await new Promise((resolve) => receiver?.close(resolve));
    for (const name of ["modelgate-audit", EXPORT_QUEUE]) {
      const queue = new Queue(name, { connection: { url: REDIS_URL }, prefix });
      await queue.obliterate({ force: true });
      await queue.close();
    }
    await database?.drop();
  });

  const metrics = async () => (await fetch(`${controlPlane.opsUrl}/metrics`)).text();
  const api = (path: string, init: RequestInit = {}) =>
    fetch(`${controlPlane.url}/api/v1${path}`, {
      ...init,
      headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    });

  it("counts stored records, deliveries to exporters and chain verifications", async () => {
    const { port } = receiver.address() as AddressInfo;
    const created = await api("/exporters", {
      method: "POST",
      body: JSON.stringify({ name: "siem", kind: "webhook", url: `http://127.0.0.1:${port}/in`, types: ["session"] }),
    });
    expect(created.status).toBe(201);

    const producer = createAuditQueue({ connection: REDIS_URL, prefix });
    const first = record();
    try {
      await producer.enqueue(first);
      await producer.enqueue(record());
    } finally {
      await producer.close();
    }
    await until(
      async () => sample(await metrics(), "modelgate_control_plane_audit_records_total", 'outcome="stored"') === 2,
      "both records to be stored",
    );
    // The first again, as a gateway's re-send after its job left the queue: stored once, counted as a duplicate.
    const resend = new Queue(AUDIT_QUEUE, { connection: { url: REDIS_URL }, prefix });
    try {
      await resend.add(AUDIT_JOB_NAME, first, { ...AUDIT_JOB_OPTIONS, jobId: `resend-${first.sessionId}` });
    } finally {
      await resend.close();
    }
    await until(async () => {
      const text = await metrics();
      const stored = sample(text, "modelgate_control_plane_audit_records_total", 'outcome="stored"') ?? 0;
      const duplicate = sample(text, "modelgate_control_plane_audit_records_total", 'outcome="duplicate"') ?? 0;
      return stored + duplicate === 3;
    }, "the three records to be taken");
    await until(async () => received >= 2, "the exporter to receive both sessions");
    await until(
      async () =>
        sample(
          await metrics(),
          "modelgate_control_plane_export_deliveries_total",
          'kind="webhook",outcome="delivered"',
        ) === 2,
      "the deliveries to be counted",
    );

    let text = await metrics();
    expect(sample(text, "modelgate_control_plane_audit_records_total", 'outcome="stored"')).toBe(2);
    expect(sample(text, "modelgate_control_plane_audit_records_total", 'outcome="duplicate"')).toBe(1);
    expect(sample(text, "modelgate_control_plane_chain_broken")).toBe(0);

    expect((await api("/audit/verify")).status).toBe(200);
    text = await metrics();
    expect(sample(text, "modelgate_control_plane_chain_verifications_total", 'result="ok"')).toBe(1);
    expect(sample(text, "modelgate_control_plane_chain_verified_sessions_total")).toBe(2);
    expect(sample(text, "modelgate_control_plane_chain_broken")).toBe(0);
    expect(sample(text, "modelgate_control_plane_queue_readable", 'queue="export"')).toBe(1);
    expect(sample(text, "modelgate_control_plane_queue_jobs", 'queue="audit",state="waiting"')).toBe(0);

    // A stored session changed behind the chain's back: the next verification says so.
    await controlPlane.db.session.update({ where: { id: first.sessionId }, data: { model: "another-model" } });
    const report = (await (await api("/audit/verify")).json()) as { status: string };
    expect(report.status).toBe("broken");
    text = await metrics();
    expect(sample(text, "modelgate_control_plane_chain_verifications_total", 'result="broken"')).toBe(1);
    expect(sample(text, "modelgate_control_plane_chain_broken")).toBe(1);
  });
});
