// The audit hash chain's definition: what is hashed and how. The store uses
// it when it appends sessions, the verifier when it recomputes them, and
// docs/audit.md ("Tamper evidence") describes the same steps for an outside
// auditor. Changing anything here breaks every stored chain: bump
// CHAIN_VERSION and teach the verifier both versions instead.
import { createHash } from "node:crypto";

/** Domain-separates this hash from any other SHA-256 over similar text. */
const CHAIN_VERSION = "modelgate-audit-chain-v1";
/** The `prev_hash` of the first session in the chain. */
export const GENESIS_HASH = "0".repeat(64);

type Canonical =
  | null
  | boolean
  | number
  | string
  | Date
  | readonly Canonical[]
  | { [key: string]: Canonical | undefined };

/**
 * Canonical JSON (RFC 8785, JCS, for the values an audit row holds): object
 * keys sorted by UTF-16 code units, no whitespace, strings and numbers as
 * ECMAScript's JSON.stringify writes them, arrays in order. Dates become
 * ISO 8601 strings in UTC with milliseconds (`2026-03-01T12:00:00.000Z`),
 * which is exactly what a timestamptz(3) column gives back. Object members
 * whose value is undefined are left out, as JSON.stringify does.
 */
function canonicalJson(value: Canonical): string {
  if (value === null) return "null";
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item)).join(",")}]`;
  switch (typeof value) {
    case "boolean":
    case "string":
      return JSON.stringify(value);
    case "number":
      if (!Number.isFinite(value)) throw new TypeError("canonical JSON has no representation for NaN or Infinity");
      return JSON.stringify(value);
    case "object": {
      const record = value as { [key: string]: Canonical | undefined };
      const members = Object.keys(record)
        .filter((key) => record[key] !== undefined)
        .sort()
        .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key] as Canonical)}`);
      return `{${members.join(",")}}`;
    }
    default:
      throw new TypeError(`canonical JSON cannot encode a ${typeof value}`);
  }
}

const sha256Hex = (text: string): string => createHash("sha256").update(text, "utf8").digest("hex");

/** The hashed metadata of a session: every `sessions` column except the chain's own. */
export interface ChainMetadata {
  id: string;
  receivedAt: Date;
  firstByteAt: Date | null;
  finishedAt: Date | null;
  subjectId: string | null;
  subjectEmail: string | null;
  subjectGroups: string[] | null;
  authMethod: string | null;
  clientIp: string | null;
  userAgent: string | null;
  connection: string | null;
  model: string | null;
  agentId: string | null;
  endpoint: string;
  method: string;
  decision: string;
  policyIds: string[] | null;
  reason: string | null;
  responseStatus: number | null;
  latencyMs: number | null;
  ttfbMs: number | null;
  details: unknown;
}

export interface ChainContent {
  content: { requestBody: string | null; responseBody: string | null; truncated: boolean } | null;
  events: readonly { seq: number; offsetMs: number; data: string }[];
}

export function metadataDigest(row: ChainMetadata): string {
  return sha256Hex(
    canonicalJson({
      id: row.id,
      receivedAt: row.receivedAt,
      firstByteAt: row.firstByteAt,
      finishedAt: row.finishedAt,
      subjectId: row.subjectId,
      subjectEmail: row.subjectEmail,
      subjectGroups: row.subjectGroups,
      authMethod: row.authMethod,
      clientIp: row.clientIp,
      userAgent: row.userAgent,
      connection: row.connection,
      model: row.model,
      agentId: row.agentId,
      endpoint: row.endpoint,
      method: row.method,
      decision: row.decision,
      policyIds: row.policyIds,
      reason: row.reason,
      responseStatus: row.responseStatus,
      latencyMs: row.latencyMs,
      ttfbMs: row.ttfbMs,
      details: (row.details ?? null) as Canonical,
    }),
  );
}

/** Kept in `sessions.content_digest`, so the link survives a purge of the bodies and events. */
export function contentDigest({ content, events }: ChainContent): string {
  return sha256Hex(
    canonicalJson({
      content: content
        ? { requestBody: content.requestBody, responseBody: content.responseBody, truncated: content.truncated }
        : null,
      events: events.map(({ seq, offsetMs, data }) => ({ seq, offsetMs, data })),
    }),
  );
}

/**
 * A session's link: SHA-256 over five lines joined by "\n": the version tag,
 * the chain sequence in decimal, the previous hash, the metadata digest and
 * the content digest (all hex lowercase). The sequence is inside the hash so
 * that moving a row in the order is a mismatch, not only a gap.
 */
export function linkHash(input: { chainSeq: bigint; prevHash: string; metadataDigest: string; contentDigest: string }) {
  return sha256Hex(
    [CHAIN_VERSION, input.chainSeq.toString(10), input.prevHash, input.metadataDigest, input.contentDigest].join("\n"),
  );
}

/**
 * Text as Postgres will give it back. A lone UTF-16 surrogate cannot be
 * encoded as UTF-8: the driver would store U+FFFD (and jsonb refuses it), so
 * a hash over the original would never verify. Applied to every string of a
 * row before it is hashed and inserted.
 */
export function storable<T>(value: T): T {
  if (typeof value === "string") return value.toWellFormed() as T;
  if (Array.isArray(value)) return value.map((item) => storable(item)) as T;
  if (value !== null && typeof value === "object" && !(value instanceof Date)) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key.toWellFormed(), storable(item)])) as T;
  }
  return value;
}
