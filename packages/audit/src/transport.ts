// Transports for the gateway's audit sink (sink.ts): the BullMQ queue on
// Redis that production gateways use, and a direct hand-over to the
// control plane's store for the zero-config process, where both run in one
// process and there is no Redis.
import { createHash } from "node:crypto";
import type { Logger } from "@modelgate/core";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { AUDIT_BATCH_JOB_NAME, AUDIT_JOB_OPTIONS, AUDIT_QUEUE } from "./queue.js";
import { type AuditRecord, auditRecordSchema } from "./record.js";
import type { AuditTransport } from "./sink.js";
import type { AuditStore } from "./worker.js";

export interface QueueTransportOptions {
  /** A `redis://` or `rediss://` URL; the transport owns its connection. */
  url: string;
  /** BullMQ key prefix; must match the workers'. */
  prefix?: string | undefined;
  /** A Redis that accepts the connection but does not answer fails the send after this long (default 5 s). */
  commandTimeoutMs?: number | undefined;
}

/**
 * Adds each batch as one job (`sessions`, `{ records }`) whose id is derived
 * from its session ids: the same batch sent again after a failure makes no
 * second job, and a batch that overlaps an earlier one only stores its new
 * records (the worker's store is idempotent by session id). Fails fast
 * while Redis is away instead of queueing commands in memory: the sink's
 * bounded buffer is the only place records wait, so what is held is what
 * is counted.
 */
export function createQueueTransport({ url, prefix, commandTimeoutMs }: QueueTransportOptions): AuditTransport {
  const client = new Redis(url, {
    enableOfflineQueue: false,
    commandTimeout: commandTimeoutMs ?? 5_000,
    maxRetriesPerRequest: 1,
  });
  // Connection errors surface as failed sends, which the sink reports.
  client.on("error", () => undefined);
  let queue: Queue | undefined;
  return {
    async send(records) {
      // BullMQ's first command waits for a connection regardless of the
      // offline queue setting; it is created only once Redis has answered.
      if (client.status !== "ready") throw new Error(`Redis is not connected (${client.status})`);
      if (!queue) {
        queue = new Queue(AUDIT_QUEUE, {
          connection: client,
          ...(prefix ? { prefix } : {}),
          defaultJobOptions: AUDIT_JOB_OPTIONS,
        });
        queue.on("error", () => undefined);
      }
      await queue.add(AUDIT_BATCH_JOB_NAME, { records }, { jobId: batchJobId(records) });
    },
    async close() {
      await queue?.close().catch(() => undefined);
      await client.quit().catch(() => client.disconnect());
    },
  };
}

/** `b-` and the SHA-256 of the batch's session ids (BullMQ job ids may not contain `:`). */
export function batchJobId(records: readonly AuditRecord[]): string {
  const hash = createHash("sha256");
  for (const record of records) hash.update(record.sessionId).update("\n");
  return `b-${hash.digest("hex")}`;
}

/**
 * Writes records straight to a store (the zero-config process, where the
 * control plane runs beside the gateway). Records are validated like the
 * queue's worker does; an invalid one is logged at error and not retried,
 * since there is no failed set to keep it in. A store failure (Postgres
 * down) fails the send and the sink retries it.
 */
export function createStoreTransport({ store, logger }: { store: AuditStore; logger: Logger }): AuditTransport {
  return {
    async send(records: readonly AuditRecord[]) {
      const valid: AuditRecord[] = [];
      for (const record of records) {
        const parsed = auditRecordSchema.safeParse(record);
        if (parsed.success) valid.push(parsed.data);
        else
          logger.error(
            { sessionId: record.sessionId, issues: parsed.error.issues.slice(0, 10) },
            "audit record refused: it does not match the record schema",
          );
      }
      // All at once, so a store that batches concurrent writes can; any
      // failure fails the send, and the records already stored are
      // recognised as duplicates when the sink sends the batch again.
      const results = await Promise.allSettled(valid.map((record) => store.write(record)));
      const failed = results.find((result) => result.status === "rejected");
      if (failed) throw failed.reason;
    },
    async close() {},
  };
}
