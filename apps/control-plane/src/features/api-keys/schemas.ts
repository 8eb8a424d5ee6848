import { z } from "zod";
import { groupName, label, timestamp, uniqueList, uuid } from "../../http/schemas.js";

export const createApiKeyBody = z.strictObject({
  name: label(128),
  groups: uniqueList(groupName, 100).describe("groups the service account belongs to, matched by policies"),
  expiresAt: timestamp
    .refine((value) => Date.parse(value) > Date.now(), "must be in the future")
    .optional()
    .describe("RFC 3339 time after which the key stops working; omit for no expiry"),
});

export const apiKeyParams = z.strictObject({ id: uuid });

export const apiKeyView = z.object({
  id: z.string(),
  name: z.string(),
  groups: z.array(z.string()),
  keyPrefix: z.string().describe("the first characters of the key, to tell keys apart"),
  status: z.enum(["active", "expired", "revoked"]),
  expiresAt: timestamp.nullable(),
  revokedAt: timestamp.nullable(),
  lastUsedAt: timestamp.nullable(),
  createdAt: timestamp,
  createdBy: z.string(),
});

export const createdApiKeyView = z.object({
  id: z.string(),
  name: z.string(),
  groups: z.array(z.string()),
  expiresAt: timestamp.nullable(),
  key: z.string().describe("shown only in this response"),
});

export type CreateApiKey = z.output<typeof createApiKeyBody>;
export type ApiKeyView = z.output<typeof apiKeyView>;
export type CreatedApiKeyView = z.output<typeof createdApiKeyView>;
