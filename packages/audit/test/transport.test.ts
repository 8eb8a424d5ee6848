// The gateway's queue transport against a real Redis: one job per record,
// keyed by session id, and a fast failure (not a hang) when Redis is away,
// so the sink's bounded buffer is the only place records wait.
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer } from "node:net";
import { Queue } from "bullmq";
import { AUDIT_QUEUE, type AuditRecord, createQueueTransport } from "../src/index.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const PREFIX = `audit-transport-test-${randomBytes(4).toString("hex")}`;

function record(sessionId: string): AuditRecord {
  return {
    version: 1,
    sessionId,
    gatewayId: "gw-1",
    receivedAt: "2026-01-01T10:00:00.000Z",
    finishedAt: "2026-01-01T10:00:01.000Z",
    endpoint: "/v1/chat/completions",
    method: "POST",
    decision: "allowed",
    policyIds: [],
    capped: [],
    latencyMs: 1000,
    events: [],
  };
}

const inspector = new Queue(AUDIT_QUEUE, { connection: { url: REDIS_URL }, prefix: PREFIX });

afterAll(async () => {
  await inspector.obliterate({ force: true });
  await inspector.close();
});

async function connected(transport: ReturnType<typeof createQueueTransport>, probe: AuditRecord) {
  // The transport refuses to send until its connection is up; the first
  // sends may be refused while it connects.
  const deadline = Date.now() + 5_000;
  for (;;) {
    try {
      await transport.send([probe]);
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

it("adds one job per record, with the session id as job id, and none twice", async () => {
  const transport = createQueueTransport({ url: REDIS_URL, prefix: PREFIX });
  await connected(transport, record("s-1"));
  await transport.send([record("s-1"), record("s-2"), record("s-3")]);
  await transport.send([record("s-2")]);
  await transport.close();
  const jobs = await inspector.getJobs(["waiting"]);
  expect(jobs.map((job) => job.id).sort()).toEqual(["s-1", "s-2", "s-3"]);
  expect(jobs.find((job) => job.id === "s-2")?.data).toEqual(record("s-2"));
});

it("fails a send while Redis cannot be reached instead of queueing it in memory", async () => {
  // A port nothing listens on.
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  const transport = createQueueTransport({ url: `redis://127.0.0.1:${port}`, prefix: PREFIX });
  await expect(transport.send([record("never")])).rejects.toThrow(/Redis is not connected/);
  await transport.close();
});
