/**
 * `jobengine ls`: lists jobs, newest first, as an aligned table.
 *
 * @module
 */
import { isJobStatus, type JobStatus } from "../job/state_machine.ts";
import { attempts, colorStatus, formatTime, palette, table } from "./_format.ts";
import {
  type Command,
  expectPositionals,
  intOption,
  listOption,
  stringOption,
  UsageError,
} from "./_shared.ts";

const USAGE = "ls [--status s,...] [--type t,...] [--limit n] [--cursor c]";

/** The `ls` command. */
export const listCommand: Command = {
  name: "ls",
  usage: USAGE,
  summary: "List jobs, newest first (one page; --cursor for the next)",
  help: "Lists the jobs of --tenant (default `default`). --limit is 1 to 1000 (default 20).",
  options: {
    status: { type: "string", multiple: true },
    type: { type: "string", multiple: true },
    limit: { type: "string" },
    cursor: { type: "string" },
  },
  async run(ctx, positionals, values) {
    expectPositionals(positionals, 0, 0, USAGE);
    const status = listOption(values.status);
    const bad = status.find((s) => !isJobStatus(s));
    if (bad !== undefined) {
      throw new UsageError(
        `Invalid --status "${bad}": expected pending, scheduled, running, completed, failed or cancelled`,
      );
    }
    const limit = intOption("limit", values.limit, { min: 1, max: 1000 }) ?? 20;
    const store = await ctx.store();
    const page = await store.list({
      tenantId: ctx.flags.tenant,
      status: status as JobStatus[],
      type: listOption(values.type),
      limit,
      cursor: stringOption(values.cursor) ?? null,
    });
    if (ctx.flags.json) {
      ctx.printJson(page);
      return;
    }
    const p = palette(ctx.color);
    if (page.items.length === 0) {
      ctx.print("No jobs");
      return;
    }
    ctx.print(table([
      ["ID", "TYPE", "STATUS", "ATTEMPT", "PRIORITY", "CREATED", "UPDATED"],
      ...page.items.map((job) => [
        job.id,
        job.type,
        colorStatus(job.status, p) + (job.blockedReason ? p.yellow(" (blocked)") : ""),
        attempts(job),
        String(job.priority),
        formatTime(job.createdAt),
        formatTime(job.updatedAt),
      ]),
    ], p));
    if (page.nextCursor) {
      // the same query, one page on: the filters and the page size go with the cursor
      const again = [
        ...(ctx.flags.tenant !== undefined ? [`--tenant ${shellWord(ctx.flags.tenant)}`] : []),
        "ls",
        ...(status.length > 0 ? [`--status ${status.join(",")}`] : []),
        ...listOption(values.type).map((type) => `--type ${shellWord(type)}`),
        ...(values.limit !== undefined ? [`--limit ${limit}`] : []),
        `--cursor ${page.nextCursor}`,
      ];
      ctx.print(p.dim(`More: jobengine ${again.join(" ")}`));
    }
  },
};

/** `word` as one shell word: as is when it is plain, else in single quotes. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
