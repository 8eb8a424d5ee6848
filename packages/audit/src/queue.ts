// The audit queue's contract: its name, its job options and the producer the
// gateway uses. Records travel through Redis so that the gateway never
// writes Postgres on the request path, and so that they wait there while
// Postgres is away.
//
// Redis for modelgate must persist: run it with `appendonly yes` (AOF,
// `appendfsync everysec` or stricter). A Redis that keeps its data only in
// memory loses every record still queued when it restarts, which is exactly
// the loss the queue exists to prevent (issue 6). BullMQ also needs
// `maxmemory-policy noeviction`: an evicted job is a lost record.
import { type JobsOptions, Queue } from "bullmq";
import { Redis } from "ioredis";
import type { AuditRecord } from "./record.js";

export const AUDIT_QUEUE = "modelgate-audit";
/** BullMQ job name of one record. */
export const AUDIT_JOB_NAME = "session";
/**
 * BullMQ job name of a gateway's batch of records (`{ records: [...] }`):
 * one job, one Lua call and one JSON document per batch instead of per
 * record, which is most of what handing a record over costs.
 */
export const AUDIT_BATCH_JOB_NAME = "sessions";
/** The backoff strategy the worker implements (capped exponential, see worker.ts). */
export const AUDIT_BACKOFF = "modelgate-audit";

/**
 * Retries are what carries a record across a Postgres outage, so there are
 * many of them: with the worker's default backoff (1 s doubling up to 5 min)
 * 2,000 attempts span about a week. Only an invalid record fails at once.
 */
export const AUDIT_JOB_OPTIONS = {
  attempts: 2000,
  backoff: { type: AUDIT_BACKOFF },
  // Completed jobs are kept briefly so that a record re-sent soon after
  // (the gateway's retry of a batch whose answer it missed) is recognised by
  // BullMQ and not added again. Not longer: a job holds the whole record (up
  // to twice the body cap), and the worker's insert is idempotent anyway,
  // for a re-send that arrives after the job was removed.
  removeOnComplete: { age: 3600, count: 1000 },
  // Failed jobs (invalid records) stay for an operator to inspect and retry:
  // an audit record is never dropped silently.
  removeOnFail: false,
} satisfies JobsOptions;

/** A Redis URL (`redis://`, `rediss://`) or an ioredis client the caller owns. */
export type RedisConnection = string | Redis;

export interface AuditQueueOptions {
  connection: RedisConnection;
  /** BullMQ key prefix (default `bull`): tests give each file its own. */
  prefix?: string | undefined;
}

export interface AuditQueue {
  /**
   * Adds the record as a job whose id is its session id: sending the same
   * record twice (a retry after a timeout) leaves one job. The record is not
   * validated here: the worker validates it and keeps an invalid one in the
   * failed set, so a producer bug neither loses the record nor refuses traffic.
   */
  enqueue(record: AuditRecord): Promise<void>;
  close(): Promise<void>;
}

/** Opens a connection of our own for a URL; an ioredis client passed in stays the caller's. */
export function ownConnection(
  connection: RedisConnection,
  options: { forWorker: boolean },
): { client: Redis; owned: boolean } {
  if (typeof connection !== "string") return { client: connection, owned: false };
  // A worker's blocking commands must wait out a Redis restart rather than
  // fail after a fixed number of retries (BullMQ requires null here).
  const client = new Redis(connection, options.forWorker ? { maxRetriesPerRequest: null } : {});
  return { client, owned: true };
}

export function createAuditQueue({ connection, prefix }: AuditQueueOptions): AuditQueue {
  const { client, owned } = ownConnection(connection, { forWorker: false });
  const queue = new Queue<AuditRecord>(AUDIT_QUEUE, {
    connection: client,
    ...(prefix ? { prefix } : {}),
    defaultJobOptions: AUDIT_JOB_OPTIONS,
  });
  return {
    async enqueue(record) {
      await queue.add(AUDIT_JOB_NAME, record, { jobId: record.sessionId });
    },
    async close() {
      await queue.close();
      if (owned) await client.quit().catch(() => client.disconnect());
    },
  };
}
