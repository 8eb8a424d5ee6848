import { z } from "zod";
import { groupName, label, timestamp, uniqueList, uuid } from "../../http/schemas.js";

const futureTimestamp = timestamp.refine((value) => Date.parse(value) > Date.now(), "must be in the future");

export const createApiKeyBody = z.strictObject({
  name: label(128),
  groups: uniqueList(groupName, 100).describe("groups the service account belongs to, matched by policies"),
  expiresAt: futureTimestamp.optional().describe("RFC 3339 time after which the key stops working; omit for no expiry"),
});

export const updateApiKeyBody = z
  .strictObject({
    name: label(128).optional(),
    groups: uniqueList(groupName, 100)
      .optional()
      .describe("replaces the groups the service account belongs to, which policies grant to"),
    expiresAt: futureTimestamp
      .nullable()
      .optional()
      .describe("RFC 3339 time after which the key stops working; null for no expiry"),
  })
  .refine((patch) => Object.values(patch).some((value) => value !== undefined), "change at least one field");

/** The longest overlap a rotation may give the secret it replaces: a week. */
const MAX_OVERLAP_SECONDS = 7 * 24 * 3600;

export const rotateApiKeyBody = z.strictObject({
  overlapSeconds: z
    .number()
    .int()
    .min(0)
    .max(MAX_OVERLAP_SECONDS)
    .default(3600)
    .describe("how long the replaced secret keeps working, 0 to 604800 (7 days); 0 stops it at once"),
});

export const apiKeyParams = z.strictObject({ id: uuid });

export const apiKeyView = z.object({
  id: z.string(),
  name: z.string(),
  groups: z.array(z.string()),
  keyPrefix: z.string().describe("the first characters of the current secret, to tell keys apart"),
  status: z.enum(["active", "expired", "revoked"]),
  expiresAt: timestamp.nullable(),
  revokedAt: timestamp.nullable(),
  lastUsedAt: timestamp.nullable(),
  createdAt: timestamp,
  createdBy: z.string(),
  rotatedAt: timestamp.nullable().describe("when the current secret was issued by a rotation; null if never rotated"),
  previousKeyExpiresAt: timestamp
    .nullable()
    .describe("until when the secret the last rotation replaced still works; null when it no longer does"),
});

export const createdApiKeyView = z.object({
  id: z.string(),
  name: z.string(),
  groups: z.array(z.string()),
  expiresAt: timestamp.nullable(),
  key: z.string().describe("shown only in this response"),
});

export const rotatedApiKeyView = z.object({
  id: z.string(),
  name: z.string(),
  groups: z.array(z.string()),
  expiresAt: timestamp.nullable(),
  keyPrefix: z.string(),
  key: z.string().describe("the new secret, shown only in this response"),
  rotatedAt: timestamp,
  previousKeyExpiresAt: timestamp.describe(
    "when the replaced secret stops working (the rotation's time for overlapSeconds 0, the key's expiry if sooner)",
  ),
});

export type CreateApiKey = z.output<typeof createApiKeyBody>;
export type UpdateApiKey = z.output<typeof updateApiKeyBody>;
export type RotateApiKey = z.output<typeof rotateApiKeyBody>;
export type RotatedApiKeyView = z.output<typeof rotatedApiKeyView>;
export type ApiKeyView = z.output<typeof apiKeyView>;
export type CreatedApiKeyView = z.output<typeof createdApiKeyView>;
