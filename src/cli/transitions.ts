/**
 * The operator's transitions: `jobengine cancel <id>`, `retry <id>` and `schedule <id>`.
 *
 * @module
 */
import type { Job } from "../job/job.ts";
import type { JobStore } from "../job/job_store.ts";
import { jobLine, palette } from "./_format.ts";
import {
  assertJobId,
  type CliContext,
  type Command,
  expectPositionals,
  stringOption,
} from "./_shared.ts";

async function transition(
  ctx: CliContext,
  positionals: string[],
  usage: string,
  verb: string,
  act: (store: JobStore, id: string) => Promise<Job>,
): Promise<void> {
  expectPositionals(positionals, 1, 1, usage);
  const id = positionals[0]!;
  assertJobId(id);
  const store = await ctx.store();
  // With --tenant, a job of another tenant is "not found", as over HTTP.
  if (ctx.flags.tenant !== undefined) await store.get(id, ctx.flags.tenant);
  const job = await act(store, id);
  if (ctx.flags.json) ctx.printJson(job);
  else ctx.print(`${verb} ${jobLine(job, palette(ctx.color))}`);
}

/** The `cancel` command. */
export const cancelCommand: Command = {
  name: "cancel",
  usage: "cancel <id> [--reason r]",
  summary: "Cancel a pending, scheduled or running job (and its pending dependents)",
  options: { reason: { type: "string" } },
  run: (ctx, positionals, values) =>
    transition(
      ctx,
      positionals,
      "cancel <id> [--reason r]",
      "Cancelled",
      (store, id) => store.cancel(id, stringOption(values.reason), "cli"),
    ),
};

/** The `retry` command. */
export const retryCommand: Command = {
  name: "retry",
  usage: "retry <id>",
  summary: "Run a failed job once more, now",
  options: {},
  run: (ctx, positionals) =>
    transition(ctx, positionals, "retry <id>", "Retrying", (store, id) => store.retry(id, "cli")),
};

/** The `schedule` command. */
export const scheduleCommand: Command = {
  name: "schedule",
  usage: "schedule <id>",
  summary: "Schedule a pending job now (its dependencies must have completed)",
  options: {},
  run: (ctx, positionals) =>
    transition(
      ctx,
      positionals,
      "schedule <id>",
      "Scheduled",
      (store, id) => store.schedule(id, "cli"),
    ),
};
