/**
 * `jobengine show <id>`: one job and its history as a readable timeline.
 *
 * @module
 */
import { jobDetails, palette } from "./_format.ts";
import { assertJobId, type Command, expectPositionals } from "./_shared.ts";

const USAGE = "show <id>";

/** The `show` command. */
export const showCommand: Command = {
  name: "show",
  usage: USAGE,
  summary: "Show a job and its history",
  help: "--json prints { job, history }; the stored stack of the last error is included.",
  options: {},
  async run(ctx, positionals) {
    expectPositionals(positionals, 1, 1, USAGE);
    const id = positionals[0]!;
    assertJobId(id);
    const store = await ctx.store();
    const job = await store.get(id, ctx.flags.tenant);
    const history = await store.history(id, ctx.flags.tenant);
    if (ctx.flags.json) ctx.printJson({ job, history });
    else ctx.print(jobDetails(job, history, palette(ctx.color)));
  },
};
