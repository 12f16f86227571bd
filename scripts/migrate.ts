/**
 * `deno task migrate`: applies the embedded migrations to the database that `DATABASE_URL`
 * (PostgreSQL) or `JOBENGINE_DATA_DIR` (PGlite, the default) selects, and prints what it did.
 *
 * @module
 */

import { connectDatabase } from "../src/db/connect.ts";
import { migrate } from "../src/db/migrate.ts";

async function main(): Promise<number> {
  const db = await connectDatabase({
    DATABASE_URL: Deno.env.get("DATABASE_URL"),
    JOBENGINE_DATA_DIR: Deno.env.get("JOBENGINE_DATA_DIR"),
  }, { applicationName: "jobengine-migrate" });
  try {
    const { applied, skipped } = await migrate(db);
    for (const name of applied) console.log(`applied ${name}`);
    console.log(`${db.kind}: ${applied.length} applied, ${skipped} already up to date`);
    return 0;
  } catch (error) {
    console.error(`Migration failed: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    await db.close();
  }
}

if (import.meta.main) Deno.exit(await main());
