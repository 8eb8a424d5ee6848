import { generateSecret, hashSecret, SECRET_PREFIX, secretDisplayPrefix, uuidv7 } from "@modelgate/core";
import type { ApiKey, Database } from "@modelgate/db";
import { type ConfigPublishing, recordConfigChange } from "../../gateway-link/changes.js";
import { notFound } from "../../http/errors.js";
import { type Page, toPage } from "../../http/schemas.js";
import { type Actor, recordAdminChange } from "../admin-audit/service.js";
import { type ApprovalWithdrawalNotice, approvalChanges, withdrawApprovals } from "../approvals/transitions.js";
import type { ApiKeyView, CreateApiKey, CreatedApiKeyView } from "./schemas.js";

function statusOf(row: ApiKey, now: Date): ApiKeyView["status"] {
  if (row.revokedAt) return "revoked";
  if (row.expiresAt && row.expiresAt <= now) return "expired";
  return "active";
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
  };
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
