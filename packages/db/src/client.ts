import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaClient } from "./generated/prisma/client.js";

export interface DatabaseOptions {
  databaseUrl: string;
  /** Upper bound on pooled connections for this process. */
  maxConnections?: number;
}

export type Database = PrismaClient;

/** The `pg` pool under each client made here: one pool per process, shared by Prisma and by `poolOf`'s users. */
const pools = new WeakMap<Database, pg.Pool>();

/** A Prisma client on the `pg` driver adapter: no Rust query engine involved. */
export function createDatabaseClient({ databaseUrl, maxConnections = 10 }: DatabaseOptions): PrismaClient {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: maxConnections });
  // An idle connection the server ends (a restart, a failover, a dropped
  // database) is taken out of the pool by pg, and the next query opens a new
  // one: nothing to do but keep the process up, also before Prisma attaches
  // its own listener and after it detaches it on disconnect.
  pool.on("error", () => {});
  // Prisma ends the pool when the client disconnects.
  const client = new PrismaClient({ adapter: new PrismaPg(pool, { disposeExternalPool: true }) });
  pools.set(client, pool);
  return client;
}

/**
 * The `pg` pool under a client from `createDatabaseClient`, for the few
 * statements on a hot path that are cheaper in plain SQL than through
 * Prisma's query layer (the audit store's appends: docs/benchmarks.md).
 * Its connections are the client's; the client's disconnect ends it.
 */
export function poolOf(db: Database): pg.Pool {
  const pool = pools.get(db);
  if (!pool) throw new Error("this database client was not made by createDatabaseClient");
  return pool;
}
