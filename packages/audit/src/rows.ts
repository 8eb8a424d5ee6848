import type { AuditDecision, AuditRecord } from "./record.js";
import { answerSearchText } from "./search-text.js";

/**
 * How an audit record is stored: the `sessions` row (metadata, what listings
 * read), the `session_contents` row (bodies) and the `session_events` rows
 * (the stream as delivered). Kept here, beside the record's schema, so the
 * contract and its storage mapping change together; the control plane's
 * store only writes these rows.
 */
export interface SessionRow {
  id: string;
  receivedAt: Date;
  firstByteAt: Date | null;
  finishedAt: Date | null;
  subjectId: string | null;
  subjectEmail: string | null;
  subjectGroups: string[];
  authMethod: string | null;
  clientIp: string | null;
  userAgent: string | null;
  connection: string | null;
  model: string | null;
  agentId: string | null;
  endpoint: string;
  method: string;
  decision: AuditDecision;
  policyIds: string[];
  reason: string | null;
  responseStatus: number | null;
  latencyMs: number;
  ttfbMs: number | null;
  /** Everything of the record without a column of its own (see `SessionDetails`). */
  details: SessionDetails;
  /** The caller's display name (API key name, or the token's name or email) beside the stable subject id. */
  subjectName: string | null;
  /** Token counts as the runtime reported them (`details.usage`), when they fit a column. */
  promptTokens: number | null;
  completionTokens: number | null;
  totalTokens: number | null;
  /**
   * Time to first token: the offset of the stream's first chunk, or the time
   * to first byte of an answer sent whole. Not `ttfbMs`, which for a stream is
   * its head, sent before the runtime has produced anything.
   */
  ttftMs: number | null;
}

/**
 * The session row's shape, defined once: each field of `SessionRow` and its
 * column in `sessions`. The store inserts exactly these columns, the
 * verifier reads them, and a test holds them against the table and against
 * the hash chain's record (a column the chain does not cover would be
 * editable without a trace). `satisfies` makes a field without a column, or
 * a column without a field, a compile error.
 */
export const SESSION_COLUMNS = {
  id: "id",
  receivedAt: "received_at",
  firstByteAt: "first_byte_at",
  finishedAt: "finished_at",
  subjectId: "subject_id",
  subjectEmail: "subject_email",
  subjectGroups: "subject_groups",
  authMethod: "auth_method",
  clientIp: "client_ip",
  userAgent: "user_agent",
  connection: "connection",
  model: "model",
  agentId: "agent_id",
  endpoint: "endpoint",
  method: "method",
  decision: "decision",
  policyIds: "policy_ids",
  reason: "reason",
  responseStatus: "response_status",
  latencyMs: "latency_ms",
  ttfbMs: "ttfb_ms",
  details: "details",
  subjectName: "subject_name",
  promptTokens: "prompt_tokens",
  completionTokens: "completion_tokens",
  totalTokens: "total_tokens",
  ttftMs: "ttft_ms",
} as const satisfies Record<keyof SessionRow, string>;

export type SessionField = keyof typeof SESSION_COLUMNS;

export interface SessionDetails {
  recordVersion: number;
  gatewayId: string;
  operation?: string;
  tokenId?: string;
  issuer?: string;
  capped: { parameter: string; value: number }[];
  usage?: Record<string, number>;
  maskedCounts?: Record<string, number>;
  error?: { code: string; message: string };
  responseContentType?: string;
  /** Size and truncation of each body as the gateway saw it; `encoding` only when not UTF-8 text. */
  request?: RecordedBodyDetails;
  response?: RecordedBodyDetails;
  /** How many U+0000 characters were stored as U+FFFD (Postgres text cannot hold U+0000). */
  nulReplaced?: number;
  /** The prompt rule that blocked (or held) the request, and the JSON path of the field it matched in. */
  promptRule?: { policyId: string; rule: number; field: string };
  /** The approvals the request opened, joined or was admitted by (record.approvals). */
  approvals?: AuditRecord["approvals"];
}

interface RecordedBodyDetails {
  bytes: number;
  truncated: boolean;
  encoding?: "base64";
}

export interface SessionContentRow {
  sessionId: string;
  requestBody: string | null;
  responseBody: string | null;
  /**
   * What `q` searches instead of the response body: for a streamed answer,
   * its text assembled from the events (`answerSearchText`); null when the
   * body itself is searched. Derived from the body, so not in the hash chain.
   */
  responseText: string | null;
  /** True when either body was cut at the gateway's cap. */
  truncated: boolean;
}

export interface SessionEventRow {
  sessionId: string;
  seq: number;
  offsetMs: number;
  data: string;
}

export interface SessionRows {
  session: SessionRow;
  /** Null when the record carries neither body (a request refused before it was read). */
  content: SessionContentRow | null;
  events: SessionEventRow[];
}

const NUL = String.fromCharCode(0);

/** Maps a validated record onto rows. Pure: the same record always yields the same rows. */
export function toSessionRows(record: AuditRecord): SessionRows {
  let nulReplaced = 0;
  // Postgres text and jsonb refuse U+0000; a prompt may well contain one
  // (a client can send anything). Refusing the record would let a caller
  // make their own request unrecorded, so it is stored as U+FFFD and counted.
  // Lone surrogates (a JSON escape such as "\ud800" in a token or body)
  // become U+FFFD too, here rather than silently in the driver's UTF-8
  // encoding, so what is stored (and hashed) is exactly what these rows hold.
  const clean = (value: string): string =>
    value.toWellFormed().replaceAll(NUL, () => {
      nulReplaced += 1;
      return "\uFFFD";
    });
  const cleanOptional = (value: string | undefined): string | null => (value === undefined ? null : clean(value));
  const cleanRecord = <T>(value: Record<string, T> | undefined): Record<string, T> | undefined =>
    value === undefined
      ? undefined
      : Object.fromEntries(Object.entries(value).map(([key, item]) => [clean(key), item]));

  const { subject } = record;
  const id = clean(record.sessionId);
  const details: SessionDetails = omitUndefined({
    recordVersion: record.version,
    gatewayId: clean(record.gatewayId),
    operation: record.operation === undefined ? undefined : clean(record.operation),
    tokenId: subject?.tokenId === undefined ? undefined : clean(subject.tokenId),
    issuer: subject?.issuer === undefined ? undefined : clean(subject.issuer),
    capped: record.capped.map(({ parameter, value }) => ({ parameter: clean(parameter), value })),
    usage: cleanRecord(record.usage),
    maskedCounts: cleanRecord(record.maskedCounts),
    error: record.error ? { code: clean(record.error.code), message: clean(record.error.message) } : undefined,
    responseContentType: record.responseContentType === undefined ? undefined : clean(record.responseContentType),
    request: bodyDetails(record.request),
    response: bodyDetails(record.response),
    promptRule: record.promptRule
      ? {
          policyId: clean(record.promptRule.policyId),
          rule: record.promptRule.rule,
          field: clean(record.promptRule.field),
        }
      : undefined,
    approvals: record.approvals?.map((approval) => ({
      ...approval,
      deciders: approval.deciders?.map((decider) => ({
        ...decider,
        id: clean(decider.id),
        email: decider.email === undefined ? undefined : clean(decider.email),
        comment: decider.comment === undefined ? undefined : clean(decider.comment),
      })),
    })),
  });
  const session: SessionRow = {
    id,
    receivedAt: new Date(record.receivedAt),
    firstByteAt: record.firstByteAt === undefined ? null : new Date(record.firstByteAt),
    finishedAt: new Date(record.finishedAt),
    subjectId: cleanOptional(subject?.id),
    subjectEmail: cleanOptional(subject?.email),
    subjectGroups: (subject?.groups ?? []).map(clean),
    authMethod: subject?.authMethod ?? null,
    clientIp: cleanOptional(record.clientIp),
    userAgent: cleanOptional(record.userAgent),
    connection: cleanOptional(record.connection),
    model: cleanOptional(record.model),
    agentId: record.agentId ?? null,
    endpoint: clean(record.endpoint),
    method: clean(record.method),
    decision: record.decision,
    policyIds: record.policyIds.map(clean),
    reason: cleanOptional(record.reason),
    responseStatus: record.responseStatus ?? null,
    latencyMs: record.latencyMs,
    ttfbMs: record.ttfbMs ?? null,
    details,
    subjectName: cleanOptional(subject?.name),
    promptTokens: tokenCount(record.usage?.prompt_tokens),
    completionTokens: tokenCount(record.usage?.completion_tokens),
    totalTokens: tokenCount(
      record.usage?.total_tokens ??
        (record.usage?.prompt_tokens !== undefined && record.usage.completion_tokens !== undefined
          ? record.usage.prompt_tokens + record.usage.completion_tokens
          : undefined),
    ),
    ttftMs: record.events[0]?.offsetMs ?? record.ttfbMs ?? null,
  };
  let content: SessionContentRow | null = null;
  if (record.request || record.response) {
    const responseBody = cleanOptional(record.response?.text);
    content = {
      sessionId: id,
      requestBody: cleanOptional(record.request?.text),
      responseBody,
      // From the stored (cleaned) values, as verification derives it again.
      responseText:
        details.response?.encoding === "base64" ? null : answerSearchText(details.responseContentType, responseBody),
      truncated: Boolean(record.request?.truncated || record.response?.truncated),
    };
  }
  const events = record.events.map((event, seq) => ({
    sessionId: id,
    seq,
    offsetMs: event.offsetMs,
    data: clean(event.data),
  }));
  if (nulReplaced > 0) session.details.nulReplaced = nulReplaced;
  return { session, content, events };
}

/** A count a Postgres `integer` holds, else null (the runtime's figure stays in `details.usage`). */
function tokenCount(value: number | undefined): number | null {
  return value !== undefined && Number.isInteger(value) && value >= 0 && value <= 2 ** 31 - 1 ? value : null;
}

function bodyDetails(body: AuditRecord["request"]): RecordedBodyDetails | undefined {
  if (!body) return undefined;
  return body.encoding === "base64"
    ? { bytes: body.bytes, truncated: body.truncated, encoding: "base64" }
    : { bytes: body.bytes, truncated: body.truncated };
}

function omitUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, item]) => item !== undefined)) as T;
}
