import { createHash } from "node:crypto";
import type { AuditRecord } from "@modelgate/audit";
import { type Logger, uuidv7 } from "@modelgate/core";
import type { Database, Prisma } from "@modelgate/db";
import type { Redis } from "ioredis";
import type { AlertEventBody, ApprovalEventBody } from "../exporters/events.js";
import { sharedRead } from "../exporters/shared-read.js";
import { type BlockedRepeatedParams, parseRuleParams, type VolumeSpikeParams } from "./rules.js";

type AlertRow = Prisma.AlertGetPayload<object>;
type RuleRow = Prisma.AlertRuleGetPayload<object>;

export function toAlertBody(row: AlertRow): AlertEventBody {
  return {
    id: row.id,
    ruleId: row.ruleId,
    ruleName: row.ruleName,
    kind: row.kind,
    subject: row.subject,
    sessionIds: row.sessionIds,
    details: (row.details as Record<string, unknown>) ?? {},
    triggeredAt: row.triggeredAt.toISOString(),
    createdAt: row.createdAt.toISOString(),
  };
}

interface Candidate {
  rule: RuleRow;
  subject: string | null;
  sessionIds: string[];
  details: Record<string, unknown>;
  triggeredAt: Date;
  /** Alerts of this rule and subject closer than this (ms) to `triggeredAt` suppress the new one; 0: one per session. */
  cooldownMs: number;
}

/**
 * Evaluates the enabled alert rules against each stored session (the audit
 * worker's onStored hook), correctly with any number of control-plane
 * workers and with retried hooks:
 *
 * - blocked_repeated counts rows of the `sessions` table (index
 *   `subject_id, received_at`): the stored sessions are the truth, a retry
 *   counts nothing twice, and a session stored out of order is counted where
 *   it belongs. Each worker queries after its own commit, so whichever of
 *   the N sessions commits last sees all N.
 * - volume_spike counts requests per subject in Redis, in one HyperLogLog
 *   per fixed window (PFADD of the session id: atomic, idempotent under
 *   retries, 12 KB at most per key, about 0.8 % error at high counts and
 *   exact in practice at small ones), expiring after the baseline is past.
 *   A Postgres count here would scan (K+1) windows of a busy key's sessions
 *   on every one of its requests.
 * - Duplicates are suppressed in Postgres: per rule and subject, under a
 *   transaction-scoped advisory lock, no new alert while one of the same
 *   rule and subject lies within a window of the triggering session (the
 *   cooldown). approval_requested raises one alert per new approval
 *   (approvalRequested, fed by the approvals service): identical requests
 *   that join a pending approval, and the sessions they leave, raise none.
 *
 * Returns the alerts to send: new ones, and an existing one whose sessions
 * include this session (the hook's earlier attempt created it and may have
 * failed before enqueueing its export; re-sending is idempotent by job id).
 */
export function createAlertEvaluator({
  db,
  redis,
  keyPrefix,
  logger,
}: {
  db: Database;
  redis: Redis;
  /** Prefix of the Redis counter keys (tests give each file its own). */
  keyPrefix: string;
  logger: Logger;
}) {
  async function blockedRepeated(rule: RuleRow, params: BlockedRepeatedParams, record: AuditRecord) {
    const subject = record.subject?.id;
    if (!subject || !params.decisions.includes(record.decision)) return undefined;
    const at = new Date(record.receivedAt);
    const windowMs = params.windowSeconds * 1000;
    const sessions = await db.session.findMany({
      where: {
        subjectId: subject,
        decision: { in: params.decisions },
        receivedAt: { gt: new Date(at.getTime() - windowMs), lte: at },
      },
      select: { id: true },
      // The latest N up to this one: the triggering session is among them,
      // which is what lets a retried hook recognise (and re-send) its alert.
      orderBy: [{ receivedAt: "desc" }, { id: "desc" }],
      take: params.threshold,
    });
    if (sessions.length < params.threshold) return undefined;
    return {
      rule,
      subject,
      sessionIds: sessions.map((session) => session.id).reverse(),
      details: { threshold: params.threshold, windowSeconds: params.windowSeconds, decisions: params.decisions },
      triggeredAt: at,
      cooldownMs: windowMs,
    } satisfies Candidate;
  }

  async function volumeSpike(rule: RuleRow, params: VolumeSpikeParams, record: AuditRecord) {
    const subject = record.subject?.id;
    if (!subject) return undefined;
    const at = new Date(record.receivedAt);
    const windowMs = params.windowSeconds * 1000;
    const current = Math.floor(at.getTime() / windowMs);
    // The subject is hashed into the key: any characters, bounded length.
    const base = `${keyPrefix}:modelgate-alerts:volume:${rule.id}:${createHash("sha256").update(subject).digest("hex").slice(0, 32)}`;
    const keys = Array.from({ length: params.baselineWindows + 1 }, (_, back) => `${base}:${current - back}`);
    const [currentKey] = keys;
    if (!currentKey) return undefined;
    const pipeline = redis.multi();
    pipeline.pfadd(currentKey, record.sessionId);
    pipeline.pexpire(currentKey, windowMs * (params.baselineWindows + 2));
    for (const key of keys) pipeline.pfcount(key);
    const results = await pipeline.exec();
    if (!results) throw new Error("the volume counters' transaction was discarded");
    const counts = results.slice(2).map(([error, value]) => {
      if (error) throw error;
      return Number(value);
    });
    const [count = 0, ...previous] = counts;
    const baseline = previous.reduce((sum, value) => sum + value, 0) / params.baselineWindows;
    if (count < params.minCount || count < params.factor * baseline) return undefined;
    return {
      rule,
      subject,
      sessionIds: [record.sessionId],
      details: {
        count,
        baseline,
        factor: params.factor,
        minCount: params.minCount,
        windowSeconds: params.windowSeconds,
        baselineWindows: params.baselineWindows,
        windowStart: new Date(current * windowMs).toISOString(),
      },
      triggeredAt: at,
      cooldownMs: windowMs,
    } satisfies Candidate;
  }

  /** Stores the alert unless one covers it already; see the cooldown above. */
  async function raise(candidate: Candidate, sessionId: string): Promise<AlertRow | undefined> {
    const { rule, subject } = candidate;
    return db.$transaction(async (tx) => {
      const lockKey = candidate.cooldownMs > 0 ? `${rule.id}|${subject ?? ""}` : `${rule.id}|session|${sessionId}`;
      await tx.$queryRaw`SELECT 1 FROM (SELECT pg_advisory_xact_lock(hashtextextended(${lockKey}, 0))) AS locked`;
      const covering =
        candidate.cooldownMs > 0
          ? await tx.alert.findFirst({
              where: {
                ruleId: rule.id,
                subject,
                triggeredAt: {
                  gt: new Date(candidate.triggeredAt.getTime() - candidate.cooldownMs),
                  lt: new Date(candidate.triggeredAt.getTime() + candidate.cooldownMs),
                },
              },
              orderBy: { triggeredAt: "desc" },
            })
          : // Rule, subject and time narrow it through the index; the session settles it.
            await tx.alert.findFirst({
              where: { ruleId: rule.id, subject, triggeredAt: candidate.triggeredAt, sessionIds: { has: sessionId } },
            });
      if (covering) return covering.sessionIds.includes(sessionId) ? covering : undefined;
      return tx.alert.create({
        data: {
          id: uuidv7(),
          ruleId: rule.id,
          ruleName: rule.name,
          kind: rule.kind,
          subject,
          sessionIds: candidate.sessionIds,
          details: candidate.details as Prisma.InputJsonObject,
          triggeredAt: candidate.triggeredAt,
          createdAt: new Date(),
        },
      });
    });
  }

  // Read for each record, so a rule created a moment ago applies to the
  // next one; the records of one batch share the read.
  const enabledRules = sharedRead(() => db.alertRule.findMany({ where: { enabled: true }, orderBy: { id: "asc" } }));

  return {
    async evaluate(record: AuditRecord): Promise<AlertEventBody[]> {
      const rules = await enabledRules();
      const raised: AlertEventBody[] = [];
      for (const rule of rules) {
        const parsed = parseRuleParams(rule.kind, rule.params);
        if (!parsed) {
          logger.warn({ ruleId: rule.id }, "alert rule skipped: its parameters do not parse");
          continue;
        }
        let candidate: Candidate | undefined;
        if (parsed.kind === "blocked_repeated") candidate = await blockedRepeated(rule, parsed.params, record);
        else if (parsed.kind === "volume_spike") candidate = await volumeSpike(rule, parsed.params, record);
        if (!candidate) continue;
        const alert = await raise(candidate, record.sessionId);
        if (alert) raised.push(toAlertBody(alert));
      }
      return raised;
    },

    /**
     * The approval_requested rules, for an approval just opened: one alert
     * per rule and approval, linked to the session the request left (which
     * names the approval). Idempotent like `evaluate`.
     */
    async approvalRequested(approval: ApprovalEventBody, requestSessionId: string): Promise<AlertEventBody[]> {
      const rules = await db.alertRule.findMany({
        where: { enabled: true, kind: "approval_requested" },
        orderBy: { id: "asc" },
      });
      const raised: AlertEventBody[] = [];
      for (const rule of rules) {
        const alert = await raise(
          {
            rule,
            subject: approval.subject.id,
            sessionIds: [requestSessionId],
            details: {
              approvalId: approval.id,
              url: approval.url,
              connection: approval.connection,
              model: approval.model,
              operation: approval.operation,
              policyId: approval.policyId,
              policyName: approval.policyName,
              reason: approval.reason,
              expiresAt: approval.expiresAt,
            },
            triggeredAt: new Date(approval.requestedAt),
            cooldownMs: 0,
          },
          requestSessionId,
        );
        if (alert) raised.push(toAlertBody(alert));
      }
      return raised;
    },
  };
}
