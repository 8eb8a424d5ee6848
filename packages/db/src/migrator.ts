import { createHash, randomUUID } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import pg from "pg";

/**
 * Applies the SQL migrations in `prisma/migrations/<name>/migration.sql`.
 *
 * Prisma's own `migrate deploy` needs its schema-engine binary, which cannot
 * be downloaded everywhere this project runs, so this does the same job and
 * records it in Prisma's history table the way Prisma does (same DDL, SHA-256
 * of the file as checksum, line-ending-tolerant comparison, same advisory
 * lock key). Wherever the engine is available, `prisma migrate status` and
 * `deploy` agree with what it recorded.
 *
 * Deliberately stricter than Prisma:
 * - each migration runs inside one transaction together with its history
 *   row, so a failing migration leaves no trace and can be retried after the
 *   fix, instead of a "failed" row that needs `migrate resolve`;
 * - a database that has a migration the folder lacks is refused (an older
 *   release started against a newer schema), where Prisma only warns;
 * - folder names must be `<14-digit timestamp>_<snake_case>`.
 */

/** The key `prisma migrate` takes with pg_advisory_lock, so both exclude each other. */
const PRISMA_MIGRATION_LOCK_KEY = 72_707_369;

/**
 * The migrations this release ships. The build copies `prisma/migrations`
 * into `dist/migrations/`, so the built package migrates without the
 * repository around it (the container image ships only `dist/`); run from its
 * TypeScript source (tests), it reads the repository's folder. Decided by
 * the module's own file name, so a build without its copies fails loudly.
 */
export const DEFAULT_MIGRATIONS_DIR = import.meta.filename.endsWith(".ts")
  ? path.resolve(import.meta.dirname, "../../../prisma/migrations")
  : path.resolve(import.meta.dirname, "migrations");

const MIGRATION_NAME = /^[0-9]{14}_[a-z0-9_]+$/;

export interface MigrationFile {
  name: string;
  sql: string;
  /** SHA-256 hex of the file as it is on disk: what gets recorded. */
  checksum: string;
  /**
   * Checksums that count as unchanged: the file's own, and the file with its
   * line endings converted either way. Prisma accepts the same, so a checkout
   * whose Git turned LF into CRLF (or back) is not mistaken for an edit.
   */
  acceptedChecksums: ReadonlySet<string>;
}

const sha256Hex = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

export interface MigrateOptions {
  databaseUrl: string;
  migrationsDir?: string;
  /** Receives one line per applied migration. */
  onApplied?: (name: string) => void;
}

export interface MigrateResult {
  applied: string[];
  alreadyApplied: string[];
}

export class MigrationError extends Error {
  override name = "MigrationError";
}

export async function readMigrations(migrationsDir = DEFAULT_MIGRATIONS_DIR): Promise<MigrationFile[]> {
  const entries = await readdir(migrationsDir, { withFileTypes: true });
  const names = entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
  const migrations: MigrationFile[] = [];
  for (const name of names) {
    if (!MIGRATION_NAME.test(name)) {
      throw new MigrationError(`migration folder ${name} is not named <14-digit timestamp>_<snake_case_name>`);
    }
    const buffer = await readFile(path.join(migrationsDir, name, "migration.sql"));
    const sql = buffer.toString("utf8");
    const withLf = sql.replace(/\r\n/g, "\n");
    migrations.push({
      name,
      sql,
      checksum: sha256Hex(buffer),
      acceptedChecksums: new Set([sha256Hex(buffer), sha256Hex(withLf), sha256Hex(withLf.replace(/\n/g, "\r\n"))]),
    });
  }
  return migrations;
}

// The exact DDL the schema engine uses, so a database first migrated here
// looks no different to Prisma.
const CREATE_MIGRATIONS_TABLE = `
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

interface AppliedRow {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
}

/**
 * Applies every pending migration in name order under an advisory lock, so
 * two control planes starting at once apply each migration exactly once.
 * Refuses to touch the database when its history disagrees with the files:
 * a changed checksum, an unfinished migration, or one the files do not have.
 */
export async function migrate(options: MigrateOptions): Promise<MigrateResult> {
  const migrations = await readMigrations(options.migrationsDir);
  const client = new pg.Client({ connectionString: options.databaseUrl });
  await client.connect();
  try {
    await client.query("SELECT pg_advisory_lock($1)", [PRISMA_MIGRATION_LOCK_KEY]);
    try {
      await client.query(CREATE_MIGRATIONS_TABLE);
      const { rows } = await client.query<AppliedRow>(
        `SELECT migration_name, checksum, finished_at FROM "_prisma_migrations" WHERE rolled_back_at IS NULL`,
      );
      const pending = planPending(migrations, rows);
      const applied: string[] = [];
      for (const migration of pending) {
        await applyOne(client, migration);
        applied.push(migration.name);
        options.onApplied?.(migration.name);
      }
      return { applied, alreadyApplied: rows.map((row) => row.migration_name) };
    } finally {
      await client.query("SELECT pg_advisory_unlock($1)", [PRISMA_MIGRATION_LOCK_KEY]);
    }
  } finally {
    await client.end();
  }
}

/** The migrations still to apply, after checking the recorded history against the files. */
function planPending(migrations: readonly MigrationFile[], appliedRows: readonly AppliedRow[]): MigrationFile[] {
  const byName = new Map(migrations.map((migration) => [migration.name, migration]));
  const appliedNames = new Set<string>();
  for (const row of appliedRows) {
    if (row.finished_at === null) {
      throw new MigrationError(
        `migration ${row.migration_name} was started but never finished; inspect the database, then mark it rolled back`,
      );
    }
    const local = byName.get(row.migration_name);
    if (!local) {
      throw new MigrationError(
        `migration ${row.migration_name} is applied to the database but missing from the migrations folder (is this an older release?)`,
      );
    }
    if (!local.acceptedChecksums.has(row.checksum)) {
      throw new MigrationError(
        `migration ${row.migration_name} was modified after it was applied (checksum ${row.checksum} in the database, ${local.checksum} on disk)`,
      );
    }
    appliedNames.add(row.migration_name);
  }
  return migrations.filter((migration) => !appliedNames.has(migration.name));
}

async function applyOne(client: pg.Client, migration: MigrationFile): Promise<void> {
  const id = randomUUID();
  await client.query("BEGIN");
  try {
    await client.query(
      `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, applied_steps_count)
       VALUES ($1, $2, $3, now(), 0)`,
      [id, migration.checksum, migration.name],
    );
    await client.query(migration.sql);
    await client.query(
      `UPDATE "_prisma_migrations" SET finished_at = clock_timestamp(), applied_steps_count = 1 WHERE id = $1`,
      [id],
    );
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK");
    const reason = error instanceof Error ? error.message : String(error);
    throw new MigrationError(`migration ${migration.name} failed and was rolled back: ${reason}`);
  }
}

/**
 * Creates the database named in `databaseUrl` when it does not exist yet,
 * connecting to the server's `postgres` database to do so. For dev mode and
 * first runs; production databases are provisioned by their operators.
 */
export async function ensureDatabaseExists(databaseUrl: string): Promise<boolean> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ""));
  if (!/^[A-Za-z0-9_-]{1,63}$/.test(name)) throw new MigrationError(`refusing to create a database named "${name}"`);
  url.pathname = "/postgres";
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    const existing = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (existing.rowCount) return false;
    await client.query(`CREATE DATABASE "${name}"`);
    return true;
  } finally {
    await client.end();
  }
}
