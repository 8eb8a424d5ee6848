export { createDatabaseClient, type Database, type DatabaseOptions, poolOf } from "./client.js";
export {
  type AdminAuditLog,
  type Agent,
  type ApiKey,
  type Connection,
  type Policy,
  Prisma,
  Protocol,
} from "./generated/prisma/client.js";
export {
  DEFAULT_MIGRATIONS_DIR,
  ensureDatabaseExists,
  type MigrateOptions,
  type MigrateResult,
  MigrationError,
  migrate,
  readMigrations,
} from "./migrator.js";
