/**
 * Picks the adapter from the environment: postgres.js when `DATABASE_URL` is set, otherwise
 * the embedded PGlite, persisted under `JOBENGINE_DATA_DIR` (default `.jobengine/pglite/`).
 *
 * Takes the values as an argument instead of reading the environment, so it runs on any host;
 * `src/runtime/` passes `Deno.env` values.
 *
 * @module
 */

import type { Database } from "./port.ts";
import { createPgliteDatabase } from "./pglite.ts";
import { createPostgresDatabase } from "./postgres.ts";

/** Where PGlite keeps its files when `JOBENGINE_DATA_DIR` is not set (relative to the cwd). */
export const DEFAULT_DATA_DIR = ".jobengine/pglite/";

/** The environment values {@linkcode connectDatabase} reads. */
export interface DatabaseEnv {
  /** A `postgres://` URL; when set (and not empty), PostgreSQL is used. */
  DATABASE_URL?: string;
  /** The PGlite data directory; default {@linkcode DEFAULT_DATA_DIR}. */
  JOBENGINE_DATA_DIR?: string;
}

/** Options of {@linkcode connectDatabase}. */
export interface ConnectOptions {
  /** `application_name` for PostgreSQL connections (default `jobengine`). */
  applicationName?: string;
  /** Most PostgreSQL connections in the pool (default 10). */
  max?: number;
}

/** Opens the database that `env` selects; PGlite's directory is created when missing. */
export async function connectDatabase(
  env: DatabaseEnv,
  options: ConnectOptions = {},
): Promise<Database> {
  const url = env.DATABASE_URL?.trim();
  if (url) {
    return createPostgresDatabase(url, {
      applicationName: options.applicationName,
      max: options.max,
    });
  }
  const dataDir = env.JOBENGINE_DATA_DIR?.trim() || DEFAULT_DATA_DIR;
  return await createPgliteDatabase({ dataDir });
}
