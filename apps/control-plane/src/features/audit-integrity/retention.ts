// Retention of audit sessions (docs/audit.md, "Retention"): bodies and
// events go after MODELGATE_RETENTION_CONTENT_DAYS, whole sessions after
// MODELGATE_RETENTION_METADATA_DAYS. Both purges leave what verification
// needs: the content digest stays on the session, and a checkpoint records
// the chain position and hash at the metadata cut.
import type { Logger } from "@modelgate/core";
import type { Database } from "@modelgate/db";
import { Queue, Worker } from "bullmq";
import { type BrokenLink, latestChainCheckpoint, verifyChain } from "./verify.js";

export const RETENTION_QUEUE = "modelgate-retention";
/** One scheduler id for the whole fleet: every control plane upserts the same one, so it runs once per interval. */
export const RETENTION_SCHEDULER_ID = "retention";
const RETENTION_JOB_NAME = "purge";
const DEFAULT_INTERVAL_MS = 60 * 60_000;
/** Rows per DELETE: each statement and its transaction stay short, so neither writers nor readers wait on them long. */
const DEFAULT_BATCH = 1000;
const DAY_MS = 24 * 60 * 60_000;
const HOUR_MS = 60 * 60_000;

export interface RetentionPolicy {
  /** Bodies and events of sessions received longer ago than this are deleted. */
  contentDays?: number | undefined;
  /** Sessions received longer ago than this are deleted (never before their content). */
  metadataDays?: number | undefined;
}

export interface PurgeResult {
  /** Content rows and event rows deleted. */
  contents: number;
  events: number;
  /** Sessions deleted. */
  sessions: number;
  /** Approvals whose prompt was removed (content retention), and approvals deleted (metadata retention). */
  approvalPrompts: number;
  approvals: number;
  /** Usage rollup rows deleted (metadata retention): buckets that ended before the cut-off. */
  usageRows: number;
  /** The checkpoint this run wrote before deleting sessions, if it wrote one. */
  checkpoint: { chainSeq: number; hash: string } | null;
  /** Set when the chain up to the cut did not verify: no session was deleted, for an operator to look at. */
  refused: BrokenLink | null;
}

export interface PurgeOptions {
  db: Database;
  policy: RetentionPolicy;
  logger: Logger;
  /** Who purges, recorded in the checkpoints (the job id). */
  by: string;
  now?: Date | undefined;
  batchSize?: number | undefined;
}

/**
 * Purges what the policy says has expired. Safe to run any number of times
 * and from several control planes: each statement deletes what is still
 * there, and a checkpoint is only written when it moves the cut forward.
 */
export async function purgeExpired(options: PurgeOptions): Promise<PurgeResult> {
  const { policy } = options;
  const now = options.now ?? new Date();
  const result: PurgeResult = {
    contents: 0,
    events: 0,
    sessions: 0,
    approvalPrompts: 0,
    approvals: 0,
    usageRows: 0,
    checkpoint: null,
    refused: null,
  };
  if (policy.contentDays !== undefined) {
    const cutoff = new Date(now.getTime() - policy.contentDays * DAY_MS);
    Object.assign(result, await purgeContent(options, cutoff));
    result.approvalPrompts = await purgeApprovalPrompts(options, cutoff);
  }
  if (policy.metadataDays !== undefined) {
    const cutoff = new Date(now.getTime() - policy.metadataDays * DAY_MS);
    Object.assign(result, await purgeSessions(options, cutoff));
    result.approvals = await purgeApprovals(options, cutoff);
    result.usageRows = await purgeUsage(options, cutoff);
  }
  return result;
}

/**
 * Usage is metadata: the rollup keeps a subject's hourly and daily counts
 * as long as their sessions' metadata is kept, and no longer (it names who
 * used what, when). A content purge leaves it whole. A bucket goes once it
 * ended before the cut-off, so a day still partly kept stays whole.
 */
async function purgeUsage({ db, batchSize = DEFAULT_BATCH }: PurgeOptions, cutoff: Date) {
  let deleted = 0;
  for (;;) {
    const count = await db.$executeRaw`
      DELETE FROM usage_rollup WHERE ctid IN (
        SELECT ctid FROM usage_rollup
        WHERE (interval = 'hour' AND bucket <= ${new Date(cutoff.getTime() - HOUR_MS)})
           OR (interval = 'day' AND bucket <= ${new Date(cutoff.getTime() - DAY_MS)})
        LIMIT ${batchSize})`;
    deleted += count;
    if (count < batchSize) return deleted;
  }
}

/**
 * Deletes the bodies and events of sessions received before `cutoff`,
 * walking the sessions in (received_at, id) order, one short transaction
 * per batch. The first transaction that deletes anything also records the
 * cut-off as a `content` checkpoint: verification accepts missing content
 * only for sessions received before it, so deleting the content of a recent
 * session still shows as tampering.
 */
async function purgeContent({ db, by, batchSize = DEFAULT_BATCH }: PurgeOptions, cutoff: Date) {
  let contents = 0;
  let events = 0;
  let checkpointWritten = false;
  let after: { receivedAt: Date; id: string } | undefined;
  for (;;) {
    const batch = await db.session.findMany({
      where: {
        receivedAt: { lt: cutoff },
        ...(after
          ? { OR: [{ receivedAt: { gt: after.receivedAt } }, { receivedAt: after.receivedAt, id: { gt: after.id } }] }
          : {}),
      },
      orderBy: [{ receivedAt: "asc" }, { id: "asc" }],
      take: batchSize,
      select: { id: true, receivedAt: true },
    });
    if (batch.length === 0) break;
    after = batch.at(-1);
    const ids = batch.map((session) => session.id);
    const deleted = await db.$transaction(async (tx) => {
      const gone = {
        events: (await tx.sessionEvent.deleteMany({ where: { sessionId: { in: ids } } })).count,
        contents: (await tx.sessionContent.deleteMany({ where: { sessionId: { in: ids } } })).count,
      };
      if (!checkpointWritten && gone.events + gone.contents > 0) {
        await tx.auditCheckpoint.create({ data: { kind: "content", createdBy: by, purgedBefore: cutoff } });
      }
      return gone;
    });
    if (deleted.events + deleted.contents > 0) checkpointWritten = true;
    contents += deleted.contents;
    events += deleted.events;
  }
  return { contents, events };
}

/**
 * Removes the prompts approvers read from approvals requested before
 * `cutoff` that are settled (a pending one's approver still needs it): they
 * are request content like a session's body. Approvals are outside the hash
 * chain (sessions name them), so no checkpoint is involved.
 */
async function purgeApprovalPrompts({ db, batchSize = DEFAULT_BATCH }: PurgeOptions, cutoff: Date) {
  let total = 0;
  for (;;) {
    const changed = await db.$executeRaw`
      UPDATE approvals SET prompt = '', prompt_truncated = true WHERE id IN (
        SELECT id FROM approvals
        WHERE requested_at < ${cutoff} AND status <> 'pending' AND prompt <> ''
        LIMIT ${batchSize})`;
    total += changed;
    if (changed === 0) return total;
  }
}

/**
 * Deletes approvals requested before `cutoff` whose every use is over:
 * settled, and any grant past its end. Their votes go with them; the
 * sessions that named them keep what they recorded of them.
 */
async function purgeApprovals({ db, batchSize = DEFAULT_BATCH }: PurgeOptions, cutoff: Date) {
  let total = 0;
  for (;;) {
    const deleted = await db.$executeRaw`
      DELETE FROM approvals WHERE id IN (
        SELECT id FROM approvals
        WHERE requested_at < ${cutoff} AND status <> 'pending'
          AND (grant_expires_at IS NULL OR grant_expires_at < ${cutoff})
        LIMIT ${batchSize})`;
    total += deleted;
    if (deleted === 0) return total;
  }
}

/**
 * Deletes sessions received before `cutoff`. The chain is cut only at a
 * prefix: the sessions before the first one still kept, in chain order (a
 * record delivered late, with an old receivedAt, waits for the sessions
 * chained before it). Before deleting, the segment is verified and a
 * `chain` checkpoint records the last deleted session's sequence and hash,
 * where verification starts from then on.
 */
async function purgeSessions({ db, by, logger, batchSize = DEFAULT_BATCH }: PurgeOptions, cutoff: Date) {
  let checkpoint: PurgeResult["checkpoint"] = null;
  const firstKept = await db.session.findFirst({
    where: { chainSeq: { not: null }, receivedAt: { gte: cutoff } },
    orderBy: { chainSeq: "asc" },
    select: { chainSeq: true },
  });
  const cut = await db.session.findFirst({
    where: { chainSeq: firstKept?.chainSeq ? { lt: firstKept.chainSeq } : { not: null } },
    orderBy: { chainSeq: "desc" },
    select: { chainSeq: true, hash: true },
  });
  const previous = await latestChainCheckpoint(db);
  if (cut?.chainSeq && cut.hash && (!previous || cut.chainSeq > previous.chainSeq)) {
    // A checkpoint vouches for everything before it once those sessions are
    // gone, so the segment must verify first: purging over a broken link
    // would erase the evidence of tampering.
    const report = await verifyChain(db, { to: cut.chainSeq });
    if (report.status === "broken") {
      logger.error(
        { firstBrokenAt: report.firstBrokenAt },
        "retention: the audit chain does not verify up to the cut; no session was deleted",
      );
      return { sessions: 0, checkpoint, refused: report.firstBrokenAt };
    }
    await db.auditCheckpoint.create({
      data: { kind: "chain", createdBy: by, chainSeq: cut.chainSeq, hash: cut.hash },
    });
    checkpoint = { chainSeq: Number(cut.chainSeq), hash: cut.hash };
  }

  let sessions = 0;
  // Everything at or before the latest checkpoint goes, including what an
  // interrupted earlier run left behind; cascades take content and events.
  const through = (await latestChainCheckpoint(db))?.chainSeq;
  if (through !== undefined) {
    for (;;) {
      const deleted = await db.$executeRaw`
        DELETE FROM sessions WHERE id IN (
          SELECT id FROM sessions WHERE chain_seq <= ${through} ORDER BY chain_seq LIMIT ${batchSize})`;
      sessions += deleted;
      if (deleted === 0) break;
    }
  }
  // Sessions stored before the hash chain existed are in no chain: by age alone.
  for (;;) {
    const deleted = await db.$executeRaw`
      DELETE FROM sessions WHERE id IN (
        SELECT id FROM sessions WHERE chain_seq IS NULL AND received_at < ${cutoff} LIMIT ${batchSize})`;
    sessions += deleted;
    if (deleted === 0) break;
  }
  return { sessions, checkpoint, refused: null };
}

export interface RetentionOptions {
  /** Redis URL of the control plane's queues. */
  redisUrl: string;
  db: Database;
  policy: RetentionPolicy;
  logger: Logger;
  prefix?: string | undefined;
  /** How often the purge runs (default hourly). */
  everyMs?: number | undefined;
}

export interface RunningRetention {
  /** Queues one purge now, besides the schedule; resolves with its job id. */
  runNow(): Promise<string>;
  close(): Promise<void>;
}

/**
 * Schedules the purge with BullMQ's job scheduler and runs it. Every control
 * plane upserts the same scheduler, so a fleet has one schedule and each run
 * is one job, taken by one worker; a purge interrupted by a restart is simply
 * done by the next run.
 */
export async function startRetention(options: RetentionOptions): Promise<RunningRetention> {
  const { db, policy, logger } = options;
  // BullMQ workers block on Redis: their connection must wait out a Redis restart.
  const connection = { url: options.redisUrl, maxRetriesPerRequest: null };
  const shared = { connection, ...(options.prefix ? { prefix: options.prefix } : {}) };
  const queue = new Queue(RETENTION_QUEUE, shared);
  queue.on("error", (error) => logger.warn({ err: error }, "retention queue: connection error"));
  const jobOptions = { removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } };
  await queue.upsertJobScheduler(
    RETENTION_SCHEDULER_ID,
    { every: options.everyMs ?? DEFAULT_INTERVAL_MS },
    { name: RETENTION_JOB_NAME, opts: jobOptions },
  );
  const worker = new Worker<unknown, PurgeResult>(
    RETENTION_QUEUE,
    async (job) => {
      const result = await purgeExpired({ db, policy, logger, by: `retention job ${job.id ?? "?"}` });
      logger.info({ ...result, jobId: job.id }, "retention: purge done");
      return result;
    },
    // One purge at a time per control plane; the scheduler makes one job per interval for the fleet.
    { ...shared, concurrency: 1 },
  );
  worker.on("error", (error) => logger.warn({ err: error }, "retention worker: connection error"));
  worker.on("failed", (job, error) => logger.error({ err: error, jobId: job?.id }, "retention: purge failed"));
  await worker.waitUntilReady();
  return {
    async runNow() {
      const job = await queue.add(RETENTION_JOB_NAME, {}, jobOptions);
      return job.id as string;
    },
    async close() {
      await worker.close();
      await queue.close();
    },
  };
}
