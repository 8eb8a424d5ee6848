// The audit queue against a real Redis, with an in-memory store standing in
// for Postgres (the Postgres store is tested in apps/control-plane).
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { createLogger } from "@modelgate/core";
import { Queue } from "bullmq";
import {
  AUDIT_QUEUE,
  type AuditRecord,
  type AuditStore,
  type AuditWorker,
  auditBackoffDelay,
  createAuditQueue,
  type StoreOutcome,
  startAuditWorker,
} from "../src/index.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

function record(sessionId: string, overrides: Partial<AuditRecord> = {}): AuditRecord {
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
    ...overrides,
  };
}

/** Remembers what it stored, like the Postgres store: insert-if-absent by session id. */
class MemoryStore implements AuditStore {
  readonly sessions = new Map<string, AuditRecord>();
  failuresLeft = 0;
  attempts = 0;
  async write(value: AuditRecord): Promise<StoreOutcome> {
    this.attempts += 1;
    if (this.failuresLeft > 0) {
      this.failuresLeft -= 1;
      throw new Error("connect ECONNREFUSED 127.0.0.1:5432");
    }
    if (this.sessions.has(value.sessionId)) return "duplicate";
    this.sessions.set(value.sessionId, value);
    return "stored";
  }
}

async function until(condition: () => Promise<boolean> | boolean, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe("audit queue", () => {
  const prefix = `mgtest-audit-${randomBytes(4).toString("hex")}`;
  const lines: string[] = [];
  const logger = createLogger({
    name: "audit-test",
    level: "debug",
    destination: new Writable({
      write(chunk, _encoding, callback) {
        lines.push(...String(chunk).split("\n").filter(Boolean));
        callback();
      },
    }),
  });
  let inspect: Queue;
  const producer = createAuditQueue({ connection: REDIS_URL, prefix });
  const store = new MemoryStore();
  let worker: AuditWorker | undefined;

  beforeAll(() => {
    inspect = new Queue(AUDIT_QUEUE, { connection: { url: REDIS_URL }, prefix });
  });
  afterAll(async () => {
    await worker?.close();
    await producer.close();
    await inspect.obliterate({ force: true });
    await inspect.close();
  });

  it("keeps one job when the same record is sent twice", async () => {
    await producer.enqueue(record("01900000-0000-7000-8000-00000000aa01"));
    await producer.enqueue(record("01900000-0000-7000-8000-00000000aa01", { latencyMs: 5 }));
    const jobs = await inspect.getJobs(["waiting", "prioritized", "delayed", "active"]);
    expect(jobs.map((job) => job.id)).toEqual(["01900000-0000-7000-8000-00000000aa01"]);
    // The first send wins: a job's data is never replaced by a re-send.
    expect(jobs[0]?.data.latencyMs).toBe(1000);
    expect(jobs[0]?.opts).toMatchObject({ attempts: 2000, removeOnFail: false });
  });

  it("a worker stores queued records, refuses an invalid one for good and keeps it", async () => {
    await producer.enqueue({ ...record("bad-1"), decision: "maybe" } as unknown as AuditRecord);
    await producer.enqueue(record("01900000-0000-7000-8000-00000000aa02"));
    worker = await startAuditWorker({ connection: REDIS_URL, store, logger, prefix, retry: { baseMs: 50 } });
    await until(() => store.sessions.size === 2);
    expect([...store.sessions.keys()].sort()).toEqual([
      "01900000-0000-7000-8000-00000000aa01",
      "01900000-0000-7000-8000-00000000aa02",
    ]);

    await until(async () => (await inspect.getFailedCount()) === 1);
    const failed = await inspect.getJob("bad-1");
    expect(failed?.attemptsMade).toBe(1);
    expect(failed?.failedReason).toContain("invalid audit record: decision");
    expect(lines.some((line) => line.includes("audit record refused") && line.includes("bad-1"))).toBe(true);
  });

  it("retries a record the store could not take (Postgres down) until it lands, once", async () => {
    store.failuresLeft = 3;
    const attemptsBefore = store.attempts;
    await producer.enqueue(record("01900000-0000-7000-8000-00000000aa03"));
    await until(() => store.sessions.has("01900000-0000-7000-8000-00000000aa03"));
    expect(store.attempts - attemptsBefore).toBe(4);
    const job = await inspect.getJob("01900000-0000-7000-8000-00000000aa03");
    expect(await job?.getState()).toBe("completed");
    expect(job?.returnvalue).toBe("stored");
    expect(lines.filter((line) => line.includes("not stored yet")).length).toBe(3);
  });

  it("a record sent again after it completed is not added again", async () => {
    const attemptsBefore = store.attempts;
    await producer.enqueue(record("01900000-0000-7000-8000-00000000aa03"));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(store.attempts).toBe(attemptsBefore);
  });

  it("backs off exponentially up to a cap, with jitter", () => {
    const limits = { baseMs: 1000, maxMs: 60_000 };
    for (const [attempt, nominal] of [
      [1, 1000],
      [2, 2000],
      [5, 16_000],
      [7, 60_000],
      [500, 60_000],
    ] as const) {
      const delay = auditBackoffDelay(attempt, limits);
      expect(delay).toBeGreaterThanOrEqual(nominal * 0.8);
      expect(delay).toBeLessThanOrEqual(nominal * 1.2);
    }
  });
});
