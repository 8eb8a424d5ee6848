import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "./generated/prisma/client.js";

export interface DatabaseOptions {
  databaseUrl: string;
  /** Upper bound on pooled connections for this process. */
  maxConnections?: number;
}

/** A Prisma client on the `pg` driver adapter: no Rust query engine involved. */
export function createDatabaseClient({ databaseUrl, maxConnections = 10 }: DatabaseOptions): PrismaClient {
  const adapter = new PrismaPg({ connectionString: databaseUrl, max: maxConnections });
  return new PrismaClient({ adapter });
}

export type Database = PrismaClient;
