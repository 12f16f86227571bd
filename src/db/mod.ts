/**
 * The database layer: the port, its two adapters, the adapter choice and the migration runner.
 *
 * @module
 */

export type { Database, DatabaseKind, NotifyHandler, Queryable, Row } from "./port.ts";
export { createPostgresDatabase, type PostgresDatabaseOptions } from "./postgres.ts";
export { createPgliteDatabase, type PgliteDatabaseOptions } from "./pglite.ts";
export {
  connectDatabase,
  type ConnectOptions,
  type DatabaseEnv,
  DEFAULT_DATA_DIR,
} from "./connect.ts";
export {
  migrate,
  type MigrateOptions,
  type MigrateResult,
  type Migration,
  MIGRATION_LOCK_KEY,
  MigrationChecksumError,
  MigrationError,
  MIGRATIONS,
  sha256Hex,
} from "./migrate.ts";
