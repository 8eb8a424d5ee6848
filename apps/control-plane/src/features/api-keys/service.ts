import { generateSecret, hashSecret, SECRET_PREFIX, secretDisplayPrefix, uuidv7 } from "@modelgate/core";
import type { ApiKey, Database, Prisma } from "@modelgate/db";
import { type ConfigPublishing, recordConfigChange } from "../../gateway-link/changes.js";
import { conflict, notFound } from "../../http/errors.js";
import { type Page, toPage } from "../../http/schemas.js";
import { type Actor, recordAdminChange } from "../admin-audit/service.js";
import { type ApprovalWithdrawalNotice, approvalChanges, withdrawApprovals } from "../approvals/transitions.js";
import type {
  ApiKeyView,
  CreateApiKey,
  CreatedApiKeyView,
  RotateApiKey,
  RotatedApiKeyView,
  UpdateApiKey,
} from "./schemas.js";

function statusOf(row: ApiKey, now: Date): ApiKeyView["status"] {
  if (row.revokedAt) return "revoked";
  if (row.expiresAt && row.expiresAt <= now) return "expired";
  return "active";
}

/** Until when the secret the last rotation replaced still works, if it still does. */
function overlapEnd(row: ApiKey, now: Date): Date | undefined {
  const end = row.previousKeyExpiresAt;
  return row.previousKeyHash !== null && end !== null && end > now ? end : undefined;
}

function toApiKeyView(row: ApiKey, now = new Date()): ApiKeyView {
  return {
    id: row.id,
    name: row.name,
    groups: row.groups,
    keyPrefix: row.keyPrefix,
    status: statusOf(row, now),
    expiresAt: row.expiresAt?.toISOString() ?? null,
    revokedAt: row.revokedAt?.toISOString() ?? null,
    lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
    createdAt: row.createdAt.toISOString(),
    createdBy: row.createdBy,
    rotatedAt: row.rotatedAt?.toISOString() ?? null,
    previousKeyExpiresAt: overlapEnd(row, now)?.toISOString() ?? null,
  };
}

/**
 * Locks a key's row for the rest of the transaction and reads it: two
 * concurrent changes of one key must neither record the same "before" nor
 * both rotate (which would leave a secret its caller was told works dead).
 */
async function lockKey(tx: Prisma.TransactionClient, id: string): Promise<ApiKey> {
  const [locked] = await tx.$queryRaw<{ id: string }[]>`SELECT id FROM api_keys WHERE id = ${id}::uuid FOR UPDATE`;
  if (!locked) throw notFound(`no API key with id ${id}`);
  return tx.apiKey.findUniqueOrThrow({ where: { id } });
}

function refuseRevoked(row: ApiKey): void {
  if (row.revokedAt) throw conflict(`the API key ${row.id} was revoked at ${row.revokedAt.toISOString()}`);
}

export function createApiKeyService({
  db,
  config,
  approvals,
}: {
  db: Database;
  config: ConfigPublishing;
  approvals?: ApprovalWithdrawalNotice | undefined;
}) {
  return {
    /** Issues a service-account key. Only its SHA-256 is stored; the key is returned once. */
    async create(input: CreateApiKey, actor: Actor): Promise<CreatedApiKeyView> {
      const key = generateSecret(SECRET_PREFIX.apiKey);
      const created = await db.$transaction(async (tx) => {
        const row = await tx.apiKey.create({
          data: {
            id: uuidv7(),
            name: input.name,
            groups: input.groups,
            keyHash: hashSecret(key),
            keyPrefix: secretDisplayPrefix(key, SECRET_PREFIX.apiKey),
            expiresAt: input.expiresAt ? new Date(input.expiresAt) : null,
            createdBy: actor.principal.id,
          },
        });
        await recordAdminChange(tx, actor, {
          action: "api_key.create",
          targetType: "api_key",
          targetId: row.id,
          after: toApiKeyView(row),
        });
        await recordConfigChange(tx, [{ kind: "api_key", id: row.id }]);
        return {
          id: row.id,
          name: row.name,
          groups: row.groups,
          expiresAt: row.expiresAt?.toISOString() ?? null,
          key,
        };
      });
      await config.publish();
      return created;
    },

    async list({ limit, cursor }: { limit: number; cursor?: string | undefined }): Promise<Page<ApiKeyView>> {
      const rows = await db.apiKey.findMany({
        where: cursor ? { id: { gt: cursor } } : {},
        orderBy: { id: "asc" },
        take: limit + 1,
      });
      const now = new Date();
      return toPage(
        rows,
        limit,
        (row) => row.id,
        (row) => toApiKeyView(row, now),
      );
    },

    async get(id: string): Promise<ApiKeyView> {
      const row = await db.apiKey.findUnique({ where: { id } });
      if (!row) throw notFound(`no API key with id ${id}`);
      return toApiKeyView(row);
    },

    /**
     * Changes what the patch names. A revoked key stays revoked: it cannot
     * be changed (409). An expired key can be given a later expiry, which
     * brings it back.
     */
    async update(id: string, patch: UpdateApiKey, actor: Actor): Promise<ApiKeyView> {
      const updated = await db.$transaction(async (tx) => {
        const before = await lockKey(tx, id);
        refuseRevoked(before);
        const row = await tx.apiKey.update({
          where: { id },
          data: {
            ...(patch.name !== undefined ? { name: patch.name } : {}),
            ...(patch.groups !== undefined ? { groups: patch.groups } : {}),
            ...(patch.expiresAt !== undefined
              ? { expiresAt: patch.expiresAt === null ? null : new Date(patch.expiresAt) }
              : {}),
          },
        });
        const view = toApiKeyView(row);
        await recordAdminChange(tx, actor, {
          action: "api_key.update",
          targetType: "api_key",
          targetId: id,
          before: toApiKeyView(before),
          after: view,
        });
        await recordConfigChange(tx, [{ kind: "api_key", id }]);
        return view;
      });
      await config.publish();
      return updated;
    },

    /**
     * Gives the key a new secret; the one it replaces keeps working for
     * `overlapSeconds` (never past the key's expiry), then stops. The key
     * keeps its id, so policies that name it, approvals it holds and its
     * sessions' subject stay as they are.
     *
     * One previous secret per key: while an overlap runs, another rotation
     * would have to cut the oldest secret off before the time the first one
     * announced, so it is refused (409), unless it asks for no overlap at
     * all: `overlapSeconds: 0` stops every earlier secret now, the way out
     * when a secret leaked.
     */
    async rotate(id: string, { overlapSeconds }: RotateApiKey, actor: Actor): Promise<RotatedApiKeyView> {
      const key = generateSecret(SECRET_PREFIX.apiKey);
      const rotated = await db.$transaction(async (tx) => {
        const before = await lockKey(tx, id);
        refuseRevoked(before);
        const now = new Date();
        if (before.expiresAt && before.expiresAt <= now) {
          throw conflict(
            `the API key ${id} expired at ${before.expiresAt.toISOString()}: give it a later expiresAt first`,
          );
        }
        const running = overlapEnd(before, now);
        if (running && overlapSeconds > 0) {
          throw conflict(
            `a rotation of the API key ${id} is in progress until ${running.toISOString()}: rotate again after it ends, or with overlapSeconds 0 to stop every earlier secret now`,
          );
        }
        const end = new Date(now.getTime() + overlapSeconds * 1000);
        const previousKeyExpiresAt = before.expiresAt && before.expiresAt < end ? before.expiresAt : end;
        const row = await tx.apiKey.update({
          where: { id },
          data: {
            keyHash: hashSecret(key),
            keyPrefix: secretDisplayPrefix(key, SECRET_PREFIX.apiKey),
            rotatedAt: now,
            ...(overlapSeconds > 0
              ? { previousKeyHash: before.keyHash, previousKeyExpiresAt }
              : { previousKeyHash: null, previousKeyExpiresAt: null }),
          },
        });
        await recordAdminChange(tx, actor, {
          action: "api_key.rotate",
          targetType: "api_key",
          targetId: id,
          before: toApiKeyView(before, now),
          after: { ...toApiKeyView(row, now), overlapSeconds },
        });
        await recordConfigChange(tx, [{ kind: "api_key", id }]);
        return {
          id: row.id,
          name: row.name,
          groups: row.groups,
          expiresAt: row.expiresAt?.toISOString() ?? null,
          keyPrefix: row.keyPrefix,
          key,
          rotatedAt: now.toISOString(),
          previousKeyExpiresAt: (overlapSeconds > 0 ? previousKeyExpiresAt : now).toISOString(),
        };
      });
      await config.publish();
      return rotated;
    },

    /**
     * Revokes a key at once, with what its approvals granted (voided) and
     * its pending approvals (expired). Revoking a revoked key changes nothing.
     */
    async revoke(id: string, actor: Actor): Promise<void> {
      const revoked = await db.$transaction(async (tx) => {
        const before = await tx.apiKey.findUnique({ where: { id } });
        if (!before) throw notFound(`no API key with id ${id}`);
        // Conditional update: of concurrent revocations exactly one changes
        // the row and writes the audit entry; the others change nothing.
        const { count } = await tx.apiKey.updateMany({
          where: { id, revokedAt: null },
          data: { revokedAt: new Date() },
        });
        if (count === 0) return undefined;
        const after = await tx.apiKey.findUniqueOrThrow({ where: { id } });
        await recordAdminChange(tx, actor, {
          action: "api_key.revoke",
          targetType: "api_key",
          targetId: id,
          before: toApiKeyView(before),
          after: toApiKeyView(after),
        });
        const withdrawn = await withdrawApprovals(tx, { apiKeyId: id }, "the API key was revoked", new Date());
        await recordConfigChange(tx, [
          { kind: "api_key", id },
          ...approvalChanges([...withdrawn.voided, ...withdrawn.expired]),
        ]);
        return withdrawn;
      });
      if (!revoked) return;
      await config.publish();
      if (revoked.expired.length > 0) await approvals?.announceExpired(revoked.expired);
    },
  };
}

export type ApiKeyService = ReturnType<typeof createApiKeyService>;
