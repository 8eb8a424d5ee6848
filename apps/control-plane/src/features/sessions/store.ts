import {
  type AuditRecord,
  type AuditStore,
  SESSION_COLUMNS,
  type SessionRow,
  type SessionRows,
  type StoreOutcome,
  toSessionRows,
} from "@modelgate/audit";
import { type Database, poolOf } from "@modelgate/db";
import type pg from "pg";
import { CURRENT_CHAIN_VERSION, contentDigest, linkHash, metadataDigest, storable } from "../audit-integrity/chain.js";
import { UsageTally } from "../usage/rollup.js";

/** The columns a stored session fills: its record's (SESSION_COLUMNS), then its link's. */
const INSERTED_COLUMNS = [
  ...Object.values(SESSION_COLUMNS),
  "chain_version",
  "chain_seq",
  "content_digest",
  "prev_hash",
  "hash",
].join(", ");

/** Events per INSERT, so that one JSON parameter stays a reasonable size. */
const EVENT_CHUNK = 5000;
/** A 4 MiB session with 100,000 events takes a while, but a batch that holds the chain head longer is stuck. */
const STATEMENT_TIMEOUT_MS = 60_000;
/** Sessions per transaction: about 2,800 bind parameters for their rows, and a short hold on the chain head. */
const DEFAULT_MAX_BATCH = 100;
/**
 * A batch also ends once its bodies and events reach this many characters
 * (one record always goes): a hundred 4 MiB sessions in one statement would
 * hold the head lock, and the process's memory, for far too long.
 */
const MAX_BATCH_CHARS = 16 * 1024 * 1024;

export interface SessionStoreOptions {
  db: Database;
  /** Most records written in one transaction (default 100; 1 writes each record on its own). */
  maxBatch?: number | undefined;
  /**
   * How long the first record of an idle store waits for companions before
   * its batch is written (default 0: the records that arrived in the same
   * turn of the event loop). Under load batches fill up anyway: records that
   * arrive while one batch is being written form the next.
   */
  lingerMs?: number | undefined;
}

interface Pending {
  rows: SessionRows;
  resolve(outcome: StoreOutcome): void;
  reject(error: unknown): void;
}

/**
 * Stores audit records for the worker, appending each new session to the
 * hash chain (docs/audit.md, "Tamper evidence").
 *
 * Concurrent `write` calls are coalesced (group commit): while one batch is
 * being written, the records that arrive wait and become the next batch, so
 * the chain head (one row every appending transaction locks) is taken once
 * per batch instead of once per record. Each batch is one transaction: the
 * sessions, their contents and events, and the moved head commit together,
 * so a session is never visible without its content nor its link.
 *
 * Idempotent by session id: under the head lock the store looks up which ids
 * exist; those, and repeats of an id inside the batch, come back `duplicate`
 * and change nothing.
 *
 * When a batch fails, each of its records is retried in a transaction of its
 * own before anyone is told: a record Postgres refuses then fails alone and
 * BullMQ retries (or fails) only that job, while the others are stored. When
 * Postgres is down the single attempts fail too and every caller's promise
 * rejects, so BullMQ retries them all with backoff.
 */
export function createSessionStore({
  db,
  maxBatch = DEFAULT_MAX_BATCH,
  lingerMs = 0,
}: SessionStoreOptions): AuditStore {
  const queue: Pending[] = [];
  let draining = false;
  let scheduled = false;

  async function drain(): Promise<void> {
    scheduled = false;
    draining = true;
    try {
      while (queue.length > 0) await writeWithFallback(takeBatch());
    } finally {
      draining = false;
    }
  }

  function takeBatch(): Pending[] {
    let count = 0;
    let chars = 0;
    while (count < queue.length && count < maxBatch && (count === 0 || chars < MAX_BATCH_CHARS)) {
      chars += sizeOf((queue[count] as Pending).rows);
      count += 1;
    }
    return queue.splice(0, count);
  }

  async function writeWithFallback(batch: Pending[]): Promise<void> {
    try {
      const outcomes = await appendBatch(
        db,
        batch.map((item) => item.rows),
      );
      for (const [index, item] of batch.entries()) item.resolve(outcomes[index] as StoreOutcome);
      return;
    } catch (error) {
      if (batch.length === 1) {
        batch[0]?.reject(error);
        return;
      }
    }
    for (const item of batch) {
      try {
        const [outcome] = await appendBatch(db, [item.rows]);
        item.resolve(outcome as StoreOutcome);
      } catch (error) {
        item.reject(error);
      }
    }
  }

  return {
    write(record: AuditRecord): Promise<StoreOutcome> {
      return new Promise<StoreOutcome>((resolve, reject) => {
        let rows: SessionRows;
        try {
          rows = rowsToStore(record);
        } catch (error) {
          reject(error);
          return;
        }
        queue.push({ rows, resolve, reject });
        if (draining || scheduled) return;
        scheduled = true;
        const start = () => void drain();
        if (lingerMs > 0) setTimeout(start, lingerMs);
        else setImmediate(start);
      });
    },
  };
}

function sizeOf({ content, events }: SessionRows): number {
  let chars = (content?.requestBody?.length ?? 0) + (content?.responseBody?.length ?? 0);
  chars += content?.responseText?.length ?? 0;
  for (const event of events) chars += event.data.length;
  return chars;
}

/** The rows exactly as Postgres will hand them back, so that what is hashed is what is stored. */
function rowsToStore(record: AuditRecord): SessionRows {
  const rows = storable(toSessionRows(record));
  // Postgres writes a uuid in lowercase whatever case it was given.
  if (rows.session.agentId) rows.session.agentId = rows.session.agentId.toLowerCase();
  return rows;
}

/**
 * One transaction: lock the chain head, skip the ids already stored, link
 * and insert the new sessions in the order given, move the head.
 *
 * The rows go in as one JSON parameter per table, expanded by Postgres
 * (`jsonb_populate_recordset`): a statement per table whatever the batch
 * size, and several times faster than Prisma's createMany here, whose
 * per-row work dominated a batch's time. The statements go straight
 * through `pg`, on the Prisma client's own pool: Prisma's query layer was
 * about a third of the control plane's CPU in storing records
 * (docs/benchmarks.md, audit store).
 */
async function appendBatch(db: Database, batch: readonly SessionRows[]): Promise<StoreOutcome[]> {
  const client = await poolOf(db).connect();
  let broken: Error | undefined;
  try {
    await client.query("BEGIN");
    await client.query(`SET LOCAL statement_timeout = ${STATEMENT_TIMEOUT_MS}`);
    const outcomes = await appendInTransaction(client, batch);
    await client.query("COMMIT");
    return outcomes;
  } catch (error) {
    try {
      await client.query("ROLLBACK");
    } catch (rollbackError) {
      broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
    }
    throw error;
  } finally {
    // A connection whose rollback failed is closed, not given back to the pool.
    client.release(broken);
  }
}

async function appendInTransaction(client: pg.PoolClient, batch: readonly SessionRows[]): Promise<StoreOutcome[]> {
  // Every appending transaction takes this lock first, so the existence
  // check below cannot race another writer of the same session id.
  const {
    rows: [head],
  } = await client.query<{ chain_seq: string; hash: string }>(
    "SELECT chain_seq, hash FROM audit_chain_head WHERE id = 1 FOR UPDATE",
  );
  if (!head) throw new Error("the audit chain head row is missing (is the database migrated?)");
  const ids = [...new Set(batch.map((rows) => rows.session.id))];
  const existing = await client.query<{ id: string }>("SELECT id FROM sessions WHERE id = ANY($1::text[])", [ids]);
  const taken = new Set(existing.rows.map((row) => row.id));

  let chainSeq = BigInt(head.chain_seq);
  let prevHash = head.hash;
  const outcomes: StoreOutcome[] = [];
  const sessions: Record<string, unknown>[] = [];
  const contents: Record<string, unknown>[] = [];
  const events: Record<string, unknown>[] = [];
  const usage = new UsageTally();
  for (const { session, content, events: sessionEvents } of batch) {
    if (taken.has(session.id)) {
      outcomes.push("duplicate");
      continue;
    }
    taken.add(session.id);
    chainSeq += 1n;
    const digest = contentDigest({ content, events: sessionEvents });
    const version = CURRENT_CHAIN_VERSION;
    const hash = linkHash({
      version,
      chainSeq,
      prevHash,
      metadataDigest: metadataDigest(session, version),
      contentDigest: digest,
    });
    sessions.push({
      ...sessionColumns(session),
      chain_version: version,
      // A decimal string: JSON numbers lose precision past 2^53.
      chain_seq: chainSeq.toString(),
      content_digest: digest,
      prev_hash: prevHash,
      hash,
    });
    usage.add(session);
    if (content) {
      contents.push({
        session_id: content.sessionId,
        request_body: content.requestBody,
        response_body: content.responseBody,
        response_text: content.responseText,
        truncated: content.truncated,
      });
    }
    for (const event of sessionEvents) {
      events.push({ session_id: event.sessionId, seq: event.seq, offset_ms: event.offsetMs, data: event.data });
    }
    prevHash = hash;
    outcomes.push("stored");
  }
  if (sessions.length === 0) return outcomes;

  await client.query(
    `INSERT INTO sessions (${INSERTED_COLUMNS})
        SELECT ${INSERTED_COLUMNS} FROM jsonb_populate_recordset(NULL::sessions, $1::jsonb)`,
    [JSON.stringify(sessions)],
  );
  if (contents.length > 0) {
    await client.query(
      `INSERT INTO session_contents (session_id, request_body, response_body, response_text, truncated)
          SELECT session_id, request_body, response_body, response_text, truncated
          FROM jsonb_populate_recordset(NULL::session_contents, $1::jsonb)`,
      [JSON.stringify(contents)],
    );
  }
  for (let start = 0; start < events.length; start += EVENT_CHUNK) {
    await client.query(
      `INSERT INTO session_events (session_id, seq, offset_ms, data)
          SELECT session_id, seq, offset_ms, data
          FROM jsonb_populate_recordset(NULL::session_events, $1::jsonb)`,
      [JSON.stringify(events.slice(start, start + EVENT_CHUNK))],
    );
  }
  // In the sessions' transaction, and only for the sessions it inserted
  // (duplicates were skipped under the head lock): each counted exactly once.
  await usage.write(client);
  await client.query("UPDATE audit_chain_head SET chain_seq = $1, hash = $2 WHERE id = 1", [
    chainSeq.toString(),
    prevHash,
  ]);
  return outcomes;
}

/** The row as `jsonb_populate_recordset` reads it: each field under its column's name. */
function sessionColumns(session: SessionRow): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  for (const [field, column] of Object.entries(SESSION_COLUMNS)) row[column] = session[field as keyof SessionRow];
  return row;
}
