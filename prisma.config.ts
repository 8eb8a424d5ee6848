import { existsSync } from "node:fs";
import { defineConfig } from "prisma/config";

// `prisma generate` needs no schema engine, but the CLI insists that a path to
// one exists before it starts. Where none can be downloaded (no machine of this
// project reaches Prisma's binary host) point it at any existing file; the
// migrator in @modelgate/db does the work `prisma migrate deploy` would.
if (!process.env.PRISMA_SCHEMA_ENGINE_BINARY) {
  process.env.PRISMA_SCHEMA_ENGINE_BINARY = existsSync("/bin/true") ? "/bin/true" : process.execPath;
}

export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  datasource: { url: process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/modelgate" },
});
