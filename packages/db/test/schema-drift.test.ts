// Proves the hand-written SQL migrations produce exactly what schema.prisma
// describes: the schema is read through Prisma's own DMMF (a wasm build, no
// engine binary) and compared with the catalog of a freshly migrated database,
// in both directions, so neither side can gain anything the other lacks.
import { readFile } from "node:fs/promises";
import path from "node:path";
import type * as DMMF from "@prisma/dmmf";
import { getDMMF } from "@prisma/internals";
import pg from "pg";
import { createTestDatabase, type TestDatabase } from "../src/testing.js";

const SCHEMA_PATH = path.resolve(import.meta.dirname, "../../../prisma/schema.prisma");

interface ColumnRow {
  table_name: string;
  column_name: string;
  is_nullable: "YES" | "NO";
  udt_name: string;
  character_maximum_length: number | null;
  datetime_precision: number | null;
  column_default: string | null;
}
interface IndexRow {
  table_name: string;
  index_name: string;
  is_unique: boolean;
  is_primary: boolean;
  columns: string[];
  descending: boolean[];
}
interface ForeignKeyRow {
  table_name: string;
  columns: string[];
  ref_table: string;
  ref_columns: string[];
  on_delete: string;
  on_update: string;
}

const SCALAR_UDT: Record<string, string> = {
  Int: "int4",
  BigInt: "int8",
  Boolean: "bool",
  Float: "float8",
  Decimal: "numeric",
  Json: "jsonb",
  Bytes: "bytea",
};
const NATIVE_UDT: Record<string, string> = {
  VarChar: "varchar",
  Char: "bpchar",
  Uuid: "uuid",
  Text: "text",
  Timestamptz: "timestamptz",
  Timestamp: "timestamp",
  Date: "date",
};
const REFERENTIAL_ACTION: Record<string, string> = {
  a: "NoAction",
  r: "Restrict",
  c: "Cascade",
  n: "SetNull",
  d: "SetDefault",
};

function expectedUdt(field: DMMF.Field): string {
  let base: string;
  if (field.kind === "enum") base = field.type;
  else if (field.nativeType) base = NATIVE_UDT[field.nativeType[0]] ?? `unmapped:${field.nativeType[0]}`;
  else if (field.type === "String") base = "text";
  else if (field.type === "DateTime") base = "timestamp";
  else base = SCALAR_UDT[field.type] ?? `unmapped:${field.type}`;
  return field.isList ? `_${base}` : base;
}

describe("schema.prisma and the SQL migrations", () => {
  let db: TestDatabase;
  let client: pg.Client;
  let datamodel: DMMF.Datamodel;
  let columns: ColumnRow[];
  let indexes: IndexRow[];
  let foreignKeys: ForeignKeyRow[];

  const tableOf = (model: DMMF.Model) => model.dbName ?? model.name;
  const columnOf = (model: DMMF.Model, fieldName: string) => {
    const field = model.fields.find((candidate) => candidate.name === fieldName);
    if (!field) throw new Error(`${model.name}.${fieldName} not in the schema`);
    return field.dbName ?? field.name;
  };
  const scalarFields = (model: DMMF.Model) => model.fields.filter((field) => field.kind !== "object");

  beforeAll(async () => {
    const dmmf = await getDMMF({ datamodel: await readFile(SCHEMA_PATH, "utf8") });
    datamodel = dmmf.datamodel as DMMF.Datamodel;
    db = await createTestDatabase();
    client = new pg.Client({ connectionString: db.url });
    await client.connect();
    columns = (
      await client.query<ColumnRow>(
        `SELECT table_name, column_name, is_nullable, udt_name, character_maximum_length, datetime_precision, column_default
         FROM information_schema.columns WHERE table_schema = 'public'`,
      )
    ).rows;
    indexes = (
      await client.query<IndexRow>(
        `SELECT t.relname AS table_name, i.relname AS index_name, ix.indisunique AS is_unique, ix.indisprimary AS is_primary,
                array_agg(a.attname::text ORDER BY k.ord) AS columns,
                array_agg((ix.indoption[k.ord - 1] & 1) = 1 ORDER BY k.ord) AS descending
         FROM pg_index ix
         JOIN pg_class i ON i.oid = ix.indexrelid
         JOIN pg_class t ON t.oid = ix.indrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         CROSS JOIN LATERAL unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord)
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
         WHERE n.nspname = 'public'
         GROUP BY t.relname, i.relname, ix.indisunique, ix.indisprimary`,
      )
    ).rows;
    foreignKeys = (
      await client.query<ForeignKeyRow>(
        `SELECT src.relname AS table_name, dst.relname AS ref_table, c.confdeltype AS on_delete, c.confupdtype AS on_update,
                ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
                      JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o) AS columns,
                ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, o)
                      JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o) AS ref_columns
         FROM pg_constraint c
         JOIN pg_class src ON src.oid = c.conrelid
         JOIN pg_class dst ON dst.oid = c.confrelid
         JOIN pg_namespace n ON n.oid = src.relnamespace
         WHERE c.contype = 'f' AND n.nspname = 'public'`,
      )
    ).rows;
  });

  afterAll(async () => {
    await client?.end();
    await db?.drop();
  });

  it("has exactly the schema's tables, plus Prisma's migration history", () => {
    const expected = [...datamodel.models.map(tableOf), "_prisma_migrations"].sort();
    const actual = [...new Set(columns.map((column) => column.table_name))].sort();
    expect(actual).toEqual(expected);
  });

  it("has every enum with the schema's values in order", async () => {
    const { rows } = await client.query<{ name: string; labels: string[] }>(
      `SELECT t.typname AS name, array_agg(e.enumlabel::text ORDER BY e.enumsortorder) AS labels
       FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.typname`,
    );
    const actual = Object.fromEntries(rows.map((row) => [row.name, row.labels]));
    const expected = Object.fromEntries(
      datamodel.enums.map((enumType) => [
        enumType.dbName ?? enumType.name,
        enumType.values.map((value) => value.dbName ?? value.name),
      ]),
    );
    expect(actual).toEqual(expected);
  });

  it("has every field as a column of the right type, size and nullability, and no other column", () => {
    for (const model of datamodel.models) {
      const table = tableOf(model);
      const expected = scalarFields(model)
        .map((field) => ({
          column: field.dbName ?? field.name,
          udt: expectedUdt(field),
          nullable: field.isRequired && !field.isList ? "NO" : "YES",
          length:
            !field.isList && field.nativeType && ["VarChar", "Char"].includes(field.nativeType[0])
              ? Number(field.nativeType[1][0])
              : null,
          precision: field.type === "DateTime" && !field.isList ? Number(field.nativeType?.[1][0] ?? 3) : null,
          hasDatabaseDefault:
            field.hasDefaultValue &&
            !(
              typeof field.default === "object" &&
              field.default !== null &&
              "name" in field.default &&
              ["uuid", "cuid", "ulid", "nanoid"].includes(field.default.name)
            ),
        }))
        .sort((a, b) => a.column.localeCompare(b.column));
      const actual = columns
        .filter((column) => column.table_name === table)
        .map((column) => ({
          column: column.column_name,
          udt: column.udt_name,
          nullable: column.is_nullable,
          length: column.character_maximum_length,
          precision: column.udt_name.startsWith("timestamp") ? column.datetime_precision : null,
          hasDatabaseDefault: column.column_default !== null,
        }))
        .sort((a, b) => a.column.localeCompare(b.column));
      expect({ table, columns: actual }).toEqual({ table, columns: expected });
    }
  });

  it("has every primary key, unique constraint and index, and no other index", () => {
    const describe = (table: string, columnNames: readonly string[], unique: boolean, descending: readonly boolean[]) =>
      `${table}(${columnNames.map((column, index) => `${column}${descending[index] ? " DESC" : ""}`).join(", ")})${unique ? " UNIQUE" : ""}`;

    const expected: string[] = [];
    for (const model of datamodel.models) {
      const table = tableOf(model);
      if (model.primaryKey) {
        expected.push(
          describe(
            table,
            model.primaryKey.fields.map((name) => columnOf(model, name)),
            true,
            [],
          ),
        );
      }
    }
    for (const index of datamodel.indexes) {
      const model = datamodel.models.find((candidate) => candidate.name === index.model);
      if (!model) throw new Error(`index on unknown model ${index.model}`);
      if (index.type === "id" && model.primaryKey) continue; // already counted as the composite primary key
      expected.push(
        describe(
          tableOf(model),
          index.fields.map((field) => columnOf(model, field.name)),
          index.type === "id" || index.type === "unique",
          index.fields.map((field) => field.sortOrder === "desc"),
        ),
      );
    }
    const actual = indexes
      .filter((index) => index.table_name !== "_prisma_migrations")
      .map((index) => describe(index.table_name, index.columns, index.is_unique, index.descending));
    expect(actual.sort()).toEqual([...new Set(expected)].sort());
  });

  it("has every relation as a foreign key with the schema's referential actions, and no other", () => {
    const expected: ForeignKeyRow[] = [];
    for (const model of datamodel.models) {
      for (const field of model.fields) {
        if (field.kind !== "object" || !field.relationFromFields?.length) continue;
        const target = datamodel.models.find((candidate) => candidate.name === field.type);
        if (!target) throw new Error(`relation to unknown model ${field.type}`);
        const optional = field.relationFromFields.some(
          (name) => !model.fields.find((candidate) => candidate.name === name)?.isRequired,
        );
        expected.push({
          table_name: tableOf(model),
          columns: field.relationFromFields.map((name) => columnOf(model, name)),
          ref_table: tableOf(target),
          ref_columns: (field.relationToFields ?? []).map((name) => columnOf(target, name)),
          on_delete: field.relationOnDelete ?? (optional ? "SetNull" : "Restrict"),
          on_update: field.relationOnUpdate ?? "Cascade",
        });
      }
    }
    const actual = foreignKeys.map((key) => ({
      ...key,
      on_delete: REFERENTIAL_ACTION[key.on_delete] ?? key.on_delete,
      on_update: REFERENTIAL_ACTION[key.on_update] ?? key.on_update,
    }));
    const byTable = (a: ForeignKeyRow, b: ForeignKeyRow) =>
      `${a.table_name}${a.columns}`.localeCompare(`${b.table_name}${b.columns}`);
    expect(actual.sort(byTable)).toEqual(expected.sort(byTable));
  });
});
