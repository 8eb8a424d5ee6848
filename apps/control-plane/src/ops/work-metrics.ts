// Prometheus metrics of the control plane's background work, beside the
// HTTP metrics (http/metrics.ts) in the same registry: the queues it drains
// (depth and the age of the oldest waiting job, read from Redis at scrape
// time), what its workers get done, audit chain verifications and SIEM
// deliveries. Every label value comes from a fixed set.
import type { Queue } from "bullmq";
import { Counter, Gauge, type Registry } from "prom-client";

/** Queue states reported, as BullMQ names them. */
const STATES = ["waiting", "active", "delayed", "failed"] as const;
/** A scrape must answer even while Redis does not: each queue gets this long. */
const QUEUE_READ_TIMEOUT_MS = 1_000;
/** Within one scrape the gauges ask together; a later scrape reads again. */
const SNAPSHOT_REUSE_MS = 250;

interface QueueState {
  name: string;
  /** Undefined: Redis did not answer in time. */
  counts: Record<string, number> | undefined;
  oldestWaitingSeconds: number | undefined;
}

async function readQueue({ name, queue }: { name: string; queue: Queue }): Promise<QueueState> {
  const [counts, oldest] = await Promise.all([
    withinTimeout(queue.getJobCounts(...STATES)),
    // The wait list is in arrival order: its first job is the oldest.
    withinTimeout(queue.getJobs(["wait"], 0, 0, true)),
  ]);
  const timestamp = oldest?.[0]?.timestamp;
  return {
    name,
    counts,
    oldestWaitingSeconds:
      oldest === undefined ? undefined : timestamp ? Math.max(0, (Date.now() - timestamp) / 1000) : 0,
  };
}

export type DeliveryOutcome = "delivered" | "failed" | "skipped";

export interface WorkMetrics {
  /** The audit worker stored a record ("stored") or recognised one stored before ("duplicate"). */
  auditStored(outcome: "stored" | "duplicate"): void;
  /** One SIEM delivery attempt of an exporter of `kind` (webhook, syslog). */
  exportDelivery(kind: string, outcome: DeliveryOutcome): void;
  /** One run (or part) of the audit chain's verification. */
  chainVerified(report: { status: "ok" | "broken"; checked: number }): void;
  /** Reports these queues' depth and oldest waiting job on every scrape. */
  watchQueues(queues: readonly { name: string; queue: Queue }[]): void;
}

const KINDS = new Set(["webhook", "syslog"]);

export function createWorkMetrics(registry: Registry): WorkMetrics {
  const stored = new Counter({
    name: "modelgate_control_plane_audit_records_total",
    help: "Audit records the worker took from the queue, by outcome: stored, or duplicate (stored before: a retry)",
    labelNames: ["outcome"],
    registers: [registry],
  });
  const deliveries = new Counter({
    name: "modelgate_control_plane_export_deliveries_total",
    help: "SIEM delivery attempts, by exporter kind and outcome (failed attempts are retried with backoff)",
    labelNames: ["kind", "outcome"],
    registers: [registry],
  });
  const verifications = new Counter({
    name: "modelgate_control_plane_chain_verifications_total",
    help: "Audit chain verifications (each part of a walk counts), by result",
    labelNames: ["result"],
    registers: [registry],
  });
  const verifiedSessions = new Counter({
    name: "modelgate_control_plane_chain_verified_sessions_total",
    help: "Sessions whose hash-chain links were recomputed by verifications",
    registers: [registry],
  });
  const lastBroken = new Gauge({
    name: "modelgate_control_plane_chain_broken",
    help: "1 when the latest verification found a broken link, else 0 (also before the first)",
    registers: [registry],
  });

  let watched: readonly { name: string; queue: Queue }[] = [];
  // prom-client collects every metric of a scrape at once: the three queue
  // gauges share one read of Redis per scrape.
  let snapshot: { at: number; states: Promise<QueueState[]> } | undefined;
  const queueStates = (): Promise<QueueState[]> => {
    if (!snapshot || Date.now() - snapshot.at > SNAPSHOT_REUSE_MS) {
      snapshot = { at: Date.now(), states: Promise.all(watched.map(readQueue)) };
    }
    return snapshot.states;
  };
  new Gauge({
    name: "modelgate_control_plane_queue_jobs",
    help: "Jobs in a queue the control plane drains, by queue and state, read from Redis at scrape time",
    labelNames: ["queue", "state"],
    registers: [registry],
    async collect() {
      this.reset();
      for (const { name, counts } of await queueStates()) {
        if (counts) for (const state of STATES) this.set({ queue: name, state }, counts[state] ?? 0);
      }
    },
  });
  new Gauge({
    name: "modelgate_control_plane_queue_readable",
    help: "1 when this scrape could read the queue's state from Redis, else 0",
    labelNames: ["queue"],
    registers: [registry],
    async collect() {
      this.reset();
      for (const { name, counts } of await queueStates()) this.set({ queue: name }, counts ? 1 : 0);
    },
  });
  new Gauge({
    name: "modelgate_control_plane_queue_oldest_waiting_seconds",
    help: "Age of the oldest job waiting to run (not yet started, retries in backoff excluded); 0 when none waits",
    labelNames: ["queue"],
    registers: [registry],
    async collect() {
      this.reset();
      for (const { name, oldestWaitingSeconds } of await queueStates()) {
        if (oldestWaitingSeconds !== undefined) this.set({ queue: name }, oldestWaitingSeconds);
      }
    },
  });

  return {
    auditStored(outcome) {
      stored.inc({ outcome });
    },
    exportDelivery(kind, outcome) {
      deliveries.inc({ kind: KINDS.has(kind) ? kind : "other", outcome });
    },
    chainVerified({ status, checked }) {
      verifications.inc({ result: status });
      verifiedSessions.inc(checked);
      lastBroken.set(status === "broken" ? 1 : 0);
    },
    watchQueues(queues) {
      watched = queues;
    },
  };
}

/** The value, or undefined when Redis does not answer in time (the scrape goes on without it). */
async function withinTimeout<T>(read: Promise<T>): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), QUEUE_READ_TIMEOUT_MS);
  });
  try {
    return await Promise.race([read.catch(() => undefined), late]);
  } finally {
    clearTimeout(timer);
  }
}
