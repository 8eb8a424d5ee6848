import {
  type AuditRecord,
  type AuditStore,
  type SessionRows,
  type StoreOutcome,
  toSessionRows,
} from "@modelgate/audit";
import type { Database, Prisma } from "@modelgate/db";
import { contentDigest, linkHash, metadataDigest, storable } from "../audit-integrity/chain.js";

/** Events per INSERT: well under Postgres' 65,535 bind parameters (4 per row). */
const EVENT_CHUNK = 5000;
/** A 4 MiB session with 100,000 events takes a while; Prisma's default (5 s) is for short transactions. */
const TRANSACTION_TIMEOUT_MS = 60_000;
/** Sessions per transaction: about 2,800 bind parameters for their rows, and a short hold on the chain head. */
export const DEFAULT_MAX_BATCH = 100;
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
 */
async function appendBatch(db: Database, batch: readonly SessionRows[]): Promise<StoreOutcome[]> {
  return db.$transaction(
    async (tx) => {
      // Every appending transaction takes this lock first, so the existence
      // check below cannot race another writer of the same session id.
      const [head] = await tx.$queryRaw<{ chain_seq: bigint; hash: string }[]>`
        SELECT chain_seq, hash FROM audit_chain_head WHERE id = 1 FOR UPDATE`;
      if (!head) throw new Error("the audit chain head row is missing (is the database migrated?)");
      const ids = [...new Set(batch.map((rows) => rows.session.id))];
      const existing = await tx.session.findMany({ where: { id: { in: ids } }, select: { id: true } });
      const taken = new Set(existing.map((row) => row.id));

      let chainSeq = head.chain_seq;
      let prevHash = head.hash;
      const outcomes: StoreOutcome[] = [];
      const sessions: Prisma.SessionCreateManyInput[] = [];
      const contents: Prisma.SessionContentCreateManyInput[] = [];
      const events: Prisma.SessionEventCreateManyInput[] = [];
      for (const { session, content, events: sessionEvents } of batch) {
        if (taken.has(session.id)) {
          outcomes.push("duplicate");
          continue;
        }
        taken.add(session.id);
        chainSeq += 1n;
        const digest = contentDigest({ content, events: sessionEvents });
        const hash = linkHash({ chainSeq, prevHash, metadataDigest: metadataDigest(session), contentDigest: digest });
        sessions.push({
          ...session,
          details: session.details as unknown as Prisma.InputJsonObject,
          chainSeq,
          contentDigest: digest,
          prevHash,
          hash,
        });
        if (content) contents.push(content);
        events.push(...sessionEvents);
        prevHash = hash;
        outcomes.push("stored");
      }
      if (sessions.length === 0) return outcomes;

      await tx.session.createMany({ data: sessions });
      if (contents.length > 0) await tx.sessionContent.createMany({ data: contents });
      for (let start = 0; start < events.length; start += EVENT_CHUNK) {
        await tx.sessionEvent.createMany({ data: events.slice(start, start + EVENT_CHUNK) });
      }
      await tx.auditChainHead.update({ where: { id: 1 }, data: { chainSeq, hash: prevHash } });
      return outcomes;
    },
    { timeout: TRANSACTION_TIMEOUT_MS },
  );
}
