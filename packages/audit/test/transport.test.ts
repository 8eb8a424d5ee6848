// The gateway's queue transport against a real Redis: one job per batch,
// keyed by its session ids, and a fast failure (not a hang) when Redis is
// away, so the sink's bounded buffer is the only place records wait.
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer } from "node:net";
import { Writable } from "node:stream";
import { createLogger } from "@modelgate/core";
import { Queue, UnrecoverableError } from "bullmq";
import {
  AUDIT_BATCH_JOB_NAME,
  AUDIT_QUEUE,
  type AuditRecord,
  type AuditStore,
  batchJobId,
  createQueueTransport,
  processAuditJob,
} from "../src/index.js";

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

it("adds one job per batch, keyed by its session ids, and none twice for the same batch", async () => {
  const transport = createQueueTransport({ url: REDIS_URL, prefix: PREFIX });
  await connected(transport, record("s-0"));
  const batch = [record("s-1"), record("s-2"), record("s-3")];
  await transport.send(batch);
  await transport.send(batch);
  await transport.close();
  const jobs = (await inspector.getJobs(["waiting"])).filter((job) => job.id !== batchJobId([record("s-0")]));
  expect(jobs).toHaveLength(1);
  expect(jobs[0]?.id).toBe(batchJobId(batch));
  expect(jobs[0]?.name).toBe(AUDIT_BATCH_JOB_NAME);
  expect(jobs[0]?.data).toEqual({ records: batch });
});

describe("a batch job at the worker", () => {
  const logger = createLogger({
    name: "batch-test",
    level: "fatal",
    destination: new Writable({ write: (_chunk, _encoding, callback) => callback() }),
  });
  function memoryStore() {
    const stored = new Set<string>();
    const store: AuditStore = {
      async write(item) {
        if (stored.has(item.sessionId)) return "duplicate";
        stored.add(item.sessionId);
        return "stored";
      },
    };
    return { store, stored };
  }

  it("stores every record of the batch, and nothing twice when it comes again", async () => {
    const { store, stored } = memoryStore();
    const job = { id: "b-1", name: AUDIT_BATCH_JOB_NAME, data: { records: [record("a"), record("b")] } };
    expect(await processAuditJob(job, store, logger)).toEqual(["stored", "stored"]);
    expect(await processAuditJob(job, store, logger)).toEqual(["duplicate", "duplicate"]);
    expect([...stored]).toEqual(["a", "b"]);
  });

  it("stores the valid records of a batch and fails it for good for the invalid one", async () => {
    const { store, stored } = memoryStore();
    const broken = { ...record("c"), decision: "maybe" };
    const job = { id: "b-2", name: AUDIT_BATCH_JOB_NAME, data: { records: [record("a"), broken, record("b")] } };
    await expect(processAuditJob(job, store, logger)).rejects.toBeInstanceOf(UnrecoverableError);
    expect([...stored].sort()).toEqual(["a", "b"]);
  });

  it("refuses a batch without records", async () => {
    const { store } = memoryStore();
    const job = { id: "b-3", name: AUDIT_BATCH_JOB_NAME, data: { records: "none" } };
    await expect(processAuditJob(job, store, logger)).rejects.toBeInstanceOf(UnrecoverableError);
  });
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
