/**
 * Database helpers for `deno test`: each test gets its own database, copied from the migrated
 * template that `deno task test` prepares (`JOBENGINE_TEST_TEMPLATE`, default
 * `jobengine_template`). Tests assert against real PostgreSQL and never skip.
 *
 * @module
 */

import postgres from "postgres";

/** A database created for one test. */
export interface FreshDatabase {
  /** Connection URL of the new database. */
  url: string;
  /** Name of the new database (`je_t_...`). */
  name: string;
  /** Terminates its connections and drops it. */
  drop(): Promise<void>;
}

/** Returns the admin URL from `DATABASE_URL`, or throws telling how to run the tests. */
export function adminUrl(): string {
  const url = Deno.env.get("DATABASE_URL");
  if (!url) {
    throw new Error(
      "DATABASE_URL is not set: run the tests with `deno task test`, which starts a throwaway " +
        "PostgreSQL cluster and a migrated template database (or set DATABASE_URL to a server " +
        "where `deno task test --keep` prepared one)",
    );
  }
  return url;
}

/** Opens a one-connection postgres.js client on `DATABASE_URL`; call `end()` when done. */
export function adminSql(): postgres.Sql {
  return postgres(adminUrl(), { max: 1, onnotice: () => {}, connect_timeout: 10 });
}

/**
 * Creates a database from the migrated template (or, with `empty`, from `template0`: no
 * schema at all) and returns its URL and a `drop()`.
 */
export async function freshDatabase(options: { empty?: boolean } = {}): Promise<FreshDatabase> {
  const admin = adminUrl();
  const template = options.empty
    ? "template0"
    : Deno.env.get("JOBENGINE_TEST_TEMPLATE") ?? "jobengine_template";
  const name = `je_t_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const sql = adminSql();
  try {
    for (let attempt = 1;; attempt++) {
      try {
        await sql.unsafe(`create database ${name} template "${template.replaceAll('"', '""')}"`);
        break;
      } catch (error) {
        // 55006: something (often autovacuum) is connected to the template for a moment.
        const busy = error instanceof postgres.PostgresError && error.code === "55006";
        if (!busy || attempt >= 8) throw error;
        await new Promise((resolve) => setTimeout(resolve, 25 * 2 ** attempt));
      }
    }
  } finally {
    await sql.end();
  }
  const parsed = new URL(admin);
  parsed.pathname = `/${name}`;
  return {
    url: parsed.toString(),
    name,
    async drop() {
      const sql = adminSql();
      try {
        await sql.unsafe(`drop database if exists ${name} with (force)`);
      } finally {
        await sql.end();
      }
    },
  };
}
