import type { Database, Prisma } from "@modelgate/db";
import type { Principal } from "../../http/auth.js";
import { type Page, toPage } from "../../http/schemas.js";

/** Who made a change, and in which request. */
export interface Actor {
  principal: Principal;
  requestId: string;
}

export interface AdminChange {
  action: string;
  targetType: string;
  targetId: string;
  before?: unknown;
  after?: unknown;
}

type JsonValue = Prisma.InputJsonValue;
const toJson = (value: unknown) => (value === undefined ? undefined : (JSON.parse(JSON.stringify(value)) as JsonValue));

/**
 * Writes one admin audit entry. Callers pass their transaction, so the entry
 * commits or rolls back together with the change it describes.
 */
export async function recordAdminChange(tx: Prisma.TransactionClient, actor: Actor, change: AdminChange) {
  await tx.adminAuditLog.create({
    data: {
      actor: actor.principal.id,
      actorType: actor.principal.kind,
      action: change.action,
      targetType: change.targetType,
      targetId: change.targetId,
      before: toJson(change.before),
      after: toJson(change.after),
      requestId: actor.requestId,
    },
  });
}

export interface AdminAuditEntryView {
  id: string;
  at: string;
  actor: string;
  actorType: string;
  action: string;
  targetType: string;
  targetId: string;
  before: unknown;
  after: unknown;
  requestId: string | null;
}

export function createAdminAuditService({ db }: { db: Database }) {
  return {
    /** Newest first. */
    async list({ limit, cursor }: { limit: number; cursor?: string | undefined }): Promise<Page<AdminAuditEntryView>> {
      const rows = await db.adminAuditLog.findMany({
        where: cursor ? { id: { lt: BigInt(cursor) } } : {},
        orderBy: { id: "desc" },
        take: limit + 1,
      });
      return toPage(
        rows,
        limit,
        (row) => row.id.toString(),
        (row) => ({
          id: row.id.toString(),
          at: row.at.toISOString(),
          actor: row.actor,
          actorType: row.actorType,
          action: row.action,
          targetType: row.targetType,
          targetId: row.targetId,
          before: row.before,
          after: row.after,
          requestId: row.requestId,
        }),
      );
    },
  };
}

export type AdminAuditService = ReturnType<typeof createAdminAuditService>;
