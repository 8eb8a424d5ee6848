import { DECISIONS } from "@modelgate/audit";
import { z } from "zod";
import { label, pageQuery, timestamp, uuid } from "../../http/schemas.js";
import { ALERT_KINDS, approvalRequestedParams, blockedRepeatedParams, volumeSpikeParams } from "./rules.js";

const common = {
  name: label(128),
  description: label(1024).optional(),
  enabled: z.boolean().default(true),
};

export const alertRuleBody = z.discriminatedUnion("kind", [
  blockedRepeatedParams.extend({ ...common, kind: z.literal("blocked_repeated") }),
  approvalRequestedParams.extend({ ...common, kind: z.literal("approval_requested") }),
  // extend() would drop volumeSpikeParams' cross-field refinement; restate it on the whole body.
  z
    .strictObject({ ...volumeSpikeParams.shape, ...common, kind: z.literal("volume_spike") })
    .refine((body) => volumeSpikeParams.safeParse(paramsOf(body)).success, {
      path: ["baselineWindows"],
      message: "windowSeconds × (baselineWindows + 1) must not exceed 7 days",
    }),
]);

export type AlertRuleBody = z.output<typeof alertRuleBody>;

/** The kind-specific part of a rule body, as stored in `params`. */
export function paramsOf(body: Record<string, unknown>): Record<string, unknown> {
  const { name: _name, description: _description, enabled: _enabled, kind: _kind, ...params } = body;
  return params;
}

export const alertRuleParams = z.strictObject({ id: uuid });

export const alertRuleView = z.object({
  id: z.string(),
  name: z.string(),
  kind: z.enum(ALERT_KINDS),
  description: z.string().nullable(),
  enabled: z.boolean(),
  threshold: z.number().optional(),
  windowSeconds: z.number().optional(),
  decisions: z.array(z.enum(DECISIONS)).optional(),
  baselineWindows: z.number().optional(),
  factor: z.number().optional(),
  minCount: z.number().optional(),
  createdAt: timestamp,
  updatedAt: timestamp,
});

export type AlertRuleView = z.output<typeof alertRuleView>;

/** Position in the newest-first order of alerts: (createdAt, id), both descending. */
export interface AlertCursor {
  createdAt: Date;
  id: string;
}

export function encodeAlertCursor({ createdAt, id }: AlertCursor): string {
  return Buffer.from(JSON.stringify([createdAt.toISOString(), id])).toString("base64url");
}

const cursor = z
  .string()
  .max(256)
  .transform((value, ctx) => {
    try {
      const parsed: unknown = JSON.parse(Buffer.from(value, "base64url").toString("utf8"));
      if (Array.isArray(parsed) && parsed.length === 2) {
        const [at, id] = parsed;
        const createdAt = typeof at === "string" ? new Date(at) : undefined;
        if (createdAt && !Number.isNaN(createdAt.getTime()) && uuid.safeParse(id).success) {
          return { createdAt, id: id as string };
        }
      }
    } catch {
      // fall through to the issue below
    }
    ctx.addIssue({ code: "custom", message: "must be the nextCursor of a previous page" });
    return z.NEVER;
  });

export const alertListQuery = pageQuery(cursor)
  .extend({
    rule: uuid.optional().describe("the rule's id"),
    subject: label(256).optional().describe("the subject id, exact"),
    from: timestamp.optional().describe("created at or after (RFC 3339)"),
    to: timestamp.optional().describe("created before (RFC 3339)"),
  })
  .refine((query) => !query.from || !query.to || Date.parse(query.from) <= Date.parse(query.to), {
    path: ["to"],
    message: "must not be before from",
  });

export type AlertListQuery = z.output<typeof alertListQuery>;

export const alertView = z.object({
  id: z.string(),
  ruleId: z
    .string()
    .nullable()
    .describe("null once the rule was deleted, and for quota_threshold alerts (raised without a rule)"),
  ruleName: z.string(),
  kind: z.string(),
  subject: z.string().nullable(),
  sessionIds: z.array(z.string()).describe("the sessions that triggered it"),
  details: z.record(z.string(), z.unknown()),
  triggeredAt: timestamp,
  createdAt: timestamp,
});

export const alertParams = z.strictObject({ id: uuid });
