// The state changes of approvals that other features make inside their own
// transactions: expiry (a timer, the sweep, a decision that comes too late)
// and withdrawal (a revoked API key, a changed or deleted policy). Each
// returns the approvals it changed; the caller names them in its
// configuration change, so gateways drop the grants and release requests
// waiting on them, and publishes after commit.
import { Prisma } from "@modelgate/db";
import type { ConfigChange } from "../../gateway-link/changes.js";

/** How many overdue approvals one expiry statement takes: each transaction stays short. */
export const EXPIRY_BATCH = 500;

export const approvalChanges = (ids: readonly string[]): ConfigChange[] => ids.map((id) => ({ kind: "approval", id }));

/**
 * Expires pending approvals whose expiry has passed at `now`: one of them
 * (`id`), or a batch of the oldest. The sweep skips rows another transaction
 * holds (a decision in progress settles them itself); a single approval
 * waits for its row, so what it reports is what happened.
 */
export async function expireOverdue(
  tx: Prisma.TransactionClient,
  now: Date,
  { id, limit = EXPIRY_BATCH }: { id?: string | undefined; limit?: number } = {},
): Promise<string[]> {
  const only = id === undefined ? Prisma.empty : Prisma.sql`AND id = ${id}::uuid`;
  const locking = id === undefined ? Prisma.sql`FOR UPDATE SKIP LOCKED` : Prisma.sql`FOR UPDATE`;
  const rows = await tx.$queryRaw<{ id: string }[]>`
    UPDATE approvals SET status = 'expired', decided_at = ${now}
    WHERE id IN (
      SELECT id FROM approvals
      WHERE status = 'pending' AND expires_at <= ${now} ${only}
      ORDER BY expires_at LIMIT ${limit} ${locking})
    AND status = 'pending'
    RETURNING id::text AS id`;
  return rows.map((row) => row.id);
}

/** Exporters hear of approvals another feature expired (the approvals service's announceExpired). */
export interface ApprovalWithdrawalNotice {
  announceExpired(ids: readonly string[]): Promise<void>;
}

export type WithdrawnBy = { policyId: string } | { apiKeyId: string };

/**
 * Withdraws what approvals of a policy or an API key give, because what they
 * were granted under changed: grants in force are voided, pending
 * approvals expire (nobody can approve under a policy that no longer asks).
 * Both keep `void_reason`, for the trail.
 */
export async function withdrawApprovals(
  tx: Prisma.TransactionClient,
  by: WithdrawnBy,
  reason: string,
  now: Date,
): Promise<{ voided: string[]; expired: string[] }> {
  const whose =
    "policyId" in by ? Prisma.sql`policy_id = ${by.policyId}::uuid` : Prisma.sql`api_key_id = ${by.apiKeyId}::uuid`;
  const voided = await tx.$queryRaw<{ id: string }[]>`
    UPDATE approvals SET voided_at = ${now}, void_reason = ${reason}
    WHERE ${whose} AND status = 'approved' AND voided_at IS NULL AND grant_expires_at > ${now}
      AND (grant_kind = 'window' OR used_at IS NULL)
    RETURNING id::text AS id`;
  const expired = await tx.$queryRaw<{ id: string }[]>`
    UPDATE approvals SET status = 'expired', decided_at = ${now}, voided_at = ${now}, void_reason = ${reason}
    WHERE ${whose} AND status = 'pending'
    RETURNING id::text AS id`;
  return { voided: voided.map((row) => row.id), expired: expired.map((row) => row.id) };
}
