import { answerSearchText, SESSION_COLUMNS, type SessionField } from "@modelgate/audit";
import type { Database } from "@modelgate/db";
import { invalidRequest } from "../../http/errors.js";
import { CHAINED_FIELDS, contentDigest, GENESIS_HASH, isChainVersion, linkHash, metadataDigest } from "./chain.js";

/** Sessions read per query: with their bodies and events this bounds the verifier's memory. */
const DEFAULT_BATCH = 100;

type BreakReason =
  /** The session's stored hash is not what its metadata, content digest and prev_hash give (`part` says which changed). */
  | "hash_mismatch"
  /** The session's prev_hash is not the hash of the session before it. */
  | "prev_hash_mismatch"
  /** A session is missing: the chain sequence jumps, or ends before the chain head says it does. */
  | "missing_link"
  /** The chain head row does not point at the last session (head edited or last sessions rewritten). */
  | "head_mismatch"
  /**
   * The answer's search text (derived, not chained) is not what its stored
   * body gives: edited to hide the session from the listing's `q`, or to
   * plant words in it.
   */
  | "search_text_mismatch";

interface ChainStart {
  /** genesis: the first session; checkpoint: after the latest retention checkpoint; from: where the caller asked. */
  kind: "genesis" | "checkpoint" | "from";
  /** The first sequence expected. */
  chainSeq: number;
  /** The prev_hash that session must carry; null when starting `from` a session (its own prev_hash is taken). */
  prevHash: string | null;
  /** When the checkpoint was written (kind checkpoint). */
  checkpointAt?: string | undefined;
}

export interface BrokenLink {
  /** Null when the missing session is the chain's last (only the head remembers it). */
  sessionId: string | null;
  chainSeq: number;
  reason: BreakReason;
  /** For hash_mismatch: whether the content (bodies, events or their digest) or the rest of the row changed. */
  part?: "metadata" | "content" | undefined;
  detail: string;
}

export type VerifyReport =
  | {
      status: "ok";
      checked: number;
      start: ChainStart;
      /** Sequence and hash of the last session checked (the start's when none was). */
      lastChainSeq: number;
      headHash: string | null;
      /** Sessions whose bodies and events retention removed: their stored content digest was used. */
      contentPurged: number;
      /** False when `limit` stopped the walk first: go on `from` lastChainSeq + 1 with `prevHash` headHash. */
      complete: boolean;
      /** The chain head's sequence when the walk began (how far there is to go; sessions appended meanwhile are checked too). */
      headChainSeq: number;
    }
  | { status: "broken"; checked: number; start: ChainStart; firstBrokenAt: BrokenLink; contentPurged: number };

export interface VerifyOptions {
  /** Start at this chain sequence instead of the latest checkpoint, trusting that session's prev_hash. */
  from?: bigint | undefined;
  /** Stop after this sequence (retention verifies exactly what it is about to purge). */
  to?: bigint | undefined;
  /** With `from`: the prev_hash that session must carry (the last hash of a previous walk), so the link into it is checked too. */
  prevHash?: string | undefined;
  /** Check at most this many sessions, then report `complete: false` (a client walks a long chain in parts, showing progress). */
  limit?: number | undefined;
  batchSize?: number | undefined;
}

/** What a link is computed from: every field of the session (SESSION_COLUMNS) and the link's own columns. */
const sessionFields = {
  ...(Object.fromEntries(Object.keys(SESSION_COLUMNS).map((field) => [field, true])) as Record<SessionField, true>),
  chainVersion: true,
  chainSeq: true,
  contentDigest: true,
  hash: true,
  prevHash: true,
} as const;

/**
 * Walks the hash chain in sequence order, in keyset batches (never the whole
 * table at once), recomputing every link (docs/audit.md, "Tamper evidence").
 * Stops at the first broken one. Sessions appended while it walks are
 * checked too, up to the head it finds when it reaches the end.
 */
export async function verifyChain(db: Database, options: VerifyOptions = {}): Promise<VerifyReport> {
  const batchSize = options.batchSize ?? DEFAULT_BATCH;
  const headAtStart = await db.auditChainHead.findUnique({ where: { id: 1 }, select: { chainSeq: true } });
  let start = await startOf(db, options.from);
  if (start.kind === "from" && options.prevHash !== undefined) start = { ...start, prevHash: options.prevHash };
  let expectedSeq = BigInt(start.chainSeq);
  let expectedPrev = start.prevHash;
  let checked = 0;
  let contentPurged = 0;
  let contentHorizon = await contentPurgedBefore(db);
  const broken = (link: BrokenLink): VerifyReport => ({
    status: "broken",
    checked,
    start,
    firstBrokenAt: link,
    contentPurged,
  });

  for (;;) {
    const rows = await db.session.findMany({
      where: { chainSeq: { gte: expectedSeq, ...(options.to === undefined ? {} : { lte: options.to }) } },
      orderBy: { chainSeq: "asc" },
      take: batchSize,
      select: sessionFields,
    });
    if (rows.length === 0) {
      if (options.to !== undefined) {
        if (expectedSeq <= options.to) {
          return broken({
            sessionId: null,
            chainSeq: Number(expectedSeq),
            reason: "missing_link",
            detail: `no session with chain sequence ${expectedSeq}`,
          });
        }
        break;
      }
      const head = await db.auditChainHead.findUnique({ where: { id: 1 } });
      if (!head) {
        return broken({
          sessionId: null,
          chainSeq: Number(expectedSeq),
          reason: "head_mismatch",
          detail: "no chain head row",
        });
      }
      if (head.chainSeq >= expectedSeq) {
        // Appended since the last read? Their rows committed with the head.
        const more = await db.session.count({ where: { chainSeq: { gte: expectedSeq } } });
        if (more > 0) continue;
        return broken({
          sessionId: null,
          chainSeq: Number(expectedSeq),
          reason: "missing_link",
          detail: `the chain head is at ${head.chainSeq} but no session has sequence ${expectedSeq}`,
        });
      }
      if (head.chainSeq !== expectedSeq - 1n || (expectedPrev !== null && head.hash !== expectedPrev)) {
        return broken({
          sessionId: null,
          chainSeq: Number(head.chainSeq),
          reason: "head_mismatch",
          detail: `the chain head (${head.chainSeq}, ${head.hash}) is not the last session checked (${expectedSeq - 1n})`,
        });
      }
      break;
    }

    const ids = rows.map((row) => row.id);
    const [contents, events] = await Promise.all([
      db.sessionContent.findMany({ where: { sessionId: { in: ids } } }),
      db.sessionEvent.findMany({ where: { sessionId: { in: ids } }, orderBy: [{ sessionId: "asc" }, { seq: "asc" }] }),
    ]);
    const contentOf = new Map(contents.map((content) => [content.sessionId, content]));
    const eventsOf = new Map<string, typeof events>();
    for (const event of events) {
      const list = eventsOf.get(event.sessionId) ?? [];
      list.push(event);
      eventsOf.set(event.sessionId, list);
    }

    for (const row of rows) {
      const chainSeq = row.chainSeq as bigint;
      if (chainSeq !== expectedSeq) {
        // A retention run may have purged this stretch while we walked:
        // its checkpoint, written before the delete, says where to resume.
        // So may one that goes on from where an earlier part stopped (prevHash).
        const resumable = options.from === undefined || options.prevHash !== undefined;
        const checkpoint = resumable ? await latestChainCheckpoint(db) : null;
        if (checkpoint && checkpoint.chainSeq >= expectedSeq) {
          start = checkpointStart(checkpoint);
          expectedSeq = checkpoint.chainSeq + 1n;
          expectedPrev = checkpoint.hash;
          break;
        }
        return broken({
          sessionId: row.id,
          chainSeq: Number(chainSeq),
          reason: "missing_link",
          detail: `expected chain sequence ${expectedSeq}, found ${chainSeq}: the sessions between are missing`,
        });
      }
      if (expectedPrev !== null && row.prevHash !== expectedPrev) {
        return broken({
          sessionId: row.id,
          chainSeq: Number(chainSeq),
          reason: "prev_hash_mismatch",
          detail: "prev_hash is not the hash of the previous session",
        });
      }

      const content = contentOf.get(row.id) ?? null;
      const sessionEvents = eventsOf.get(row.id) ?? [];
      let digest: string;
      if (content === null && sessionEvents.length === 0 && row.contentDigest !== null) {
        if (row.receivedAt >= contentHorizon) contentHorizon = await contentPurgedBefore(db);
        if (row.receivedAt < contentHorizon) {
          // Purged by retention: the digest stored at write time stands in for the content.
          digest = row.contentDigest;
          contentPurged += 1;
        } else {
          digest = contentDigest({ content: null, events: [] });
        }
      } else {
        digest = contentDigest({ content, events: sessionEvents });
      }
      if (digest !== row.contentDigest) {
        return broken({
          sessionId: row.id,
          chainSeq: Number(chainSeq),
          reason: "hash_mismatch",
          part: "content",
          detail: "the bodies or events do not match the content digest stored with the session",
        });
      }
      const version = row.chainVersion;
      const unchained = isChainVersion(version) ? unchainedValues(row, version) : [];
      if (!isChainVersion(version) || unchained.length > 0) {
        return broken({
          sessionId: row.id,
          chainSeq: Number(chainSeq),
          reason: "hash_mismatch",
          part: "metadata",
          detail: isChainVersion(version)
            ? `chain version ${version} does not cover ${unchained.join(", ")}, which the session has`
            : `unknown chain version ${version}`,
        });
      }
      const hash = linkHash({
        version,
        chainSeq,
        prevHash: row.prevHash ?? "",
        metadataDigest: metadataDigest(row, version),
        contentDigest: digest,
      });
      if (hash !== row.hash) {
        return broken({
          sessionId: row.id,
          chainSeq: Number(chainSeq),
          reason: "hash_mismatch",
          part: "metadata",
          detail: "the session's columns do not hash to its stored hash",
        });
      }
      // After the link: a changed column the search text is read from
      // (details.responseContentType) is a hash mismatch first.
      // Null (a session stored before the column, or an answer searched by
      // its body) leaves the body searched: nothing to hide there.
      if (content?.responseText != null && content.responseText !== searchTextOf(row.details, content.responseBody)) {
        return broken({
          sessionId: row.id,
          chainSeq: Number(chainSeq),
          reason: "search_text_mismatch",
          detail: "the answer's search text is not the one its stored body gives",
        });
      }
      checked += 1;
      expectedSeq += 1n;
      expectedPrev = row.hash;
      if (options.limit !== undefined && checked >= options.limit) return ok(false);
    }
  }
  return ok(true);

  function ok(complete: boolean): VerifyReport {
    return {
      status: "ok",
      checked,
      start,
      lastChainSeq: Number(expectedSeq - 1n),
      headHash: expectedPrev,
      contentPurged,
      complete,
      headChainSeq: Number(headAtStart?.chainSeq ?? 0n),
    };
  }
}

/**
 * Fields the session holds a value in that its version's record leaves out:
 * a column added after the session was hashed must still be null in it,
 * else its value (planted later) would be covered by nothing.
 */
function unchainedValues(row: Record<string, unknown>, version: keyof typeof CHAINED_FIELDS): string[] {
  const chained = new Set<string>(CHAINED_FIELDS[version]);
  return Object.keys(SESSION_COLUMNS).filter((field) => !chained.has(field) && row[field] !== null);
}

/** The search text the store derives for a session (packages/audit, toSessionRows). */
function searchTextOf(details: unknown, responseBody: string | null): string | null {
  const facts = (details ?? {}) as { responseContentType?: unknown; response?: { encoding?: unknown } };
  if (facts.response?.encoding === "base64" || typeof facts.responseContentType !== "string") return null;
  return answerSearchText(facts.responseContentType, responseBody);
}

interface ChainCheckpoint {
  chainSeq: bigint;
  hash: string;
  createdAt: Date;
}

export async function latestChainCheckpoint(db: Database): Promise<ChainCheckpoint | null> {
  const checkpoint = await db.auditCheckpoint.findFirst({
    where: { kind: "chain", chainSeq: { not: null } },
    orderBy: { chainSeq: "desc" },
    select: { chainSeq: true, hash: true, createdAt: true },
  });
  if (!checkpoint || checkpoint.chainSeq === null || checkpoint.hash === null) return null;
  return { chainSeq: checkpoint.chainSeq, hash: checkpoint.hash, createdAt: checkpoint.createdAt };
}

/** Sessions received before this may have had their bodies and events purged (epoch when never). */
async function contentPurgedBefore(db: Database): Promise<Date> {
  const latest = await db.auditCheckpoint.aggregate({ where: { kind: "content" }, _max: { purgedBefore: true } });
  return latest._max.purgedBefore ?? new Date(0);
}

function checkpointStart(checkpoint: ChainCheckpoint): ChainStart {
  return {
    kind: "checkpoint",
    chainSeq: Number(checkpoint.chainSeq + 1n),
    prevHash: checkpoint.hash,
    checkpointAt: checkpoint.createdAt.toISOString(),
  };
}

async function startOf(db: Database, from: bigint | undefined): Promise<ChainStart> {
  const checkpoint = await latestChainCheckpoint(db);
  if (from !== undefined) {
    const head = await db.auditChainHead.findUnique({ where: { id: 1 }, select: { chainSeq: true } });
    if (head && from > head.chainSeq + 1n) {
      throw invalidRequest(`from is past the end of the chain (its last sequence is ${head.chainSeq})`, [
        { path: "query.from", message: `must be at most ${head.chainSeq + 1n}` },
      ]);
    }
    // Inside what retention purged: there is nothing before the checkpoint to start from.
    if (!checkpoint || checkpoint.chainSeq < from) return { kind: "from", chainSeq: Number(from), prevHash: null };
  }
  if (checkpoint) return checkpointStart(checkpoint);
  return { kind: "genesis", chainSeq: 1, prevHash: GENESIS_HASH };
}
