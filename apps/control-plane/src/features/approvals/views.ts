// One approval row, with its votes, as each reader sees it: the REST API,
// gateways (the configuration stream) and exporters (events).
import type { Prisma } from "@modelgate/db";
import type { ApprovalInput } from "@modelgate/protocol";
import type { ApprovalEventBody, ApprovalEventKind } from "../exporters/events.js";
import type { ApprovalSummaryView, ApprovalView } from "./schemas.js";

export type ApprovalRow = Prisma.ApprovalGetPayload<{ include: { votes: true } }>;

/** Votes in the order they were cast. */
export const VOTES_IN_ORDER = {
  votes: { orderBy: [{ decidedAt: "asc" }, { approverId: "asc" }] },
} satisfies Prisma.ApprovalInclude;

/** Whether the grant admits requests at `now`: approved, not voided, not past its end, and (request grants) not used. */
function inForce(row: ApprovalRow, now: Date): boolean {
  return (
    row.status === "approved" &&
    row.voidedAt === null &&
    row.grantExpiresAt !== null &&
    row.grantExpiresAt > now &&
    (row.grantKind === "window" || row.usedAt === null)
  );
}

/** The same condition as a query: the approvals a snapshot carries. */
export function inForceWhere(now: Date): Prisma.ApprovalWhereInput {
  return {
    status: "approved",
    voidedAt: null,
    grantExpiresAt: { gt: now },
    OR: [{ grantKind: "window" }, { usedAt: null }],
  };
}

const iso = (value: Date | null) => value?.toISOString() ?? null;

export function toApprovalSummary(row: ApprovalRow, url: string, now = new Date()): ApprovalSummaryView {
  return {
    id: row.id,
    status: row.status,
    subject: {
      id: row.subjectId,
      email: row.subjectEmail,
      groups: row.subjectGroups,
      authMethod: row.authMethod,
      issuer: row.issuer,
      apiKeyId: row.apiKeyId,
    },
    connection: row.connection,
    model: row.model,
    operation: row.operation,
    policy: { id: row.policyId, name: row.policyName },
    rule: row.rule,
    field: row.field,
    reason: row.reason,
    requestedAt: row.requestedAt.toISOString(),
    expiresAt: row.expiresAt.toISOString(),
    decidedAt: iso(row.decidedAt),
    grant: {
      kind: row.grantKind,
      windowMinutes: row.windowMinutes,
      grantExpiresAt: iso(row.grantExpiresAt),
      usedAt: iso(row.usedAt),
      usedSessionId: row.usedSessionId,
      voidedAt: iso(row.voidedAt),
      voidReason: row.voidReason,
      inForce: inForce(row, now),
    },
    minApprovals: row.minApprovals,
    approverGroups: row.approverGroups,
    votes: row.votes.map((vote) => ({
      approverId: vote.approverId,
      email: vote.approverEmail,
      decision: vote.decision as "approve" | "deny",
      comment: vote.comment,
      at: vote.decidedAt.toISOString(),
    })),
    requestSessionId: row.requestSessionId,
    url,
  };
}

export function toApprovalView(row: ApprovalRow, url: string, now = new Date()): ApprovalView {
  return { ...toApprovalSummary(row, url, now), prompt: row.prompt, promptTruncated: row.promptTruncated };
}

const millis = (value: Date | null) => value?.getTime() ?? 0;

/** A decided approval as gateways receive it (config.proto, message Approval). */
export function toApprovalMessage(row: ApprovalRow, now: Date): ApprovalInput {
  return {
    id: row.id,
    status: row.status,
    inForce: inForce(row, now),
    subjectKey: row.subjectKey,
    connection: row.connection,
    model: row.model,
    operation: row.operation,
    policyId: row.policyId,
    rule: row.rule ?? -1,
    grant: row.grantKind,
    bodySha256: row.bodySha256,
    grantExpiresAt: millis(row.grantExpiresAt),
    decidedAt: millis(row.decidedAt),
    deciders: row.votes.map((vote) => ({
      id: vote.approverId,
      email: vote.approverEmail ?? "",
      decision: vote.decision,
      comment: vote.comment ?? "",
      at: vote.decidedAt.getTime(),
    })),
  };
}

/** What exporters send about an approval: who asked, for what, why, who decided. Never the prompt. */
export function toApprovalEventBody(row: ApprovalRow, event: ApprovalEventKind, url: string): ApprovalEventBody {
  return {
    event,
    id: row.id,
    subject: { id: row.subjectId, email: row.subjectEmail },
    connection: row.connection,
    model: row.model,
    operation: row.operation,
    policyId: row.policyId,
    policyName: row.policyName,
    rule: row.rule,
    reason: row.reason,
    url,
    requestedAt: row.requestedAt.toISOString(),
    expiresAt: row.expiresAt.toISOString(),
    decidedAt: iso(row.decidedAt),
    deciders: row.votes.map((vote) => ({
      id: vote.approverId,
      email: vote.approverEmail,
      decision: vote.decision as "approve" | "deny",
      comment: vote.comment,
      at: vote.decidedAt.toISOString(),
    })),
  };
}
