import { createHash, randomBytes } from "node:crypto";
import pg from "pg";
import { DEFAULT_MIGRATIONS_DIR, migrate, readMigrations } from "./migrator.js";

/**
 * Test databases: each test file gets its own database, cloned from a
 * template that has every migration applied. Cloning takes milliseconds,
 * so test files run in parallel without ever sharing rows.
 */

export interface TestDatabase {
  /** Connection string of the new, migrated, empty database. */
  url: string;
  name: string;
  /** Drops the database, closing whatever connections are still open on it. */
  drop(): Promise<void>;
}

/** The Postgres server tests use: DATABASE_URL's when set, else the local one. */
export function testServerUrl(): string {
  return process.env.DATABASE_URL?.trim() || "postgresql://postgres@127.0.0.1:5432/postgres";
}

export function withDatabase(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

// Any fixed number works; it only has to differ from other users' locks.
const TEMPLATE_LOCK_KEY = 0x6d67_7465; // "mgte"

export interface CreateTestDatabaseOptions {
  /** false: an empty database with no migrations applied (for migrator tests). */
  migrated?: boolean;
  migrationsDir?: string;
}

export async function createTestDatabase({
  migrated = true,
  migrationsDir = DEFAULT_MIGRATIONS_DIR,
}: CreateTestDatabaseOptions = {}): Promise<TestDatabase> {
  const serverUrl = testServerUrl();
  const admin = new pg.Client({ connectionString: withDatabase(serverUrl, "postgres") });
  await admin.connect();
  try {
    const name = `mg_test_${randomBytes(6).toString("hex")}`;
    if (migrated) {
      const template = await ensureTemplate(admin, serverUrl, migrationsDir);
      await admin.query(`CREATE DATABASE "${name}" TEMPLATE "${template}"`);
    } else {
      await admin.query(`CREATE DATABASE "${name}"`);
    }
    return {
      name,
      url: withDatabase(serverUrl, name),
      async drop() {
        const client = new pg.Client({ connectionString: withDatabase(serverUrl, "postgres") });
        await client.connect();
        try {
          await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
        } finally {
          await client.end();
        }
      },
    };
  } finally {
    await admin.end();
  }
}

/**
 * The template's name carries a digest of the migrations, so editing or adding
 * one yields a fresh template rather than a stale one. The advisory lock makes
 * parallel test workers build it once.
 */
async function ensureTemplate(admin: pg.Client, serverUrl: string, migrationsDir: string): Promise<string> {
  const migrations = await readMigrations(migrationsDir);
  const digest = createHash("sha256")
    .update(migrations.map((migration) => `${migration.name}:${migration.checksum}`).join("\n"))
    .digest("hex")
    .slice(0, 16);
  const template = `mg_template_${digest}`;
  await admin.query("SELECT pg_advisory_lock($1)", [TEMPLATE_LOCK_KEY]);
  try {
    const existing = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [template]);
    if (existing.rowCount === 0) {
      // Build under a scratch name and rename when complete: a worker killed
      // half-way must not leave a broken template that later runs would clone.
      const scratch = `${template}_building`;
      await admin.query(`DROP DATABASE IF EXISTS "${scratch}" WITH (FORCE)`);
      await admin.query(`CREATE DATABASE "${scratch}"`);
      try {
        await migrate({ databaseUrl: withDatabase(serverUrl, scratch), migrationsDir });
        await admin.query(`ALTER DATABASE "${scratch}" RENAME TO "${template}"`);
      } catch (error) {
        await admin.query(`DROP DATABASE IF EXISTS "${scratch}" WITH (FORCE)`);
        throw error;
      }
    }
  } finally {
    await admin.query("SELECT pg_advisory_unlock($1)", [TEMPLATE_LOCK_KEY]);
  }
  return template;
}
