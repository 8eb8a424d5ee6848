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
    name: z
      .string()
      .nullable()
      .describe("the API key's name, or the token's name or email; null in sessions stored before it was recorded"),
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
  latencyMs: z.number().int().nullable().describe("duration: from receiving the request to the answer's end"),
  ttfbMs: z.number().int().nullable().describe("to the answer's first byte (for a stream, its head)"),
  ttftMs: z
    .number()
    .int()
    .nullable()
    .describe("time to first token: to a stream's first chunk, else the first byte; null before it was recorded"),
  usage: z
    .object({
      promptTokens: z.number().int().nullable(),
      completionTokens: z.number().int().nullable(),
      totalTokens: z.number().int().nullable(),
    })
    .describe("token counts as the runtime reported them; null where it did not (or before they were recorded)"),
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

const REPLAY_FORMATS = ["json", "sse", "native"] as const;
export type ReplayFormat = (typeof REPLAY_FORMATS)[number];
const MAX_REPLAY_SPEED = 1000;

export const sessionReplayQuery = z.strictObject({
  format: z
    .enum(REPLAY_FORMATS)
    .default("json")
    .describe(
      "json: the request and the timed events as one document; sse: each event as a Server-Sent Event carrying {seq, offsetMs, data}, paced as recorded; native: the chunks' bytes exactly as the client received them, paced as recorded",
    ),
  // A decimal written out, not z.coerce: coercion would read `?speed=` as 0.
  speed: z
    .string()
    .regex(/^\d{1,4}(\.\d{1,3})?$/, "must be a number from 0 to 1000")
    .transform(Number)
    .pipe(z.number().min(0).max(MAX_REPLAY_SPEED))
    .optional()
    .describe("playback speed factor for sse and native, 0-1000 (default 1; 0 sends every chunk at once)"),
  timing: z.enum(["original", "none"]).default("original").describe("none: send every chunk at once, like speed=0"),
});

const replayEventView = z.object({
  seq: z.number().int(),
  offsetMs: z.number().int().describe("milliseconds from receiving the request to delivering this chunk"),
  data: z.string().describe("the chunk as delivered to the client"),
});

export const sessionReplayView = z.object({
  id: z.string(),
  receivedAt: z.string(),
  decision: z.enum(DECISIONS),
  request: z.object({
    method: z.string(),
    endpoint: z.string(),
    connection: z.string().nullable(),
    model: z.string().nullable(),
    body: z.string().nullable().describe("the request body as received (masked when the policy asked)"),
    truncated: z.boolean(),
    bytes: z.number().int().nullable().describe("the body's full size; null when not recorded"),
  }),
  response: z.object({
    status: z.number().int().nullable(),
    contentType: z
      .string()
      .nullable()
      .describe("as the gateway recorded it, else inferred from the chunks (what format=native sends)"),
    body: z.string().nullable().describe("the response as delivered, assembled"),
    truncated: z.boolean(),
    bytes: z.number().int().nullable(),
    streamed: z.boolean().describe("the response was recorded as a stream of events"),
  }),
  ttfbMs: z.number().int().nullable(),
  latencyMs: z.number().int().nullable(),
  events: z.array(replayEventView).describe("the response stream as delivered, in order"),
});

export type SessionReplayView = z.output<typeof sessionReplayView>;
export type ReplayEventView = z.output<typeof replayEventView>;

/**
 * The Overview's windows: the last hour in one-minute buckets, the last day
 * in quarter-hour buckets (96 points, where 24 hourly ones hid bursts and
 * 1,440 one-minute ones are more than a chart shows).
 */
export const STATS_WINDOWS = {
  hour: { bucketSeconds: 60, buckets: 60 },
  day: { bucketSeconds: 900, buckets: 96 },
} as const;
export type StatsWindow = keyof typeof STATS_WINDOWS;
const statsWindowNames = Object.keys(STATS_WINDOWS) as [StatsWindow, ...StatsWindow[]];

export const sessionStatsQuery = z.strictObject({
  window: z
    .enum(statsWindowNames)
    .default("hour")
    .describe("hour: 60 buckets of 60 s; day: 96 buckets of 900 s. Both end with the bucket holding now"),
});

const count = z.number().int().min(0);

export const sessionStatsView = z.object({
  window: z.enum(statsWindowNames),
  from: z.string().describe("start of the first bucket (inclusive), aligned to the bucket size"),
  to: z.string().describe("end of the last bucket (exclusive): the bucket holding now ends here"),
  bucketSeconds: z.number().int(),
  buckets: z
    .array(
      z.object({
        start: z.string(),
        requests: count,
        refused: count.describe("decision blocked, denied, rate_limited or approval_required"),
        masked: count.describe("the answer had something masked (details.maskedCounts)"),
      }),
    )
    .describe("every bucket of the window, oldest first, empty ones as zeros"),
  totals: z.object({ requests: count, refused: count, masked: count }),
  refusalsByReason: z
    .array(
      z.object({
        reason: z.string().describe("the refusal's error code (details.error.code), else its decision"),
        count,
      }),
    )
    .describe("the 10 commonest, most first"),
  byConnection: z
    .array(
      z.object({
        connection: z.string().nullable().describe("null: refused before a connection was chosen"),
        requests: count,
        refused: count,
      }),
    )
    .describe("the 20 busiest, most requests first"),
});

export type SessionStatsQuery = z.output<typeof sessionStatsQuery>;
export type SessionStatsView = z.output<typeof sessionStatsView>;
