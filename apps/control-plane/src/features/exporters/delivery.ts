// The export queue: one job per (event, exporter), delivered by a worker of
// its own, so a dead or slow SIEM delays nothing but its own deliveries. The
// audit worker's hook only enqueues.
import { createHash } from "node:crypto";
import { auditBackoffDelay, type RedisConnection } from "@modelgate/audit";
import type { Logger } from "@modelgate/core";
import type { Database, Prisma } from "@modelgate/db";
import { type JobsOptions, Queue, UnrecoverableError, Worker } from "bullmq";
import { Redis } from "ioredis";
import type { DeliveryOutcome } from "../../ops/work-metrics.js";
import type { SecretBox } from "../../secret-box.js";
import { DeliveryError } from "./delivery-error.js";
import type { ExportEgress } from "./egress.js";
import type { SiemEvent } from "./events.js";
import { deliverSyslog, type SyslogTarget } from "./syslog.js";
import { deliverWebhook } from "./webhook.js";

export const EXPORT_QUEUE = "modelgate-export";
const EXPORT_JOB_NAME = "deliver";
const EXPORT_BACKOFF = "modelgate-export";

/** Doubling from 5 s up to 1 h between attempts: 32 attempts span about a day. */
const DEFAULT_EXPORT_RETRY = { baseMs: 5_000, maxMs: 3_600_000 };
const EXPORT_ATTEMPTS = 32;

const EXPORT_JOB_OPTIONS = {
  attempts: EXPORT_ATTEMPTS,
  backoff: { type: EXPORT_BACKOFF },
  // Completed jobs stay a day so that the same (event, exporter) enqueued
  // again (the audit hook retried) is recognised and not delivered twice.
  removeOnComplete: { age: 24 * 3600, count: 100_000 },
  // Deliveries that used up their attempts stay a week for an operator to
  // inspect or retry; the exporter's failure counter and last error show them too.
  removeOnFail: { age: 7 * 24 * 3600 },
} satisfies JobsOptions;

interface ExportJob {
  exporterId: string;
  event: SiemEvent;
}

/**
 * BullMQ refuses `:` in custom job ids, and a session id may contain one:
 * the idempotency key `<eventId>:<exporterId>` is used through its digest.
 */
function exportJobId(eventId: string, exporterId: string): string {
  return `exp_${createHash("sha256").update(`${eventId}\n${exporterId}`, "utf8").digest("hex")}`;
}

export interface ExportQueue {
  enqueue(event: SiemEvent, exporterIds: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

export function createExportQueue({
  connection,
  prefix,
}: {
  connection: RedisConnection;
  prefix?: string | undefined;
}): ExportQueue {
  const owned = typeof connection === "string";
  const client = typeof connection === "string" ? new Redis(connection) : connection;
  const queue = new Queue<ExportJob>(EXPORT_QUEUE, {
    connection: client,
    ...(prefix ? { prefix } : {}),
    defaultJobOptions: EXPORT_JOB_OPTIONS,
  });
  return {
    async enqueue(event, exporterIds) {
      if (exporterIds.length === 0) return;
      await queue.addBulk(
        exporterIds.map((exporterId) => ({
          name: EXPORT_JOB_NAME,
          data: { exporterId, event },
          opts: { jobId: exportJobId(event.id, exporterId) },
        })),
      );
    },
    async close() {
      await queue.close();
      if (owned) await client.quit().catch(() => client.disconnect());
    },
  };
}

type ExporterRow = Prisma.ExporterGetPayload<object>;

/**
 * Delivers one event to one exporter as stored now; throws a DeliveryError
 * when it did not arrive. The stored destination is checked again here
 * (through `egress`): a row saved before the policy, or a name that now
 * resolves elsewhere, is refused at connect time.
 */
export async function deliverTo(
  exporter: ExporterRow,
  event: SiemEvent,
  { secrets, egress }: { secrets: SecretBox; egress: ExportEgress },
): Promise<void> {
  const config = exporter.config as Record<string, unknown>;
  if (exporter.kind === "webhook") {
    if (!exporter.secret) throw new DeliveryError("the webhook has no signing secret");
    let secret: string;
    try {
      secret = secrets.open(exporter.secret, secretContext(exporter.id));
    } catch (error) {
      throw new DeliveryError((error as Error).message);
    }
    await deliverWebhook({ url: String(config.url), timeoutMs: Number(config.timeoutMs), secret }, event, egress);
    return;
  }
  await deliverSyslog(config as unknown as SyslogTarget, event, egress);
}

/** What a sealed secret is bound to: its exporter row. */
export function secretContext(exporterId: string): string {
  return `exporter:${exporterId}`;
}

export interface ExportWorkerOptions {
  connection: RedisConnection;
  db: Database;
  secrets: SecretBox;
  /** Where deliveries may connect (MODELGATE_EXPORT_ALLOW_CIDRS); the caller owns and closes it. */
  egress: ExportEgress;
  logger: Logger;
  prefix?: string | undefined;
  /** Deliveries in parallel (default 16): each mostly waits on the network. */
  concurrency?: number | undefined;
  retry?: { baseMs?: number; maxMs?: number } | undefined;
  /** Told every attempt's outcome (the control plane's metrics count them). */
  onDelivery?: ((kind: string, outcome: DeliveryOutcome) => void) | undefined;
}

export interface ExportWorker {
  close(): Promise<void>;
}

const MAX_ERROR_CHARS = 1024;

export async function startExportWorker(options: ExportWorkerOptions): Promise<ExportWorker> {
  const { db, secrets, egress, logger } = options;
  const onDelivery = options.onDelivery ?? (() => {});
  const retry = { ...DEFAULT_EXPORT_RETRY, ...options.retry };
  const owned = typeof options.connection === "string";
  // BullMQ requires maxRetriesPerRequest: null for a worker's blocking commands.
  const client =
    typeof options.connection === "string"
      ? new Redis(options.connection, { maxRetriesPerRequest: null })
      : options.connection;

  const worker = new Worker<ExportJob, string>(
    EXPORT_QUEUE,
    async (job) => {
      const { exporterId, event } = job.data;
      const exporter = await db.exporter.findUnique({ where: { id: exporterId } });
      // Deleted or disabled since the job was queued: the admin stopped this
      // destination, so the event is not sent there (and not retried).
      if (!exporter || !exporter.enabled) {
        onDelivery(exporter?.kind ?? "other", "skipped");
        return exporter ? "skipped: exporter disabled" : "skipped: exporter deleted";
      }
      try {
        await deliverTo(exporter, event, { secrets, egress });
      } catch (error) {
        onDelivery(exporter.kind, "failed");
        const message = error instanceof DeliveryError ? error.message : "delivery failed";
        await db.exporter.updateMany({
          where: { id: exporterId },
          data: {
            failedCount: { increment: 1 },
            lastFailureAt: new Date(),
            lastError: message.slice(0, MAX_ERROR_CHARS),
          },
        });
        throw error instanceof DeliveryError ? error : new DeliveryError(message);
      }
      await db.exporter.updateMany({
        where: { id: exporterId },
        data: { deliveredCount: { increment: 1 }, lastSuccessAt: new Date() },
      });
      onDelivery(exporter.kind, "delivered");
      return "delivered";
    },
    {
      connection: client,
      ...(options.prefix ? { prefix: options.prefix } : {}),
      concurrency: options.concurrency ?? 16,
      settings: { backoffStrategy: (attemptsMade: number) => auditBackoffDelay(attemptsMade, retry) },
    },
  );
  worker.on("error", (error) => logger.warn({ err: error }, "export worker: queue connection error"));
  worker.on("failed", (job, error) => {
    if (!job || error instanceof UnrecoverableError) return;
    // Only ids and the safe message: the job's data is an event, the exporter's config may hold a URL token.
    const fields = { exporterId: job.data.exporterId, eventId: job.data.event.id, attemptsMade: job.attemptsMade };
    if (job.attemptsMade >= (job.opts.attempts ?? 1)) {
      logger.error(
        { ...fields, reason: error.message },
        "event not delivered after its last attempt; kept in the failed set",
      );
    } else {
      logger.warn({ ...fields, reason: error.message }, "event not delivered yet; retried with backoff");
    }
  });
  await worker.waitUntilReady();
  return {
    async close() {
      await worker.close();
      if (owned) await client.quit().catch(() => client.disconnect());
    },
  };
}
