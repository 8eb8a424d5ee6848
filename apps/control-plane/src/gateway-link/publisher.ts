// Builds configuration snapshots and tells subscribers (gateway streams)
// when a new one is ready. Changes are signalled through Postgres
// LISTEN/NOTIFY, so a change made through any control-plane replica reaches
// the gateways connected to every replica.
import { EventEmitter } from "node:events";
import { createBackoff, type Logger } from "@modelgate/core";
import type { Database, Prisma } from "@modelgate/db";
import type { ConfigSnapshotInput } from "@modelgate/protocol";
import pg from "pg";
import { buildSnapshot } from "./snapshot.js";

export const CONFIG_CHANNEL = "modelgate_config";

/**
 * Marks the configuration as changed. Called inside the transaction that
 * changes it: Postgres delivers the notification only if, and when, the
 * transaction commits.
 */
export async function notifyConfigChanged(tx: Prisma.TransactionClient): Promise<void> {
  await tx.$executeRaw`SELECT pg_notify(${CONFIG_CHANNEL}, '')`;
}

export interface ConfigPublisher {
  /** The latest snapshot (builds the first one on demand). */
  current(): Promise<ConfigSnapshotInput>;
  /** Called with each new snapshot; returns an unsubscribe function. */
  subscribe(listener: (snapshot: ConfigSnapshotInput) => void): () => void;
  /** Rebuilds now (also done on every notification and periodically). */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

export async function startConfigPublisher({
  db,
  databaseUrl,
  logger,
  resyncIntervalMs = 30_000,
}: {
  db: Database;
  databaseUrl: string;
  logger: Logger;
  /** Safety net for a lost notification (e.g. while LISTEN reconnects), and for key expiry. */
  resyncIntervalMs?: number;
}): Promise<ConfigPublisher> {
  const events = new EventEmitter();
  events.setMaxListeners(0);
  let snapshot: ConfigSnapshotInput | undefined;
  let revision = 0;
  let building: Promise<void> | undefined;
  let rebuildRequested = false;
  let closed = false;

  // One build at a time; a change during a build triggers exactly one more,
  // so bursts of changes coalesce without missing the last one.
  const rebuild = (): Promise<void> => {
    if (building) {
      rebuildRequested = true;
      return building;
    }
    building = (async () => {
      do {
        rebuildRequested = false;
        // Revisions follow the clock so they keep increasing across restarts.
        revision = Math.max(revision + 1, Date.now());
        const next = await buildSnapshot(db, revision);
        snapshot = next;
        events.emit("snapshot", next);
      } while (rebuildRequested && !closed);
    })().finally(() => {
      building = undefined;
    });
    return building;
  };

  let listener: pg.Client | undefined;
  let reconnectTimer: NodeJS.Timeout | undefined;
  const reconnectBackoff = createBackoff({ initialMs: 500, maxMs: 10_000 });
  const scheduleListen = () => {
    if (closed || reconnectTimer) return;
    const delay = reconnectBackoff.next();
    reconnectTimer = setTimeout(() => {
      reconnectTimer = undefined;
      listen().catch((error: unknown) => {
        logger.warn({ err: error, retryInMs: delay }, "configuration change listener cannot connect; retrying");
        scheduleListen();
      });
    }, delay);
    reconnectTimer.unref();
  };
  const listen = async () => {
    const client = new pg.Client({ connectionString: databaseUrl });
    const lost = (error?: Error) => {
      if (listener !== client) return;
      listener = undefined;
      logger.warn({ err: error }, "configuration change listener lost its connection; reconnecting");
      void client.end().catch(() => undefined);
      scheduleListen();
    };
    client.on("notification", () => {
      rebuild().catch((error: unknown) => logger.error({ err: error }, "could not build configuration snapshot"));
    });
    client.on("error", lost);
    client.on("end", () => lost());
    try {
      await client.connect();
      await client.query(`LISTEN ${CONFIG_CHANNEL}`);
    } catch (error) {
      void client.end().catch(() => undefined);
      throw error;
    }
    listener = client;
    reconnectBackoff.reset();
    // Changes made while not listening are caught up at once.
    if (snapshot) await rebuild();
  };
  await listen();

  const resync = setInterval(() => {
    rebuild().catch((error: unknown) => logger.error({ err: error }, "could not build configuration snapshot"));
  }, resyncIntervalMs);
  resync.unref();

  return {
    async current() {
      if (!snapshot) await rebuild();
      return snapshot as ConfigSnapshotInput;
    },
    subscribe(fn) {
      events.on("snapshot", fn);
      return () => events.off("snapshot", fn);
    },
    refresh: rebuild,
    async close() {
      closed = true;
      clearInterval(resync);
      clearTimeout(reconnectTimer);
      await building?.catch(() => undefined);
      const last = listener;
      listener = undefined;
      await last?.end().catch(() => undefined);
    },
  };
}
