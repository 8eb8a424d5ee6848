// What the audit worker does after storing a record: enqueue the session's
// event for the exporters that want it, evaluate the alert rules, enqueue
// the alerts raised; and the same for approvals (their events, and the
// approval_requested rules). Started by server.ts when Redis is configured.
import type { OnStored, RedisConnection } from "@modelgate/audit";
import type { Logger } from "@modelgate/core";
import type { Database } from "@modelgate/db";
import { Redis } from "ioredis";
import type { SecretBox } from "../../secret-box.js";
import { createAlertEvaluator } from "../alerts/evaluator.js";
import { createExportQueue, type ExportWorker, type ExportWorkerOptions, startExportWorker } from "./delivery.js";
import type { ExportEgress } from "./egress.js";
import {
  type AlertEventBody,
  type ApprovalEventBody,
  alertEvent,
  approvalEvent,
  type SiemEvent,
  sessionEvent,
  wantsEvent,
} from "./events.js";
import { sharedRead } from "./shared-read.js";

export interface SiemPipelineOptions {
  connection: RedisConnection;
  db: Database;
  secrets: SecretBox;
  /** Where deliveries may connect; the caller owns and closes it. */
  egress: ExportEgress;
  logger: Logger;
  /** BullMQ prefix of the export queue, and of the alert counters' keys (default `bull`). */
  prefix?: string | undefined;
  /** Backoff between delivery attempts (tests shorten it). */
  retry?: { baseMs?: number; maxMs?: number } | undefined;
  /** Told every delivery attempt's outcome. */
  onDelivery?: ExportWorkerOptions["onDelivery"];
}

export interface SiemPipeline {
  /** The audit worker's hook. Idempotent: a retried hook enqueues the same jobs, which BullMQ keeps once. */
  onStored: OnStored;
  /** An alert raised outside the rules (quota thresholds): its event to the exporters that want alerts. */
  onAlert(alert: AlertEventBody): Promise<void>;
  /** The approvals service's event sink: the approval's event, and for a new one the approval_requested alerts. */
  onApproval(event: ApprovalEventBody, context: { requestSessionId: string }): Promise<void>;
  close(): Promise<void>;
}

export async function startSiemPipeline(options: SiemPipelineOptions): Promise<SiemPipeline> {
  const { db, logger } = options;
  const redis = typeof options.connection === "string" ? new Redis(options.connection) : options.connection;
  const queue = createExportQueue({ connection: redis, prefix: options.prefix });
  const evaluator = createAlertEvaluator({ db, redis, keyPrefix: options.prefix ?? "bull", logger });
  let worker: ExportWorker;
  try {
    worker = await startExportWorker({
      connection: options.connection,
      db,
      secrets: options.secrets,
      egress: options.egress,
      logger,
      prefix: options.prefix,
      retry: options.retry,
      onDelivery: options.onDelivery,
    });
  } catch (error) {
    await queue.close();
    if (typeof options.connection === "string") redis.disconnect();
    throw error;
  }

  // Read for each event, so an exporter created a moment ago receives the
  // next one (no cache to go stale across workers); the events of one batch
  // of records share the read (a small table).
  const enabledExporters = sharedRead(() =>
    db.exporter.findMany({ where: { enabled: true }, select: { id: true, eventTypes: true, decisions: true } }),
  );

  async function send(event: SiemEvent): Promise<void> {
    const exporters = await enabledExporters();
    await queue.enqueue(
      event,
      exporters.filter((exporter) => wantsEvent(exporter, event)).map((exporter) => exporter.id),
    );
  }

  return {
    async onStored(record) {
      await send(sessionEvent(record));
      for (const alert of await evaluator.evaluate(record)) await send(alertEvent(alert));
    },
    async onAlert(alert) {
      await send(alertEvent(alert));
    },
    async onApproval(event, { requestSessionId }) {
      await send(approvalEvent(event));
      if (event.event !== "requested") return;
      for (const alert of await evaluator.approvalRequested(event, requestSessionId)) await send(alertEvent(alert));
    },
    async close() {
      await worker.close();
      await queue.close();
      if (typeof options.connection === "string") await redis.quit().catch(() => redis.disconnect());
    },
  };
}
