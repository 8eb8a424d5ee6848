import { OPERATIONS } from "@modelgate/policy";
import { z } from "zod";
import { label, pageQuery, resourceName, timestamp, uuid } from "../../http/schemas.js";

const APPROVAL_STATUSES = ["pending", "approved", "denied", "expired"] as const;

/** The masked prompt an approver reads: the gateway cuts it to this many UTF-8 bytes. */
const MAX_PROMPT_BYTES = 16 * 1024;

/** No control characters (C0, DEL, C1) and no lone surrogates: ids, names and reasons end up in logs and UIs. */
const PLAIN_TEXT = /^[^\p{Cc}\p{Cs}]*$/u;
const plain = (max: number, min = 1) =>
  z.string().min(min).max(max).regex(PLAIN_TEXT, "must be text without control characters");

/** What Postgres `text` can hold: no NUL, no unpaired surrogate. Line breaks are fine (a prompt has them). */
const storableText = z
  .string()
  .refine((value) => !value.includes("\u0000") && value.isWellFormed(), "must not contain NUL or unpaired surrogates")
  .refine((value) => Buffer.byteLength(value, "utf8") <= MAX_PROMPT_BYTES, `must be at most ${MAX_PROMPT_BYTES} bytes`);

/** proto3 sends "" for an absent string. */
const optionalText = (max: number) =>
  z
    .string()
    .transform((value) => (value === "" ? undefined : value))
    .pipe(plain(max).optional());

/**
 * RequestApproval's message, held to the bounds of the columns it fills. The
 * gateway is trusted with the gateway token, but a bug or a compromised
 * gateway must not store what a column cannot hold or a UI cannot show.
 */
export const approvalRequestInput = z
  .object({
    gatewayId: plain(128),
    sessionId: uuid,
    subject: z.object({
      key: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 characters of A-Z, a-z, 0-9, '_' and '-'"),
      id: plain(256),
      email: optionalText(320),
      groups: z.array(plain(256)).max(256),
      authMethod: z.enum(["api_key", "oidc"]),
      issuer: optionalText(1024),
    }),
    connection: resourceName,
    model: plain(256),
    operation: z.enum(OPERATIONS),
    policyId: uuid,
    rule: z.number().int().min(-1).max(1000),
    field: plain(300, 0),
    reason: plain(1024),
    bodySha256: z.string().regex(/^[0-9a-f]{64}$/, "must be 64 lower-case hex digits"),
    prompt: storableText,
    promptTruncated: z.boolean(),
  })
  .superRefine((request, context) => {
    const { subject } = request;
    if (subject.authMethod === "api_key" && !uuid.safeParse(subject.id).success) {
      context.addIssue({ code: "custom", path: ["subject", "id"], message: "must be the API key's id (a UUID)" });
    }
    if (subject.authMethod === "oidc" && subject.issuer === undefined) {
      context.addIssue({ code: "custom", path: ["subject", "issuer"], message: "is required for an OIDC subject" });
    }
  });

export type ApprovalRequestInput = z.output<typeof approvalRequestInput>;

export const consumeApprovalInput = z.object({
  approvalId: uuid,
  sessionId: uuid,
  subjectKey: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  bodySha256: z.string().regex(/^[0-9a-f]{64}$/),
});

export type ConsumeApprovalInput = z.output<typeof consumeApprovalInput>;

/** Position in the newest-first order of approvals: (requestedAt, id), both descending (ids are random). */
export interface ApprovalCursor {
  requestedAt: Date;
  id: string;
}

export function encodeApprovalCursor({ requestedAt, id }: ApprovalCursor): string {
  return Buffer.from(JSON.stringify([requestedAt.toISOString(), id])).toString("base64url");
}

const cursor = z
  .string()
  .max(256)
  .transform((value, ctx): ApprovalCursor => {
    try {
      const parsed: unknown = JSON.parse(Buffer.from(value, "base64url").toString("utf8"));
      if (Array.isArray(parsed) && parsed.length === 2) {
        const [at, id] = parsed;
        const requestedAt = typeof at === "string" ? new Date(at) : undefined;
        if (requestedAt && !Number.isNaN(requestedAt.getTime()) && uuid.safeParse(id).success) {
          return { requestedAt, id: id as string };
        }
      }
    } catch {
      // fall through to the issue below
    }
    ctx.addIssue({ code: "custom", message: "must be the nextCursor of a previous page" });
    return z.NEVER;
  });

export const approvalListQuery = pageQuery(cursor).extend({
  status: z.enum(APPROVAL_STATUSES).optional().describe("only approvals in this state"),
  connection: resourceName.optional().describe("only requests to this connection"),
  subject: label(320).optional().describe("only requests of this subject: its id, or its email (any case)"),
});

export type ApprovalListQuery = z.output<typeof approvalListQuery>;

export const approvalParams = z.strictObject({ id: uuid });

export const decisionBody = z.strictObject({
  comment: z
    .string()
    .max(1024)
    .regex(PLAIN_TEXT, "must be text without control characters")
    .optional()
    .describe("why; shown to the caller on a denial"),
});

export type DecisionBody = z.output<typeof decisionBody>;

const voteView = z.object({
  approverId: z.string().describe("the approver's user id at their identity provider"),
  email: z.string().nullable(),
  decision: z.enum(["approve", "deny"]),
  comment: z.string().nullable(),
  at: timestamp,
});

const approvalFields = {
  id: z.string(),
  status: z.enum(APPROVAL_STATUSES),
  subject: z.object({
    id: z.string(),
    email: z.string().nullable(),
    groups: z.array(z.string()),
    authMethod: z.string(),
    issuer: z.string().nullable(),
    apiKeyId: z.string().nullable(),
  }),
  connection: z.string(),
  model: z.string(),
  operation: z.string(),
  policy: z.object({ id: z.string(), name: z.string() }),
  rule: z.number().int().nullable().describe("the require_approval prompt rule's position; null: the grant itself"),
  field: z.string().describe("the JSON path of the field the rule matched in"),
  reason: z.string(),
  requestedAt: timestamp,
  expiresAt: timestamp.describe("a pending approval not decided by then expires"),
  decidedAt: timestamp.nullable().describe("when it was approved, denied or expired"),
  grant: z.object({
    kind: z.enum(["request", "window"]),
    windowMinutes: z.number().int().nullable(),
    grantExpiresAt: timestamp.nullable(),
    usedAt: timestamp.nullable().describe("request grants: when the approved request was admitted"),
    usedSessionId: z.string().nullable(),
    voidedAt: timestamp.nullable(),
    voidReason: z.string().nullable(),
    inForce: z.boolean().describe("whether the grant admits requests now"),
  }),
  minApprovals: z.number().int(),
  approverGroups: z.array(z.string()),
  votes: z.array(voteView),
  requestSessionId: z.string().describe("the refused request's audit session"),
  url: z.string().describe("where an approver decides"),
};

export const approvalSummaryView = z.object(approvalFields);

export const approvalView = z.object({
  ...approvalFields,
  prompt: z.string().describe("the prompt as the audit record keeps it (masked when a policy asks)"),
  promptTruncated: z.boolean(),
});

export type ApprovalView = z.output<typeof approvalView>;
export type ApprovalSummaryView = z.output<typeof approvalSummaryView>;
