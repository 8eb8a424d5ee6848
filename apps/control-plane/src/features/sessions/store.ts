import { type AuditRecord, type AuditStore, type StoreOutcome, toSessionRows } from "@modelgate/audit";
import type { Database, Prisma } from "@modelgate/db";

/** Events per INSERT: well under Postgres' 65,535 bind parameters (4 per row). */
const EVENT_CHUNK = 5000;
/** A 4 MiB session with 100,000 events takes a while; Prisma's default (5 s) is for short transactions. */
const TRANSACTION_TIMEOUT_MS = 60_000;

/**
 * Stores audit records for the worker: the session, its content and its
 * events in one transaction, so a session is never visible without its
 * content. Idempotent by session id: the session row is inserted with
 * ON CONFLICT DO NOTHING, and only the transaction that inserted it writes
 * the content and events; a re-delivered record finds the row and changes
 * nothing. Two deliveries racing each other serialise on the primary key.
 *
 * The hash chain (a later slice) belongs in this transaction too: lock the
 * chain head, hash the canonical rows with the previous hash, insert the
 * session with both, move the head.
 */
export function createSessionStore({ db }: { db: Database }): AuditStore {
  return {
    async write(record: AuditRecord): Promise<StoreOutcome> {
      const { session, content, events } = toSessionRows(record);
      return db.$transaction(
        async (tx) => {
          const { count } = await tx.session.createMany({
            data: [{ ...session, details: session.details as unknown as Prisma.InputJsonObject }],
            skipDuplicates: true,
          });
          if (count === 0) return "duplicate";
          if (content) await tx.sessionContent.create({ data: content });
          for (let start = 0; start < events.length; start += EVENT_CHUNK) {
            await tx.sessionEvent.createMany({ data: events.slice(start, start + EVENT_CHUNK) });
          }
          return "stored";
        },
        { timeout: TRANSACTION_TIMEOUT_MS },
      );
    },
  };
}
