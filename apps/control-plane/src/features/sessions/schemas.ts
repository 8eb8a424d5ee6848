import { DECISIONS } from "@modelgate/audit";
import { z } from "zod";
import { label, pageQuery, timestamp } from "../../http/schemas.js";

/** Position in the newest-first order: (receivedAt, id), both descending. */
export interface SessionCursor {
  receivedAt: Date;
  id: string;
}

export function encodeCursor({ receivedAt, id }: SessionCursor): string {
  return Buffer.from(JSON.stringify([receivedAt.toISOString(), id])).toString("base64url");
}

function decodeCursor(value: string): SessionCursor | undefined {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(value, "base64url").toString("utf8"));
    if (!Array.isArray(parsed) || parsed.length !== 2) return undefined;
    const [at, id] = parsed;
    if (typeof at !== "string" || typeof id !== "string" || id.length === 0 || id.length > 64) return undefined;
    const receivedAt = new Date(at);
    return Number.isNaN(receivedAt.getTime()) ? undefined : { receivedAt, id };
  } catch {
    return undefined;
  }
}

/** Opaque to clients: base64url of the last item's position. */
const cursor = z
  .string()
  .max(256)
  .transform((value, ctx) => {
    const decoded = decodeCursor(value);
    if (!decoded) {
      ctx.addIssue({ code: "custom", message: "must be the nextCursor of a previous page" });
      return z.NEVER;
    }
    return decoded;
  });

export const sessionListQuery = pageQuery(cursor)
  .extend({
    user: label(320).optional().describe("subject id (user claim or API key id) or email, exact"),
    group: label(256).optional().describe("sessions whose subject was in this group"),
    connection: label(63).optional(),
    model: label(256).optional().describe("the model as the runtime knows it, exact"),
    decision: z.enum(DECISIONS).optional(),
    from: timestamp.optional().describe("received at or after (RFC 3339)"),
    to: timestamp.optional().describe("received before (RFC 3339)"),
    q: label(256).optional().describe("text in the request or response body, case-insensitive"),
  })
  .refine((query) => !query.from || !query.to || Date.parse(query.from) <= Date.parse(query.to), {
    path: ["to"],
    message: "must not be before from",
  });

export const sessionParams = z.strictObject({ id: z.string().min(1).max(64) });

const subjectView = z
  .object({
    id: z.string(),
    email: z.string().nullable(),
    groups: z.array(z.string()),
    authMethod: z.string().nullable(),
  })
  .nullable()
  .describe("null when the request was refused before its caller was identified");

export const sessionSummaryView = z.object({
  id: z.string().describe("the x-modelgate-session value"),
  receivedAt: z.string(),
  firstByteAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  subject: subjectView,
  clientIp: z.string().nullable(),
  userAgent: z.string().nullable(),
  connection: z.string().nullable(),
  model: z.string().nullable(),
  agentId: z.string().nullable(),
  endpoint: z.string(),
  method: z.string(),
  decision: z.enum(DECISIONS),
  policyIds: z.array(z.string()),
  reason: z.string().nullable(),
  responseStatus: z.number().int().nullable(),
  latencyMs: z.number().int().nullable(),
  ttfbMs: z.number().int().nullable(),
});

export const sessionView = sessionSummaryView.extend({
  details: z
    .record(z.string(), z.unknown())
    .nullable()
    .describe("operation, capping, usage, masking counts, error, gateway and credential ids"),
  content: z
    .object({
      requestBody: z.string().nullable(),
      responseBody: z.string().nullable(),
      truncated: z.boolean().describe("a body was cut at the gateway's cap"),
    })
    .nullable(),
  events: z
    .array(z.object({ seq: z.number().int(), offsetMs: z.number().int(), data: z.string() }))
    .describe("the response stream as delivered, with offsets from receiving the request"),
  hash: z.string().nullable(),
  prevHash: z.string().nullable(),
});

export type SessionListQuery = z.output<typeof sessionListQuery>;
export type SessionSummaryView = z.output<typeof sessionSummaryView>;
export type SessionView = z.output<typeof sessionView>;
