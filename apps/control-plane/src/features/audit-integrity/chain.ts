// The audit hash chain's definition: what is hashed and how. The store uses
// it when it appends sessions, the verifier when it recomputes them, and
// docs/audit.md ("Tamper evidence") describes the same steps for an outside
// auditor. Changing a version's definition breaks every session stored under
// it: add a version instead (CHAINED_FIELDS, CHAIN_TAGS), which the store
// then writes and the verifier knows beside the older ones.
import { createHash } from "node:crypto";
import type { SessionField } from "@modelgate/audit";

/** The fields of version 1's record: the `sessions` columns before usage accounting. */
const V1_FIELDS = [
  "id",
  "receivedAt",
  "firstByteAt",
  "finishedAt",
  "subjectId",
  "subjectEmail",
  "subjectGroups",
  "authMethod",
  "clientIp",
  "userAgent",
  "connection",
  "model",
  "agentId",
  "endpoint",
  "method",
  "decision",
  "policyIds",
  "reason",
  "responseStatus",
  "latencyMs",
  "ttfbMs",
  "details",
] as const satisfies readonly SessionField[];

/** Version 2 adds the usage columns (migration 20261209090000_session_usage). */
const V2_FIELDS = [
  ...V1_FIELDS,
  "subjectName",
  "promptTokens",
  "completionTokens",
  "totalTokens",
  "ttftMs",
] as const satisfies readonly SessionField[];

export type ChainVersion = 1 | 2;

/**
 * The session fields each chain version hashes, frozen: a session's
 * `chain_version` column says which one its hash was computed with. A new
 * column gets a new version (the chain-coverage test fails until it has one).
 */
export const CHAINED_FIELDS: Readonly<Record<ChainVersion, readonly SessionField[]>> = { 1: V1_FIELDS, 2: V2_FIELDS };

/** What the store writes now. */
export const CURRENT_CHAIN_VERSION: ChainVersion = 2;

/**
 * The first line of a link, per version: domain-separates this hash from any
 * other SHA-256 over similar text, and commits the link to its version, so
 * that changing a session's `chain_version` is a mismatch too.
 */
const CHAIN_TAGS: Readonly<Record<ChainVersion, string>> = {
  1: "modelgate-audit-chain-v1",
  2: "modelgate-audit-chain-v2",
};

/**
 * The `sessions` columns no chained record holds, and why each may stay out.
 * Anything else a session stores must be in the current version's record.
 */
export const NOT_CHAINED_COLUMNS: Readonly<Record<string, string>> = {
  chain_seq: "the link's position: hashed as the link's second line",
  prev_hash: "the previous link: hashed as the link's third line",
  content_digest: "hashed as the link's fifth line, recomputed from the content while it exists",
  hash: "the link itself",
  chain_version: "selects the record; committed by the link's first line (CHAIN_TAGS)",
};

export function isChainVersion(value: number): value is ChainVersion {
  return value === 1 || value === 2;
}
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

/** The hashed metadata of a session: its fields as stored (SQL NULL as null; `details` the jsonb value). */
export type ChainMetadata = { readonly [field in SessionField]?: unknown };

export interface ChainContent {
  content: { requestBody: string | null; responseBody: string | null; truncated: boolean } | null;
  events: readonly { seq: number; offsetMs: number; data: string }[];
}

/** SHA-256 of the canonical JSON of the version's fields, each named as in CHAINED_FIELDS. */
export function metadataDigest(row: ChainMetadata, version: ChainVersion): string {
  const record: Record<string, Canonical> = {};
  for (const field of CHAINED_FIELDS[version]) record[field] = (row[field] ?? null) as Canonical;
  return sha256Hex(canonicalJson(record));
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
 * A session's link: SHA-256 over five lines joined by "\n": the version's tag,
 * the chain sequence in decimal, the previous hash, the metadata digest and
 * the content digest (all hex lowercase). The sequence is inside the hash so
 * that moving a row in the order is a mismatch, not only a gap.
 */
export function linkHash(input: {
  version: ChainVersion;
  chainSeq: bigint;
  prevHash: string;
  metadataDigest: string;
  contentDigest: string;
}) {
  return sha256Hex(
    [
      CHAIN_TAGS[input.version],
      input.chainSeq.toString(10),
      input.prevHash,
      input.metadataDigest,
      input.contentDigest,
    ].join("\n"),
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
