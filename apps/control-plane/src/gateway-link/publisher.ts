// Publishes configuration changes to the gateway streams of this replica.
// Services record each change with a revision in their own transaction
// (changes.ts) and call publish() once it commits; other replicas hear of it
// through Postgres LISTEN/NOTIFY, and a periodic poll covers a notification
// lost while the listener reconnects. Each round reads the revisions
// committed since the last one and turns them into one delta that every
// current gateway receives; gateways that are behind get the deltas since
// their revision from Postgres, and a snapshot only when they hold nothing
// usable or are too far behind.
import { EventEmitter } from "node:events";
import { createBackoff, type Logger } from "@modelgate/core";
import type { Database } from "@modelgate/db";
import type { ConfigDeltaInput, ConfigSnapshotInput, ConfigUpdateInput } from "@modelgate/protocol";
import pg from "pg";
import { CONFIG_CHANNEL, type ConfigPublishing } from "./changes.js";
import {
  buildSnapshot,
  type ConfigHead,
  type ConfigPosition,
  changedBetween,
  claimEpoch,
  readEntities,
  readHead,
} from "./reader.js";

export type { ConfigPosition } from "./reader.js";

export interface ConfigDistributionOptions {
  /** How long changes stay in Postgres for gateways that reconnect (default 24 h). */
  retentionMs?: number;
  /**
   * A gateway that would need a delta naming more entities than this gets a
   * snapshot instead (default 10,000, a delta of about 1.5 MB).
   */
  maxDeltaEntities?: number;
  /** Safety net for a notification lost while the listener reconnects (default 10 s). */
  pollIntervalMs?: number;
  /** How often old changes are pruned (default 1 min). */
  pruneIntervalMs?: number;
}

export interface ConfigPublisher extends ConfigPublishing {
  /** The newest revision this replica has published; undefined until it first reached Postgres. */
  head(): ConfigPosition | undefined;
  /**
   * The message that brings a gateway holding `held` up to date: the delta
   * published on top of it, a delta read from the retained changes, an empty
   * delta when it is current, or a snapshot.
   */
  updateFor(held: ConfigPosition | undefined): Promise<ConfigUpdateInput>;
  /** A snapshot at least as new as the published head; concurrent callers share one build. */
  snapshot(): Promise<ConfigSnapshotInput>;
  /** Called after each round that published something; returns an unsubscribe function. */
  subscribe(listener: () => void): () => void;
  close(): Promise<void>;
}

/** Published deltas kept in memory by base revision, for gateways a round or two behind. */
const RECENT_DELTAS = 32;

export async function startConfigPublisher({
  db,
  databaseUrl,
  logger,
  retentionMs = 24 * 60 * 60 * 1000,
  maxDeltaEntities = 10_000,
  pollIntervalMs = 10_000,
  pruneIntervalMs = 60_000,
}: {
  db: Database;
  databaseUrl: string;
  logger: Logger;
} & ConfigDistributionOptions): Promise<ConfigPublisher> {
  const events = new EventEmitter();
  events.setMaxListeners(0);
  // Undefined until Postgres first answers: a control plane that starts
  // while its database is away serves its API (which reports it) and
  // publishes once the database is back.
  let published: ConfigPosition | undefined;
  /** The last snapshot built, kept while it is current, and the build in progress. */
  let cached: ConfigSnapshotInput | undefined;
  let building: Promise<ConfigSnapshotInput> | undefined;
  const recent = new Map<number, ConfigDeltaInput>();
  let closed = false;

  /** Reads what committed since the last round and publishes it as one delta. */
  const round = async (): Promise<void> => {
    if (!published) {
      await claimEpoch(db);
      const { epoch, revision } = await readHead(db);
      published = { epoch, revision };
      events.emit("published");
      return;
    }
    const from = published;
    const result = await db.$transaction(
      async (tx) => {
        const head = await readHead(tx);
        if (head.epoch === from.epoch && head.revision === from.revision) return undefined;
        if (head.epoch !== from.epoch || head.revision < from.revision) return { head, delta: undefined };
        const changes = await changedBetween(tx, from.revision, head.revision, maxDeltaEntities);
        const delta: ConfigDeltaInput | undefined = changes && {
          epoch: head.epoch,
          baseRevision: from.revision,
          revision: head.revision,
          ...(await readEntities(tx, changes)),
        };
        return { head, delta };
      },
      { isolationLevel: "RepeatableRead" },
    );
    if (!result) return;
    const { head, delta } = result;
    if (head.epoch === from.epoch && head.revision < from.revision) {
      // The history went backwards: a database restored from a backup. A new
      // epoch makes every gateway, here and at other replicas, take a snapshot
      // instead of applying deltas to what it holds.
      logger.warn({ published: from, head }, "configuration revision went backwards; starting a new epoch");
      await db.$executeRaw`UPDATE config_head SET epoch = gen_random_uuid() WHERE id = 1 AND epoch = ${head.epoch}::uuid`;
      return round();
    }
    if (head.epoch !== from.epoch) recent.clear();
    if (delta) {
      recent.set(delta.baseRevision as number, delta);
      for (const base of recent.keys()) {
        if (recent.size <= RECENT_DELTAS) break;
        recent.delete(base);
      }
    }
    published = { epoch: head.epoch, revision: head.revision };
    // A snapshot older than what was just published is never sent again.
    cached = undefined;
    events.emit("published");
  };

  // One round at a time. A round that is running may have read the head
  // before a caller's commit, so callers that arrive meanwhile share exactly
  // one more round: bursts coalesce without missing the last change.
  let running: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  const publish = (): Promise<void> => {
    if (closed) return Promise.resolve();
    if (!running) {
      running = round()
        .catch((error: unknown) => logger.error({ err: error }, "could not publish configuration changes"))
        .finally(() => {
          running = undefined;
        });
      return running;
    }
    queued ??= running.then(() => {
      queued = undefined;
      return publish();
    });
    return queued;
  };

  /** The delta from `held` to the newest committed revision, read from the retained changes. */
  const readDeltaSince = (held: ConfigPosition): Promise<ConfigDeltaInput | undefined> =>
    db.$transaction(
      async (tx) => {
        const head: ConfigHead = await readHead(tx);
        if (head.epoch !== held.epoch || held.revision < head.prunedThrough || held.revision > head.revision) {
          return undefined;
        }
        const changes = await changedBetween(tx, held.revision, head.revision, maxDeltaEntities);
        if (!changes) return undefined;
        return {
          epoch: head.epoch,
          baseRevision: held.revision,
          revision: head.revision,
          ...(await readEntities(tx, changes)),
        };
      },
      { isolationLevel: "RepeatableRead" },
    );

  // Snapshots are the expensive message (every key and policy): concurrent
  // requests share one build, and the last one is kept for the gateways that
  // connect until the next change. An older snapshot is never sent, even
  // with the deltas after it: a new gateway would be ready, for a moment,
  // with a revoked key.
  const build = (): Promise<ConfigSnapshotInput> => {
    building ??= buildSnapshot(db)
      .then((snapshot) => {
        cached = snapshot;
        return snapshot;
      })
      .finally(() => {
        building = undefined;
      });
    return building;
  };
  const snapshot = async (): Promise<ConfigSnapshotInput> => {
    const wanted = published;
    const fits = (candidate: ConfigSnapshotInput) =>
      !wanted || (candidate.epoch === wanted.epoch && Number(candidate.revision) >= wanted.revision);
    if (cached && fits(cached)) return cached;
    if (building) {
      const shared = await building;
      if (fits(shared)) return shared;
    }
    return build();
  };
  const prune = async (): Promise<void> => {
    const cutoff = new Date(Date.now() - retentionMs);
    await db.$transaction(async (tx) => {
      const [oldest] = await tx.$queryRaw<{ revision: bigint | null }[]>`
        SELECT max(revision) AS revision FROM config_changes WHERE created_at < ${cutoff}`;
      if (oldest?.revision == null) return;
      await tx.$executeRaw`DELETE FROM config_changes WHERE revision <= ${oldest.revision}`;
      await tx.$executeRaw`
        UPDATE config_head SET pruned_through = GREATEST(pruned_through, ${oldest.revision}) WHERE id = 1`;
    });
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
    client.on("notification", () => void publish());
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
    // Changes committed while not listening are published at once.
    void publish();
  };
  try {
    await listen();
  } catch (error) {
    logger.warn({ err: error }, "configuration change listener cannot connect; retrying");
    scheduleListen();
  }
  // The first round reads where the history stands (the listener's own
  // round may already be running; this waits for it).
  await publish();

  const poll = setInterval(() => void publish(), pollIntervalMs);
  poll.unref();
  const pruning = setInterval(() => {
    prune().catch((error: unknown) => logger.warn({ err: error }, "could not prune configuration changes"));
  }, pruneIntervalMs);
  pruning.unref();

  return {
    publish,
    head: () => published,
    async updateFor(held) {
      if (!published) await publish();
      if (held && published && held.epoch === published.epoch && held.revision <= published.revision) {
        const next = recent.get(held.revision);
        if (next) return { delta: next };
        if (held.revision === published.revision) {
          return { delta: { epoch: held.epoch, baseRevision: held.revision, revision: held.revision } };
        }
      }
      // Behind by more than the recent deltas, or ahead of this replica (it
      // was served by one that published sooner): Postgres has the rest.
      const delta = held ? await readDeltaSince(held) : undefined;
      if (delta) return { delta };
      return { snapshot: await snapshot() };
    },
    snapshot,
    subscribe(fn) {
      events.on("published", fn);
      return () => events.off("published", fn);
    },
    async close() {
      closed = true;
      clearInterval(poll);
      clearInterval(pruning);
      clearTimeout(reconnectTimer);
      await running;
      await queued;
      await building?.catch(() => undefined);
      const last = listener;
      listener = undefined;
      await last?.end().catch(() => undefined);
    },
  };
}
