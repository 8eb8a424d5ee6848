import { z } from "zod";

/**
 * The audit record of one request through a gateway, refused ones included:
 * what the gateway enqueues and the control plane's worker stores as a
 * Session. Versioned: a worker refuses (and keeps for inspection) a record
 * of a version it does not know rather than store it half-understood.
 */
export const AUDIT_RECORD_VERSION = 1;

export const DECISIONS = [
  "allowed",
  "masked",
  "blocked",
  "approval_required",
  "approved",
  "denied",
  "rate_limited",
  "error",
] as const;
export type AuditDecision = (typeof DECISIONS)[number];

const timestamp = z.iso.datetime({ offset: true });
const text = (max: number) => z.string().max(max);
/** Milliseconds as stored: Postgres `integer` columns, so a value that cannot be stored is refused here, not retried forever. */
const millis = z
  .number()
  .int()
  .min(0)
  .max(2 ** 31 - 1);

export const auditSubjectSchema = z.object({
  id: text(256),
  email: text(320).optional(),
  /** How people know the caller: the API key's name, or the token's `name` (else `email`, else the subject). */
  name: text(256).optional(),
  groups: z.array(text(256)).max(256),
  authMethod: z.enum(["api_key", "oidc"]),
  tokenId: text(256).optional(),
  issuer: text(1024).optional(),
});

/** A body as recorded: UTF-8 text, cut at the configured cap and flagged, never silently. */
export const recordedBodySchema = z.object({
  /** The body as UTF-8 text, or base64 when it is not valid UTF-8 or arrived content-encoded (see `encoding`). */
  text: z.string(),
  encoding: z.enum(["utf8", "base64"]).optional(),
  truncated: z.boolean(),
  /** The body's full size in bytes, also when `text` was cut. */
  bytes: z.number().int().min(0),
});

/** One chunk of the response as delivered, with its offset from receiving the request. */
export const streamEventSchema = z.object({
  offsetMs: millis,
  data: z.string(),
});

export const auditRecordSchema = z.object({
  version: z.literal(AUDIT_RECORD_VERSION),
  /** The `x-modelgate-session` value: also the queue's job id, so a re-delivery cannot duplicate it. */
  sessionId: text(64).min(1),
  gatewayId: text(64),
  receivedAt: timestamp,
  firstByteAt: timestamp.optional(),
  finishedAt: timestamp,
  subject: auditSubjectSchema.optional(),
  clientIp: text(64).optional(),
  userAgent: text(512).optional(),
  connection: text(63).optional(),
  model: text(256).optional(),
  agentId: z.uuid().optional(),
  endpoint: text(512),
  method: text(16),
  operation: text(32).optional(),
  decision: z.enum(DECISIONS),
  policyIds: z.array(text(64)).max(1000),
  reason: text(1024).optional(),
  capped: z.array(z.object({ parameter: text(64), value: z.number() })).max(16),
  responseStatus: z.number().int().min(0).max(999).optional(),
  /** The response's content type as sent to the client, so a replay can use the stream's own format. */
  responseContentType: text(256).optional(),
  latencyMs: millis,
  ttfbMs: millis.optional(),
  request: recordedBodySchema.optional(),
  response: recordedBodySchema.optional(),
  /** The response stream as delivered (streamed responses only). */
  events: z.array(streamEventSchema).max(100_000),
  usage: z.record(z.string(), z.number()).optional(),
  maskedCounts: z.record(z.string(), z.number().int().min(0)).optional(),
  error: z.object({ code: text(64), message: text(1024) }).optional(),
  /** For a prompt a rule blocked or held: the rule (policy, position in its promptRules) and the field it matched in. */
  promptRule: z.object({ policyId: text(64), rule: z.number().int().min(0).max(1000), field: text(300) }).optional(),
  /**
   * The human approvals the request needed (docs/approvals.md): on a
   * refused request, the approval it opened, joined, or was denied or
   * expired by; on a request grants admitted, each grant used, with who
   * decided, when and why.
   */
  approvals: z
    .array(
      z.object({
        id: z.uuid(),
        status: z.enum(["pending", "approved", "denied", "expired"]),
        grant: z.enum(["request", "window"]).optional(),
        deciders: z
          .array(
            z.object({
              id: text(256),
              email: text(320).optional(),
              decision: z.enum(["approve", "deny"]),
              comment: text(1024).optional(),
              at: timestamp,
            }),
          )
          .max(20)
          .optional(),
      }),
    )
    .max(4)
    .optional(),
});

export type AuditRecord = z.output<typeof auditRecordSchema>;
export type AuditSubject = z.output<typeof auditSubjectSchema>;
