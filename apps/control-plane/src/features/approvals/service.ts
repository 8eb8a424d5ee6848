// Just-in-time human approvals (docs/approvals.md): gateways open them for
// requests a policy holds (RequestApproval) and use request grants
// (ConsumeApproval); people list, read and decide them through the API;
// timers expire them. Every change gateways must hear of (a decision, an
// expiry, a use) is a configuration change, published after commit.
import { createHash, randomUUID } from "node:crypto";
import type { Logger } from "@modelgate/core";
import type { Database, Prisma } from "@modelgate/db";
import type { ApprovalInput } from "@modelgate/protocol";
import { type ConfigPublishing, recordConfigChange } from "../../gateway-link/changes.js";
import type { Principal, Role } from "../../http/auth.js";
import { ApiError, forbidden, notFound } from "../../http/errors.js";
import { type Actor, recordAdminChange } from "../admin-audit/service.js";
import type { ApprovalEventBody, ApprovalEventKind } from "../exporters/events.js";
import { currentApprovalSettings } from "./requirement.js";
import {
  type ApprovalListQuery,
  type ApprovalRequestInput,
  type ApprovalSummaryView,
  type ApprovalView,
  type ConsumeApprovalInput,
  type DecisionBody,
  encodeApprovalCursor,
} from "./schemas.js";
import { approvalChanges, EXPIRY_BATCH, expireOverdue } from "./transitions.js";
import {
  type ApprovalRow,
  inForceWhere,
  toApprovalEventBody,
  toApprovalMessage,
  toApprovalSummary,
  toApprovalView,
  VOTES_IN_ORDER,
} from "./views.js";

const DEFAULT_MAX_PENDING_PER_SUBJECT = 20;

/** Where exporters and alert rules hear of approvals; called after commit, never with the prompt. */
export interface ApprovalEventSink {
  approval(event: ApprovalEventBody, context: { requestSessionId: string }): Promise<void>;
}

/** Arranges for an approval to expire at its time (expiry.ts: a BullMQ delayed job or an in-process timer). */
type ScheduleExpiry = (id: string, expiresAt: Date) => Promise<void>;

export interface ApprovalServiceOptions {
  db: Database;
  config: ConfigPublishing;
  logger: Logger;
  /** The base of approval URLs (`<base>/<id>`); a function, since the default is the API's own address, known once it listens. */
  urlBase: () => string;
  /** Pending approvals one subject may have at once (MODELGATE_APPROVAL_MAX_PENDING_PER_SUBJECT). */
  maxPendingPerSubject?: number | undefined;
  events?: ApprovalEventSink | undefined;
  scheduleExpiry?: ScheduleExpiry | undefined;
}

export type ApprovalTicket =
  | { outcome: "pending"; id: string; url: string; expiresAt: Date; created: boolean }
  /** A grant in force admits the request already (its delta may not have reached the gateway yet). */
  | { outcome: "granted"; url: string; grant: ApprovalInput }
  | { outcome: "too_many_pending" }
  | { outcome: "policy_changed" };

/** Roles that see every approval; anyone else sees those their groups may decide. */
const SEES_ALL: readonly Role[] = ["admin", "auditor", "approver"];

const MINUTE_MS = 60_000;

/** Identical requests (the same subject, target, rule and body) share one pending approval. */
function dedupeKeyOf(input: ApprovalRequestInput): string {
  return createHash("sha256")
    .update(
      [
        input.subject.key,
        input.connection,
        input.model,
        input.operation,
        input.policyId,
        String(input.rule),
        input.bodySha256,
      ].join("\n"),
    )
    .digest("hex");
}

function seesAll(principal: Principal): boolean {
  return SEES_ALL.some((role) => principal.roles.has(role));
}

function inApproverGroups(row: { approverGroups: string[] }, principal: Principal): boolean {
  return row.approverGroups.some((group) => principal.groups.includes(group));
}

function visibleTo(row: ApprovalRow, principal: Principal): boolean {
  return seesAll(principal) || inApproverGroups(row, principal);
}

const sameEmail = (a: string | null | undefined, b: string | null | undefined) =>
  Boolean(a && b && a.toLowerCase() === b.toLowerCase());

/** Whether `principal` is the person who made the request: the same OIDC identity, or the same email. */
function isRequester(row: ApprovalRow, principal: Principal): boolean {
  const sameIdentity =
    row.authMethod === "oidc" && row.subjectId === principal.id && (row.issuer ?? "") === (principal.issuer ?? "");
  return sameIdentity || sameEmail(row.subjectEmail, principal.email);
}

const alreadyDecided = (row: ApprovalRow) =>
  new ApiError("already_decided", `the approval was ${row.status} at ${row.decidedAt?.toISOString() ?? "?"}`);
const expiredError = (at: Date) =>
  new ApiError("approval_expired", `the approval expired at ${at.toISOString()}; the caller must ask again`);

export function createApprovalService(options: ApprovalServiceOptions) {
  const { db, config, logger } = options;
  const maxPending = options.maxPendingPerSubject ?? DEFAULT_MAX_PENDING_PER_SUBJECT;
  const urlOf = (id: string) => `${options.urlBase()}/${id}`;
  const sending = new Set<Promise<void>>();

  /**
   * Hands events to the sink without holding up the caller: a decision is
   * committed and answered even while the export queue is away (the event
   * is then lost, and logged).
   */
  const announce = (rows: readonly ApprovalRow[], kind: ApprovalEventKind) => {
    const sink = options.events;
    if (!sink) return;
    for (const row of rows) {
      const sent = sink
        .approval(toApprovalEventBody(row, kind, urlOf(row.id)), { requestSessionId: row.requestSessionId })
        .catch((error: unknown) =>
          logger.warn(
            { err: error, approvalId: row.id, event: kind },
            "could not hand an approval event to the exporters",
          ),
        )
        .finally(() => sending.delete(sent));
      sending.add(sent);
    }
  };

  const readRows = (ids: readonly string[]) =>
    ids.length === 0
      ? Promise.resolve([])
      : db.approval.findMany({ where: { id: { in: [...ids] } }, include: VOTES_IN_ORDER });

  /** After a commit that expired approvals: gateways drop them, exporters hear of it. */
  const afterExpiry = async (ids: readonly string[]) => {
    if (ids.length === 0) return;
    await config.publish();
    announce(await readRows(ids), "expired");
  };

  const schedule = async (id: string, expiresAt: Date) => {
    try {
      await options.scheduleExpiry?.(id, expiresAt);
    } catch (error) {
      // The periodic sweep expires it instead, a little late.
      logger.warn({ err: error, approvalId: id }, "could not schedule an approval's expiry; the sweep will expire it");
    }
  };

  return {
    /** RequestApproval: opens an approval, or returns the identical one pending. */
    async request(input: ApprovalRequestInput): Promise<ApprovalTicket> {
      const now = new Date();
      const dedupeKey = dedupeKeyOf(input);
      const result = await db.$transaction(async (tx) => {
        // One subject's requests one at a time: the cap and the deduplication
        // below read what the previous one wrote.
        await tx.$queryRaw`
          SELECT 1 FROM (SELECT pg_advisory_xact_lock(hashtextextended(${`approval-subject:${input.subject.key}`}, 0))) AS locked`;
        // FOR SHARE: a policy change (or an API key's revocation) waits for
        // this approval to commit and then withdraws it, or commits first and
        // is read here; an approval never outlives the change unseen.
        await tx.$queryRaw`SELECT 1 FROM policies WHERE id = ${input.policyId}::uuid FOR SHARE`;
        const policy = await tx.policy.findUnique({ where: { id: input.policyId } });
        const settings = currentApprovalSettings(policy, input.rule);
        if (!policy || !settings) return { ticket: { outcome: "policy_changed" } as const, expired: [] };
        if (input.subject.authMethod === "api_key") {
          const [key] = await tx.$queryRaw<{ usable: boolean }[]>`
            SELECT revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ${now}) AS usable
            FROM api_keys WHERE id = ${input.subject.id}::uuid FOR SHARE`;
          // The gateway's configuration is behind in this too: nothing is opened.
          if (!key?.usable) return { ticket: { outcome: "policy_changed" } as const, expired: [] };
        }

        // Approved a moment ago, its delta still on the way to this gateway:
        // the request goes on under that grant rather than open a new approval.
        const granted = await tx.approval.findFirst({
          where: {
            AND: [
              inForceWhere(now),
              {
                subjectKey: input.subject.key,
                connection: input.connection,
                model: input.model,
                operation: input.operation,
                policyId: input.policyId,
                rule: input.rule < 0 ? null : input.rule,
                OR: [{ grantKind: "window" }, { bodySha256: input.bodySha256 }],
              },
            ],
          },
          include: VOTES_IN_ORDER,
          // A request grant made for exactly this body first.
          orderBy: [{ grantKind: "asc" }, { decidedAt: "desc" }],
        });
        if (granted) {
          return {
            ticket: { outcome: "granted", url: urlOf(granted.id), grant: toApprovalMessage(granted, now) } as const,
            expired: [],
          };
        }

        let expired: string[] = [];
        const existing = await tx.approval.findFirst({ where: { dedupeKey, status: "pending" } });
        if (existing && existing.expiresAt > now) {
          return {
            ticket: {
              outcome: "pending",
              id: existing.id,
              url: urlOf(existing.id),
              expiresAt: existing.expiresAt,
              created: false,
            } as const,
            expired,
          };
        }
        // Overdue but not swept yet: it expires now, and a new one opens.
        if (existing) expired = await expireOverdue(tx, now, { id: existing.id });

        const pending = await tx.approval.count({
          where: { subjectKey: input.subject.key, status: "pending", expiresAt: { gt: now } },
        });
        if (pending >= maxPending) {
          if (expired.length > 0) await recordConfigChange(tx, approvalChanges(expired));
          return { ticket: { outcome: "too_many_pending" } as const, expired };
        }
        const row = await tx.approval.create({
          data: {
            // Random (v4), not time-ordered: knowing one approval's id says nothing about another's.
            id: randomUUID(),
            subjectKey: input.subject.key,
            subjectId: input.subject.id,
            subjectEmail: input.subject.email ?? null,
            subjectGroups: input.subject.groups,
            authMethod: input.subject.authMethod,
            issuer: input.subject.issuer ?? null,
            apiKeyId: input.subject.authMethod === "api_key" ? input.subject.id : null,
            connection: input.connection,
            model: input.model,
            operation: input.operation,
            policyId: policy.id,
            policyName: policy.name,
            rule: input.rule < 0 ? null : input.rule,
            field: input.field,
            reason: input.reason,
            bodySha256: input.bodySha256,
            prompt: input.prompt,
            promptTruncated: input.promptTruncated,
            dedupeKey,
            approverGroups: settings.approverGroups,
            minApprovals: settings.minApprovals,
            grantKind: settings.grant,
            windowMinutes: settings.windowMinutes ?? null,
            requestSessionId: input.sessionId,
            gatewayId: input.gatewayId,
            requestedAt: now,
            expiresAt: new Date(now.getTime() + settings.expiresMinutes * MINUTE_MS),
          },
          include: VOTES_IN_ORDER,
        });
        if (expired.length > 0) await recordConfigChange(tx, approvalChanges(expired));
        return {
          ticket: {
            outcome: "pending",
            id: row.id,
            url: urlOf(row.id),
            expiresAt: row.expiresAt,
            created: true,
          } as const,
          created: row,
          expired,
        };
      });
      await afterExpiry(result.expired);
      if ("created" in result && result.created) {
        const row = result.created;
        logger.info(
          { approvalId: row.id, policyId: row.policyId, connection: row.connection, gatewayId: row.gatewayId },
          "approval requested",
        );
        await schedule(row.id, row.expiresAt);
        announce([row], "requested");
      }
      return result.ticket;
    },

    /**
     * ConsumeApproval: uses a request grant for one request. One conditional
     * update, so of any number of concurrent callers on any number of
     * gateways exactly one is granted.
     */
    async consume(input: ConsumeApprovalInput): Promise<boolean> {
      const now = new Date();
      const granted = await db.$transaction(async (tx) => {
        const { count } = await tx.approval.updateMany({
          where: {
            id: input.approvalId,
            status: "approved",
            grantKind: "request",
            usedAt: null,
            voidedAt: null,
            grantExpiresAt: { gt: now },
            subjectKey: input.subjectKey,
            bodySha256: input.bodySha256,
          },
          data: { usedAt: now, usedSessionId: input.sessionId },
        });
        if (count === 0) return false;
        // Gateways drop the used grant.
        await recordConfigChange(tx, approvalChanges([input.approvalId]));
        return true;
      });
      if (granted) await config.publish();
      return granted;
    },

    /** Newest first; people without a role that sees all see the approvals their groups may decide. */
    async list(query: ApprovalListQuery, principal: Principal) {
      const and: Prisma.ApprovalWhereInput[] = [];
      if (!seesAll(principal)) and.push({ approverGroups: { hasSome: [...principal.groups] } });
      if (query.status) and.push({ status: query.status });
      if (query.connection) and.push({ connection: query.connection });
      if (query.subject) {
        and.push({
          OR: [{ subjectId: query.subject }, { subjectEmail: { equals: query.subject, mode: "insensitive" } }],
        });
      }
      if (query.cursor) {
        const { requestedAt, id } = query.cursor;
        and.push({ OR: [{ requestedAt: { lt: requestedAt } }, { requestedAt, id: { lt: id } }] });
      }
      const rows = await db.approval.findMany({
        where: { AND: and },
        orderBy: [{ requestedAt: "desc" }, { id: "desc" }],
        take: query.limit + 1,
        include: VOTES_IN_ORDER,
      });
      const items = rows.slice(0, query.limit);
      const last = items.at(-1);
      const now = new Date();
      return {
        items: items.map((row): ApprovalSummaryView => toApprovalSummary(row, urlOf(row.id), now)),
        nextCursor: rows.length > query.limit && last ? encodeApprovalCursor(last) : null,
      };
    },

    /** One approval with its prompt; 404 for one the caller may not see, as for one that does not exist. */
    async get(id: string, principal: Principal): Promise<ApprovalView> {
      const row = await db.approval.findUnique({ where: { id }, include: VOTES_IN_ORDER });
      if (!row || !visibleTo(row, principal)) throw notFound(`no approval with id ${id}`);
      return toApprovalView(row, urlOf(row.id));
    },

    /**
     * One person's vote. The row is locked for the whole decision, so votes,
     * expiry and withdrawal of one approval happen one after the other.
     */
    async decide(id: string, decision: "approve" | "deny", body: DecisionBody, actor: Actor): Promise<ApprovalView> {
      const { principal } = actor;
      const now = new Date();
      const outcome = await db.$transaction(async (tx) => {
        // What can withdraw the approval is locked first (FOR SHARE, in the
        // order a policy change or a key's revocation locks them: the policy
        // or key, then its approvals), so a decision and a withdrawal happen
        // one after the other: a policy changed (or key revoked) first has
        // expired the approval by the time it is read below; one changed
        // after sees it approved and voids the grant. Without this, the
        // withdrawal's two updates (approved, then pending) could both miss
        // an approval turning from pending to approved between them.
        const [owner] = await tx.$queryRaw<{ policy_id: string; api_key_id: string | null }[]>`
          SELECT policy_id::text, api_key_id::text FROM approvals WHERE id = ${id}::uuid`;
        if (owner) {
          await tx.$queryRaw`SELECT 1 FROM policies WHERE id = ${owner.policy_id}::uuid FOR SHARE`;
          if (owner.api_key_id)
            await tx.$queryRaw`SELECT 1 FROM api_keys WHERE id = ${owner.api_key_id}::uuid FOR SHARE`;
        }
        const locked = await tx.$queryRaw<{ id: string }[]>`SELECT id FROM approvals WHERE id = ${id}::uuid FOR UPDATE`;
        const row = locked.length > 0 ? await tx.approval.findUnique({ where: { id }, include: VOTES_IN_ORDER }) : null;
        if (!row || !visibleTo(row, principal)) throw notFound(`no approval with id ${id}`);
        if (principal.kind !== "oidc") {
          throw forbidden("approvals are decided by named people: sign in with your identity provider");
        }
        if (!principal.roles.has("approver") && !inApproverGroups(row, principal)) {
          throw forbidden(
            `deciding this approval needs membership of one of its approver groups (${row.approverGroups.join(", ") || "none"}) or the approver role`,
          );
        }
        if (isRequester(row, principal)) {
          throw new ApiError("self_approval", "a request cannot be decided by the person who made it");
        }
        if (row.status === "expired") throw expiredError(row.decidedAt ?? row.expiresAt);
        if (row.status !== "pending") throw alreadyDecided(row);
        if (row.expiresAt <= now) {
          // Too late: it expires now, and the caller hears so once that is committed.
          const expired = await expireOverdue(tx, now, { id });
          if (expired.length > 0) await recordConfigChange(tx, approvalChanges(expired));
          return { kind: "too_late", expired, expiresAt: row.expiresAt } as const;
        }
        const voted = row.votes.some(
          (vote) =>
            (vote.approverId === principal.id && vote.approverIssuer === (principal.issuer ?? "")) ||
            sameEmail(vote.approverEmail, principal.email),
        );
        if (voted) throw new ApiError("already_voted", "you have decided on this approval already");

        await tx.approvalVote.create({
          data: {
            approvalId: id,
            approverId: principal.id,
            approverIssuer: principal.issuer ?? "",
            approverEmail: principal.email ?? null,
            decision,
            comment: body.comment ?? null,
            decidedAt: now,
          },
        });
        const approvals = row.votes.filter((vote) => vote.decision === "approve").length + 1;
        // One denial decides; approvals decide once there are enough of them.
        const decided = decision === "deny" ? "denied" : approvals >= row.minApprovals ? "approved" : undefined;
        if (decided) {
          // A window grant admits for its window; a request grant waits for its
          // request as long as the approval could wait for a decision (expiresMinutes).
          const validityMs =
            row.grantKind === "window"
              ? (row.windowMinutes ?? 0) * MINUTE_MS
              : row.expiresAt.getTime() - row.requestedAt.getTime();
          await tx.approval.update({
            where: { id },
            data: {
              status: decided,
              decidedAt: now,
              ...(decided === "approved" ? { grantExpiresAt: new Date(now.getTime() + validityMs) } : {}),
            },
          });
        }
        const after = await tx.approval.findUniqueOrThrow({ where: { id }, include: VOTES_IN_ORDER });
        await recordAdminChange(tx, actor, {
          action: `approval.${decision}`,
          targetType: "approval",
          targetId: id,
          before: toApprovalSummary(row, urlOf(id), now),
          after: toApprovalSummary(after, urlOf(id), now),
        });
        if (decided) await recordConfigChange(tx, approvalChanges([id]));
        return { kind: "voted", row: after, decided } as const;
      });
      if (outcome.kind === "too_late") {
        await afterExpiry(outcome.expired);
        throw expiredError(outcome.expiresAt);
      }
      if (outcome.decided) {
        await config.publish();
        logger.info({ approvalId: id, status: outcome.decided }, "approval decided");
        announce([outcome.row], outcome.decided);
      }
      return toApprovalView(outcome.row, urlOf(id));
    },

    /**
     * Expires one approval if it is due. Returns its expiry when it is still
     * pending and not due yet (the timer fired early, or the expiry moved).
     */
    async expireOne(id: string): Promise<Date | undefined> {
      const now = new Date();
      const expired = await db.$transaction(async (tx) => {
        const ids = await expireOverdue(tx, now, { id });
        if (ids.length > 0) await recordConfigChange(tx, approvalChanges(ids));
        return ids;
      });
      if (expired.length > 0) {
        await afterExpiry(expired);
        return undefined;
      }
      const row = await db.approval.findUnique({ where: { id }, select: { status: true, expiresAt: true } });
      return row?.status === "pending" && row.expiresAt > now ? row.expiresAt : undefined;
    },

    /** Expires every overdue pending approval, in batches; returns how many. */
    async sweep(): Promise<number> {
      let total = 0;
      for (;;) {
        const now = new Date();
        const expired = await db.$transaction(async (tx) => {
          const ids = await expireOverdue(tx, now);
          if (ids.length > 0) await recordConfigChange(tx, approvalChanges(ids));
          return ids;
        });
        await afterExpiry(expired);
        total += expired.length;
        if (expired.length < EXPIRY_BATCH) return total;
      }
    },

    /** Pending approvals and when each expires: what a restarted control plane arms its timers for. */
    pendingExpiries(): Promise<{ id: string; expiresAt: Date }[]> {
      return db.approval.findMany({ where: { status: "pending" }, select: { id: true, expiresAt: true } });
    },

    /** Exporters hear of approvals another feature expired in its own transaction (a revoked key, a changed policy). */
    async announceExpired(ids: readonly string[]): Promise<void> {
      announce(await readRows(ids), "expired");
    },

    /** Waits for the events handed to the sink so far. */
    async close(): Promise<void> {
      await Promise.allSettled([...sending]);
    },
  };
}

export type ApprovalService = ReturnType<typeof createApprovalService>;
