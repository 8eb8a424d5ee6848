#!/usr/bin/env node
// `npm run migrate`: applies pending migrations to DATABASE_URL. For operators
// who run migrations as a deployment job and start the control plane with
// MODELGATE_MIGRATE_ON_START=false.
import { MigrationError, migrate } from "./migrator.js";

const databaseUrl = process.env.DATABASE_URL?.trim() || "postgresql://postgres@127.0.0.1:5432/modelgate";
try {
  const result = await migrate({ databaseUrl, onApplied: (name) => process.stdout.write(`applied ${name}\n`) });
  process.stdout.write(
    `${result.applied.length} migration(s) applied, ${result.alreadyApplied.length} already applied\n`,
  );
} catch (error) {
  console.error(error instanceof MigrationError ? error.message : error);
  process.exitCode = 1;
}
