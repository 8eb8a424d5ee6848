import { createHash } from "node:crypto";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { DEFAULT_MIGRATIONS_DIR, MigrationError, migrate, readMigrations } from "../src/migrator.js";
import { createTestDatabase, type TestDatabase } from "../src/testing.js";

async function query<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

async function copyMigrations(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "mg-migrations-"));
  await cp(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true });
  return dir;
}

describe("migrator", () => {
  let db: TestDatabase;
  const tempDirs: string[] = [];

  beforeEach(async () => {
    db = await createTestDatabase({ migrated: false });
  });
  afterEach(async () => {
    await db.drop();
    await Promise.all(tempDirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it("applies every migration once and records it the way prisma migrate deploy does", async () => {
    const files = await readMigrations();
    const first = await migrate({ databaseUrl: db.url });
    expect(first.applied).toEqual(files.map((file) => file.name));

    const rows = await query<{
      migration_name: string;
      checksum: string;
      finished_at: Date | null;
      applied_steps_count: number;
      rolled_back_at: Date | null;
    }>(db.url, `SELECT * FROM "_prisma_migrations" ORDER BY migration_name`);
    expect(rows.map((row) => row.migration_name)).toEqual(files.map((file) => file.name));
    for (const [index, row] of rows.entries()) {
      const file = files[index];
      const onDisk = await readFile(path.join(DEFAULT_MIGRATIONS_DIR, row.migration_name, "migration.sql"));
      expect(row.checksum).toBe(createHash("sha256").update(onDisk).digest("hex"));
      expect(row.checksum).toBe(file?.checksum);
      expect(row.finished_at).toBeInstanceOf(Date);
      expect(row.applied_steps_count).toBe(1);
      expect(row.rolled_back_at).toBeNull();
    }

    const second = await migrate({ databaseUrl: db.url });
    expect(second.applied).toEqual([]);
    expect(second.alreadyApplied.sort()).toEqual(files.map((file) => file.name));
  });

  it("lets two migrators started at once apply each migration exactly once", async () => {
    const results = await Promise.all([migrate({ databaseUrl: db.url }), migrate({ databaseUrl: db.url })]);
    const appliedTwice = results.flatMap((result) => result.applied);
    const files = await readMigrations();
    expect(appliedTwice.sort()).toEqual(files.map((file) => file.name).sort());
    const [count] = await query<{ n: string }>(db.url, `SELECT count(*) AS n FROM "_prisma_migrations"`);
    expect(Number(count?.n)).toBe(files.length);
  });

  it("refuses to run when an applied migration was edited afterwards", async () => {
    const dir = await copyMigrations();
    tempDirs.push(dir);
    await migrate({ databaseUrl: db.url, migrationsDir: dir });
    const [first] = await readMigrations(dir);
    if (!first) throw new Error("expected at least one migration");
    await writeFile(path.join(dir, first.name, "migration.sql"), `${first.sql}\n-- edited\n`);
    await mkdir(path.join(dir, "29990101000000_later"));
    await writeFile(path.join(dir, "29990101000000_later", "migration.sql"), "CREATE TABLE later (id int);");

    await expect(migrate({ databaseUrl: db.url, migrationsDir: dir })).rejects.toThrow(
      new RegExp(`${first.name} was modified after it was applied`),
    );
    const tables = await query(db.url, "SELECT 1 FROM information_schema.tables WHERE table_name = 'later'");
    expect(tables).toHaveLength(0);
  });

  it("accepts an applied migration whose line endings were converted, as Prisma does", async () => {
    const dir = await copyMigrations();
    tempDirs.push(dir);
    await migrate({ databaseUrl: db.url, migrationsDir: dir });
    const [first] = await readMigrations(dir);
    if (!first) throw new Error("expected at least one migration");
    await writeFile(path.join(dir, first.name, "migration.sql"), first.sql.replace(/\n/g, "\r\n"));
    const again = await migrate({ databaseUrl: db.url, migrationsDir: dir });
    expect(again.applied).toEqual([]);
  });

  it("creates Prisma's history table with Prisma's own column types", async () => {
    await migrate({ databaseUrl: db.url });
    const columns = await query<{ column_name: string; data_type: string; is_nullable: string; max: number | null }>(
      db.url,
      `SELECT column_name, data_type, is_nullable, character_maximum_length AS max
       FROM information_schema.columns WHERE table_name = '_prisma_migrations' ORDER BY ordinal_position`,
    );
    expect(columns).toEqual([
      { column_name: "id", data_type: "character varying", is_nullable: "NO", max: 36 },
      { column_name: "checksum", data_type: "character varying", is_nullable: "NO", max: 64 },
      { column_name: "finished_at", data_type: "timestamp with time zone", is_nullable: "YES", max: null },
      { column_name: "migration_name", data_type: "character varying", is_nullable: "NO", max: 255 },
      { column_name: "logs", data_type: "text", is_nullable: "YES", max: null },
      { column_name: "rolled_back_at", data_type: "timestamp with time zone", is_nullable: "YES", max: null },
      { column_name: "started_at", data_type: "timestamp with time zone", is_nullable: "NO", max: null },
      { column_name: "applied_steps_count", data_type: "integer", is_nullable: "NO", max: null },
    ]);
  });

  it("waits for Prisma's migration lock (pg_advisory_lock 72707369) before touching the database", async () => {
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query("SELECT pg_advisory_lock(72707369)");
      let finished = false;
      const running = migrate({ databaseUrl: db.url }).then((result) => {
        finished = true;
        return result;
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(finished).toBe(false);
      const tables = await query(db.url, "SELECT 1 FROM information_schema.tables WHERE table_name = 'connections'");
      expect(tables).toHaveLength(0);
      await holder.query("SELECT pg_advisory_unlock(72707369)");
      expect((await running).applied.length).toBeGreaterThan(0);
    } finally {
      await holder.end();
    }
  });

  it("rolls a failing migration back completely and records nothing for it", async () => {
    const dir = await copyMigrations();
    tempDirs.push(dir);
    await mkdir(path.join(dir, "29990101000000_broken"));
    await writeFile(
      path.join(dir, "29990101000000_broken", "migration.sql"),
      "CREATE TABLE half_done (id int);\nSELECT * FROM no_such_table;",
    );

    const failure = migrate({ databaseUrl: db.url, migrationsDir: dir });
    await expect(failure).rejects.toBeInstanceOf(MigrationError);
    await expect(failure).rejects.toThrow(/29990101000000_broken failed and was rolled back/);

    const recorded = await query<{ migration_name: string }>(db.url, `SELECT migration_name FROM "_prisma_migrations"`);
    expect(recorded.map((row) => row.migration_name)).not.toContain("29990101000000_broken");
    expect(recorded.length).toBe((await readMigrations()).length);
    const tables = await query(db.url, "SELECT 1 FROM information_schema.tables WHERE table_name = 'half_done'");
    expect(tables).toHaveLength(0);
  });

  it("refuses a database that has a migration the folder does not know", async () => {
    await migrate({ databaseUrl: db.url });
    await query(
      db.url,
      `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, finished_at, applied_steps_count)
       VALUES (gen_random_uuid()::text, repeat('0', 64), '29990101000000_from_the_future', now(), 1)`,
    );
    await expect(migrate({ databaseUrl: db.url })).rejects.toThrow(
      /29990101000000_from_the_future is applied to the database but missing/,
    );
  });

  it("rejects a migration folder with a name prisma would not produce", async () => {
    const dir = await copyMigrations();
    tempDirs.push(dir);
    await mkdir(path.join(dir, "add-stuff"));
    await writeFile(path.join(dir, "add-stuff", "migration.sql"), "SELECT 1;");
    await expect(migrate({ databaseUrl: db.url, migrationsDir: dir })).rejects.toThrow(/add-stuff is not named/);
    const tables = await query(
      db.url,
      "SELECT 1 FROM information_schema.tables WHERE table_name = '_prisma_migrations'",
    );
    expect(tables).toHaveLength(0);
  });
});
