/**
 * `jobengine migrate`: brings the database to the schema of this build.
 *
 * @module
 */
import { migrate } from "../db/migrate.ts";
import { type Command, expectPositionals } from "./_shared.ts";

/** The `migrate` command. */
export const migrateCommand: Command = {
  name: "migrate",
  usage: "migrate",
  summary: "Apply pending migrations (safe to run again, and from several processes)",
  options: {},
  async run(ctx, positionals) {
    expectPositionals(positionals, 0, 0, "migrate");
    const db = await ctx.database({ migrate: false });
    const { applied, skipped } = await migrate(db);
    if (ctx.flags.json) {
      ctx.printJson({ database: db.kind, applied, skipped });
      return;
    }
    for (const name of applied) ctx.print(`applied ${name}`);
    ctx.print(`${db.kind}: ${applied.length} applied, ${skipped} already up to date`);
  },
};
