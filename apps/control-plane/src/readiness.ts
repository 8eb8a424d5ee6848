// What the control plane's /readyz checks (on the ops listener): Postgres
// answers, every migration this release ships is applied, and Redis answers
// when the audit queue lives there. A failing check names the part, never
// the error: the error is logged, the answer stays small.
import { once } from "node:events";
import type { Logger, Readiness } from "@modelgate/core";
import { type Database, readMigrations } from "@modelgate/db";
import { Redis } from "ioredis";

/** Each check's bound; the ops listener bounds the whole answer too. */
const CHECK_TIMEOUT_MS = 1_500;

export interface ReadinessOptions {
  db: Database;
  /** Redis of the audit queue, when configured. */
  redisUrl?: string | undefined;
  /** Where this release's migrations are (default: the repository's `prisma/migrations`). */
  migrationsDir?: string | undefined;
  logger: Logger;
}

export interface ReadinessChecks {
  check(): Promise<Readiness>;
  /** Shutting down: report not ready from now on. */
  stopping(): void;
  close(): Promise<void>;
}

type CheckResult = "ok" | "unreachable" | "pending" | "unknown";

export async function createReadinessChecks(options: ReadinessOptions): Promise<ReadinessChecks> {
  const { db, logger } = options;
  // The files do not change while the process runs: read them once.
  const expected = (await readMigrations(options.migrationsDir)).map((migration) => migration.name);
  // A connection of its own that never queues a command and never
  // reconnects in the background: each check connects when it must, so a
  // Redis that is away costs one attempt per probe and nothing between.
  const redis = options.redisUrl
    ? new Redis(options.redisUrl, {
        lazyConnect: true,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      })
    : undefined;
  // Connection errors show up as a failing check.
  redis?.on("error", () => {});
  let stopping = false;

  async function database(): Promise<{ database: CheckResult; migrations: CheckResult; pending?: string[] }> {
    try {
      await withTimeout(db.$queryRaw`SELECT 1`, CHECK_TIMEOUT_MS);
    } catch (error) {
      logger.warn({ err: error }, "readiness: the database does not answer");
      return { database: "unreachable", migrations: "unknown" };
    }
    let applied: Set<string>;
    try {
      const rows = await withTimeout(
        db.$queryRaw<{ migration_name: string }[]>`
          SELECT migration_name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`,
        CHECK_TIMEOUT_MS,
      );
      applied = new Set(rows.map((row) => row.migration_name));
    } catch (error) {
      // No history table yet: nothing is applied.
      logger.warn({ err: error }, "readiness: the migration history cannot be read");
      return { database: "ok", migrations: "pending", pending: expected };
    }
    // Migrations newer than this release (applied by the next one during a
    // rolling upgrade) do not count against it: they only add.
    const pending = expected.filter((name) => !applied.has(name));
    return pending.length === 0
      ? { database: "ok", migrations: "ok" }
      : { database: "ok", migrations: "pending", pending };
  }

  async function redisCheck(): Promise<CheckResult | undefined> {
    if (!redis) return undefined;
    try {
      await withTimeout(ping(redis), CHECK_TIMEOUT_MS);
      return "ok";
    } catch (error) {
      logger.warn({ err: error }, "readiness: Redis does not answer");
      return "unreachable";
    }
  }

  return {
    async check() {
      const [{ pending, ...postgres }, queue] = await Promise.all([database(), redisCheck()]);
      const checks = { ...postgres, ...(queue ? { redis: queue } : {}) };
      const ready = !stopping && Object.values(checks).every((result) => result === "ok");
      return {
        ready,
        details: { checks, ...(pending ? { pendingMigrations: pending } : {}), ...(stopping ? { stopping } : {}) },
      };
    },
    stopping() {
      stopping = true;
    },
    async close() {
      // An ended connection has nothing to close (and ioredis would keep a
      // timer for its long-gone socket).
      if (redis && redis.status !== "end" && redis.status !== "wait") redis.disconnect();
    },
  };
}

async function ping(redis: Redis): Promise<void> {
  if (redis.status === "wait" || redis.status === "end") await redis.connect();
  // A connection attempt of an earlier check that timed out.
  else if (redis.status !== "ready") await once(redis, "ready");
  await redis.ping();
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
