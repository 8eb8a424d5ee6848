// The worker's onStored hook against a real Redis, with an in-memory store:
// it runs after every successful store, duplicates included, and a failing
// hook fails the job so that the retry runs it again (at least once).
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { createLogger } from "@modelgate/core";
import { Queue } from "bullmq";
import {
  AUDIT_QUEUE,
  type AuditRecord,
  type AuditStore,
  type AuditWorker,
  createAuditQueue,
  processAuditJob,
  type StoreOutcome,
  startAuditWorker,
} from "../src/index.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

function record(sessionId: string): AuditRecord {
  return {
    version: 1,
    sessionId,
    gatewayId: "gw-1",
    receivedAt: "2026-01-01T10:00:00.000Z",
    finishedAt: "2026-01-01T10:00:01.000Z",
    endpoint: "/v1/chat/completions",
    method: "POST",
    decision: "blocked",
    policyIds: [],
    capped: [],
    latencyMs: 1000,
    events: [],
  };
}

class MemoryStore implements AuditStore {
  readonly sessions = new Map<string, AuditRecord>();
  async write(value: AuditRecord): Promise<StoreOutcome> {
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

const logger = createLogger({
  name: "audit-hook-test",
  level: "info",
  destination: new Writable({ write: (_chunk, _encoding, callback) => callback() }),
});

describe("audit worker onStored hook", () => {
  const prefix = `mgtest-audit-hook-${randomBytes(4).toString("hex")}`;
  const producer = createAuditQueue({ connection: REDIS_URL, prefix });
  const store = new MemoryStore();
  const calls: { sessionId: string; outcome: StoreOutcome }[] = [];
  let failuresLeft = 0;
  let worker: AuditWorker;
  let inspect: Queue;

  beforeAll(async () => {
    inspect = new Queue(AUDIT_QUEUE, { connection: { url: REDIS_URL }, prefix });
    worker = await startAuditWorker({
      connection: REDIS_URL,
      store,
      logger,
      prefix,
      retry: { baseMs: 50, maxMs: 100 },
      onStored: async (stored, outcome) => {
        calls.push({ sessionId: stored.sessionId, outcome });
        if (failuresLeft > 0) {
          failuresLeft -= 1;
          throw new Error("export queue unreachable");
        }
      },
    });
  });
  afterAll(async () => {
    await worker.close();
    await producer.close();
    await inspect.obliterate({ force: true });
    await inspect.close();
  });

  it("runs after a record is stored, with the validated record", async () => {
    await producer.enqueue(record("hook-1"));
    await until(() => calls.some((call) => call.sessionId === "hook-1"));
    expect(calls.filter((call) => call.sessionId === "hook-1")).toEqual([{ sessionId: "hook-1", outcome: "stored" }]);
  });

  it("a failing hook fails the job; the retry finds a duplicate and runs the hook again", async () => {
    failuresLeft = 2;
    await producer.enqueue(record("hook-2"));
    await until(async () => (await inspect.getJob("hook-2"))?.returnvalue === "duplicate");
    expect(calls.filter((call) => call.sessionId === "hook-2").map((call) => call.outcome)).toEqual([
      "stored",
      "duplicate",
      "duplicate",
    ]);
    expect(store.sessions.size).toBe(2);
  });

  it("runs for a duplicate processed directly, and not for an invalid record", async () => {
    const seen: StoreOutcome[] = [];
    const hook = async (_record: AuditRecord, outcome: StoreOutcome) => {
      seen.push(outcome);
    };
    expect(await processAuditJob({ id: "hook-1", data: record("hook-1") }, store, logger, hook)).toBe("duplicate");
    await expect(
      processAuditJob({ id: "bad", data: { ...record("bad"), latencyMs: -1 } }, store, logger, hook),
    ).rejects.toThrow("invalid audit record");
    expect(seen).toEqual(["duplicate"]);
  });
});
