import type { Logger } from "@modelgate/core";
import { type Job, UnrecoverableError, Worker } from "bullmq";
import { AUDIT_BATCH_JOB_NAME, AUDIT_QUEUE, ownConnection, type RedisConnection } from "./queue.js";
import { type AuditRecord, auditRecordSchema } from "./record.js";

/** What storing one record did: a re-delivered record is a `duplicate`, never a second session. */
export type StoreOutcome = "stored" | "duplicate";

/**
 * Where records land. The control plane implements it on Postgres
 * (concurrent writes grouped into one transaction per batch, insert-if-absent
 * by session id, each session linked into the hash chain); this package
 * stays free of the database client, and tests can pass a fake.
 */
export interface AuditStore {
  /** Stores the session, its content and its events atomically; idempotent by `sessionId`. */
  write(record: AuditRecord): Promise<StoreOutcome>;
}

/**
 * Runs after a record is in the store, for a record just stored and for a
 * duplicate alike: an earlier attempt may have stored the record and then
 * failed in the hook, and its retry finds a duplicate but must still run the
 * hook, so that nothing it does is lost (at least once). A hook that throws
 * fails the job, which is retried; it must therefore be idempotent, and
 * quick: the audit queue waits for it (enqueue slow work, do not do it here).
 */
export type OnStored = (record: AuditRecord, outcome: StoreOutcome) => Promise<void>;

export interface AuditWorkerOptions {
  connection: RedisConnection;
  store: AuditStore;
  logger: Logger;
  /** Called after each successful store, "stored" and "duplicate" alike (see `OnStored`). */
  onStored?: OnStored | undefined;
  /** BullMQ key prefix; must match the producers'. */
  prefix?: string | undefined;
  /** Jobs processed at once (default 8); a store that batches concurrent writes makes fuller batches with more. */
  concurrency?: number | undefined;
  /** Backoff between attempts after a failure: doubling from `baseMs` up to `maxMs`, with jitter. */
  retry?: { baseMs?: number; maxMs?: number } | undefined;
}

export interface AuditWorker {
  /** Waits for the records in progress to be written, then disconnects. */
  close(): Promise<void>;
}

const DEFAULT_RETRY = { baseMs: 1000, maxMs: 5 * 60_000 };

/** Capped exponential backoff with ±20 % jitter, so a fleet of retries does not hit Postgres in step. */
export function auditBackoffDelay(attemptsMade: number, { baseMs, maxMs }: { baseMs: number; maxMs: number }): number {
  const exponential = Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(attemptsMade - 1, 0), 30));
  return Math.round(exponential * (0.8 + Math.random() * 0.4));
}

/**
 * Validates one job's records and stores them. A job holds one record (name
 * `session`) or a gateway's batch of them (name `sessions`, data
 * `{ records }`), whose records are written concurrently so the store can
 * put them in one transaction.
 *
 * Invalid records fail the job for good (UnrecoverableError: BullMQ moves it
 * to the failed set at once, where it stays for inspection), after the valid
 * ones of its batch were stored; retrying such a job later stores nothing
 * twice. Any other failure, such as Postgres being down, is thrown as is, so
 * BullMQ retries the job with backoff while it waits in Redis.
 */
export async function processAuditJob(
  job: Pick<Job, "id" | "data"> & { name?: string },
  store: AuditStore,
  logger: Logger,
  onStored?: OnStored,
): Promise<StoreOutcome | StoreOutcome[]> {
  const batch = job.name === AUDIT_BATCH_JOB_NAME;
  const items: unknown[] = batch ? batchRecords(job.data) : [job.data];
  const valid: AuditRecord[] = [];
  const invalid: { index: number; sessionId: unknown; issues: { path: string; message: string }[] }[] = [];
  items.forEach((item, index) => {
    const parsed = auditRecordSchema.safeParse(item);
    if (parsed.success) {
      valid.push(parsed.data);
      return;
    }
    invalid.push({
      index,
      sessionId: (item as { sessionId?: unknown } | null)?.sessionId,
      issues: parsed.error.issues
        .slice(0, 10)
        .map((issue) => ({ path: issue.path.map(String).join("."), message: issue.message })),
    });
  });
  const outcomes = await Promise.all(
    valid.map(async (record) => {
      const outcome = await store.write(record);
      if (outcome === "duplicate") logger.debug({ sessionId: record.sessionId }, "audit record already stored");
      await onStored?.(record, outcome);
      return outcome;
    }),
  );
  if (invalid.length > 0 || (batch && items.length === 0)) {
    logger.error(
      { jobId: job.id, invalid: invalid.slice(0, 10) },
      "audit record refused: it does not match the record schema; kept in the failed set of the audit queue",
    );
    const first = invalid[0];
    throw new UnrecoverableError(
      first
        ? `invalid audit record: ${first.issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`
        : "an audit batch without records",
    );
  }
  return batch ? outcomes : (outcomes[0] as StoreOutcome);
}

function batchRecords(data: unknown): unknown[] {
  const records = (data as { records?: unknown } | null)?.records;
  return Array.isArray(records) ? records : [];
}

export async function startAuditWorker(options: AuditWorkerOptions): Promise<AuditWorker> {
  const { store, logger, onStored } = options;
  const retry = { ...DEFAULT_RETRY, ...options.retry };
  const { client, owned } = ownConnection(options.connection, { forWorker: true });
  const processJob = (job: Job) => processAuditJob(job, store, logger, onStored);
  const worker = new Worker<unknown, StoreOutcome | StoreOutcome[]>(AUDIT_QUEUE, processJob, {
    connection: client,
    ...(options.prefix ? { prefix: options.prefix } : {}),
    concurrency: options.concurrency ?? 8,
    settings: {
      // Jobs name AUDIT_BACKOFF; BullMQ asks this strategy for every non-built-in type.
      backoffStrategy: (attemptsMade: number) => auditBackoffDelay(attemptsMade, retry),
    },
  });
  // Without a listener an "error" event (Redis unreachable) would throw.
  worker.on("error", (error) => logger.warn({ err: error }, "audit worker: queue connection error"));
  worker.on("failed", (job, error) => {
    if (!job || error instanceof UnrecoverableError) return;
    if (job.attemptsMade >= (job.opts.attempts ?? 1)) {
      logger.error(
        { err: error, jobId: job.id, attemptsMade: job.attemptsMade },
        "audit record not stored after its last attempt; it stays in the failed set of the audit queue",
      );
      return;
    }
    logger.warn(
      { err: error, jobId: job.id, attemptsMade: job.attemptsMade },
      "audit record not stored yet, or its onStored hook failed; it stays queued and is retried",
    );
  });
  await worker.waitUntilReady();
  return {
    async close() {
      await worker.close();
      if (owned) await client.quit().catch(() => client.disconnect());
    },
  };
}
