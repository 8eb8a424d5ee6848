// Pending approvals expire at their time: with Redis, a BullMQ delayed job
// per approval (it survives a control-plane restart, and any replica's
// worker runs it); without Redis (the zero-config launcher), an in-process
// timer. Both call the service, which expires the approval only if it is
// still pending and due. A periodic sweep is the safety net for a job or
// timer that was lost (Redis flushed, a crash between commit and schedule).
import type { Logger } from "@modelgate/core";
import { DelayedError, Queue, Worker } from "bullmq";

export const APPROVAL_EXPIRY_QUEUE = "approval-expiry";
const EXPIRY_JOB_NAME = "expire";
/** Longest delay setTimeout takes (about 24.8 days); approvals expire within 7. */
const MAX_TIMER_MS = 2 ** 31 - 1;
export const DEFAULT_SWEEP_INTERVAL_MS = 30_000;

/** Expires the approval if due; returns its expiry when it is pending but not due yet. */
export type ExpireOne = (id: string) => Promise<Date | undefined>;

export interface ApprovalExpiry {
  /** Expires the approval at `expiresAt`. Idempotent per approval. */
  schedule(id: string, expiresAt: Date): Promise<void>;
  close(): Promise<void>;
}

/** BullMQ refuses `:` in custom job ids; one id per approval makes scheduling it twice harmless. */
export const expiryJobId = (approvalId: string) => `approval-${approvalId}`;

export async function startQueuedExpiry({
  redisUrl,
  prefix,
  expire,
  logger,
}: {
  redisUrl: string;
  prefix?: string | undefined;
  expire: ExpireOne;
  logger: Logger;
}): Promise<ApprovalExpiry> {
  // BullMQ workers block on Redis: their connection must wait out a Redis restart.
  const shared = { connection: { url: redisUrl, maxRetriesPerRequest: null }, ...(prefix ? { prefix } : {}) };
  const queue = new Queue<{ id: string }>(APPROVAL_EXPIRY_QUEUE, shared);
  queue.on("error", (error) => logger.warn({ err: error }, "approval expiry queue: connection error"));
  const worker = new Worker<{ id: string }>(
    APPROVAL_EXPIRY_QUEUE,
    async (job, token) => {
      const notYet = await expire(job.data.id);
      if (notYet && token) {
        // Fired before the approval's time (clocks differ between hosts): wait for it.
        await job.moveToDelayed(notYet.getTime(), token);
        throw new DelayedError();
      }
    },
    { ...shared, concurrency: 8 },
  );
  worker.on("error", (error) => logger.warn({ err: error }, "approval expiry worker: connection error"));
  worker.on("failed", (job, error) =>
    logger.warn({ err: error, approvalId: job?.data.id }, "could not expire an approval; retried, and swept"),
  );
  await worker.waitUntilReady();
  return {
    async schedule(id, expiresAt) {
      const jobId = expiryJobId(id);
      const delay = Math.max(0, expiresAt.getTime() - Date.now());
      // Scheduled before, for another time (the expiry moved): move that job.
      const existing = await queue.getJob(jobId);
      if (existing && (await existing.isDelayed())) {
        await existing.changeDelay(delay);
        return;
      }
      await queue.add(
        EXPIRY_JOB_NAME,
        { id },
        {
          jobId,
          delay,
          attempts: 5,
          backoff: { type: "exponential", delay: 1000 },
          // Gone once done, so the id can be scheduled again; a failure is logged, and the sweep expires the approval.
          removeOnComplete: true,
          removeOnFail: true,
        },
      );
    },
    async close() {
      await worker.close();
      await queue.close();
    },
  };
}

/** One timer per pending approval, in this process. */
export function startTimedExpiry({ expire, logger }: { expire: ExpireOne; logger: Logger }): ApprovalExpiry {
  const timers = new Map<string, NodeJS.Timeout>();
  let closed = false;
  const arm = (id: string, expiresAt: Date) => {
    if (closed) return;
    clearTimeout(timers.get(id));
    const timer = setTimeout(
      () => {
        timers.delete(id);
        expire(id)
          .then((notYet) => {
            if (notYet) arm(id, notYet);
          })
          .catch((error: unknown) =>
            logger.warn({ err: error, approvalId: id }, "could not expire an approval; the sweep will"),
          );
      },
      Math.min(MAX_TIMER_MS, Math.max(0, expiresAt.getTime() - Date.now())),
    );
    timer.unref();
    timers.set(id, timer);
  };
  return {
    async schedule(id, expiresAt) {
      arm(id, expiresAt);
    },
    async close() {
      closed = true;
      for (const timer of timers.values()) clearTimeout(timer);
      timers.clear();
    },
  };
}

/** Runs `sweep` now and every `intervalMs`, one run at a time. */
export function startExpirySweep({
  sweep,
  intervalMs,
  logger,
}: {
  sweep: () => Promise<number>;
  intervalMs: number;
  logger: Logger;
}): { close(): Promise<void> } {
  let running: Promise<void> | undefined;
  const run = () => {
    running ??= sweep()
      .then((expired) => {
        if (expired > 0) logger.info({ expired }, "approval sweep expired overdue approvals");
      })
      .catch((error: unknown) => logger.warn({ err: error }, "approval sweep failed; it runs again"))
      .finally(() => {
        running = undefined;
      });
  };
  run();
  const interval = setInterval(run, intervalMs);
  interval.unref();
  return {
    async close() {
      clearInterval(interval);
      await running;
    },
  };
}
