import { DECISIONS } from "@modelgate/audit";
import { z } from "zod";
import { label, resourceName, timestamp, uniqueList, uuid } from "../../http/schemas.js";
import { EVENT_TYPES } from "./events.js";

/** A signing secret given by the admin: what an HTTP header and HMAC key can carry, long enough to resist guessing. */
const signingSecret = z
  .string()
  .min(32, "must be at least 32 characters")
  .max(256)
  .regex(/^[\x21-\x7e]+$/, "must be printable ASCII without spaces");

/**
 * http or https, no credentials in it (GET shows the URL, and the admin
 * audit log keeps it). Where it may point is checked by the service, not
 * here: only public addresses unless MODELGATE_EXPORT_ALLOW_CIDRS names the
 * range, and again at every connection (egress.ts, docs/siem.md, SSRF).
 */
const webhookUrl = z
  .url({ protocol: /^https?$/, hostname: z.regexes.hostname, error: "must be an http:// or https:// URL" })
  .max(2048)
  .refine((value) => {
    const url = URL.canParse(value) ? new URL(value) : undefined;
    return url !== undefined && url.username === "" && url.password === "";
  }, "must not contain a user name or password: the signature authenticates the control plane")
  .refine((value) => !URL.canParse(value) || new URL(value).hash === "", "must not have a #fragment");

/** A DNS name or an IP address literal. */
const syslogHost = z
  .string()
  .max(253)
  .regex(
    /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$|^[0-9A-Fa-f:.]{2,45}$/,
    "must be a host name or an IP address",
  );

const timeoutMs = z.number().int().min(100).max(30_000).default(10_000).describe("per delivery attempt, 100-30000 ms");

const common = {
  name: resourceName,
  description: label(1024).optional(),
  enabled: z.boolean().default(true),
  types: uniqueList(z.enum(EVENT_TYPES), EVENT_TYPES.length).min(1).describe("the event types delivered"),
  decisions: uniqueList(z.enum(DECISIONS), DECISIONS.length)
    .default([])
    .describe("only session events with these decisions (empty: all)"),
};

const webhookBody = z.strictObject({
  ...common,
  kind: z.literal("webhook"),
  url: webhookUrl,
  timeoutMs,
  secret: signingSecret
    .optional()
    .describe("HMAC-SHA256 key; generated and shown once when left out on create, kept when left out on replace"),
});

const syslogBody = z.strictObject({
  ...common,
  kind: z.literal("syslog"),
  host: syslogHost,
  port: z.number().int().min(1).max(65_535),
  tls: z.boolean().default(false),
  facility: z.number().int().min(0).max(23).default(13).describe("RFC 5424 facility (default 13, log audit)"),
  timeoutMs,
});

export const exporterBody = z.discriminatedUnion("kind", [webhookBody, syslogBody]);

export const exporterParams = z.strictObject({ id: uuid });

export const exporterView = z.object({
  id: z.string(),
  name: z.string(),
  kind: z.enum(["webhook", "syslog"]),
  description: z.string().nullable(),
  enabled: z.boolean(),
  types: z.array(z.string()),
  decisions: z.array(z.string()),
  url: z.string().optional(),
  host: z.string().optional(),
  port: z.number().optional(),
  tls: z.boolean().optional(),
  facility: z.number().optional(),
  timeoutMs: z.number(),
  secretSealed: z
    .boolean()
    .optional()
    .describe("webhooks: whether the signing secret is sealed with MODELGATE_SECRETS_KEY (never the secret itself)"),
  delivery: z.object({
    delivered: z.number().describe("events delivered"),
    failed: z.number().describe("failed attempts, each retried with backoff until the attempts run out"),
    lastSuccessAt: timestamp.nullable(),
    lastFailureAt: timestamp.nullable(),
    lastError: z.string().nullable(),
  }),
  createdAt: timestamp,
  updatedAt: timestamp,
});

export const createdExporterView = exporterView.extend({
  secret: z.string().optional().describe("the generated signing secret, shown this once"),
});

export const testResultView = z.object({
  delivered: z.boolean(),
  eventId: z.string(),
  error: z.string().nullable(),
});

export type ExporterBody = z.output<typeof exporterBody>;
export type ExporterView = z.output<typeof exporterView>;
export type CreatedExporterView = z.output<typeof createdExporterView>;
