/**
 * `jobengine seal` / `jobengine unseal`: switches sealed mode (SPEC section 7) in the database.
 *
 * @module
 */
import { type CliContext, type Command, expectPositionals } from "./_shared.ts";

async function setSealed(ctx: CliContext, positionals: string[], sealed: boolean): Promise<void> {
  expectPositionals(positionals, 0, 0, sealed ? "seal" : "unseal");
  const store = await ctx.store();
  await store.setSealed(sealed);
  const now = await store.isSealed();
  if (ctx.flags.json) {
    ctx.printJson({ sealed: now });
  } else if (now) {
    ctx.print("Sealed: jobs that need the network stay pending; workers refuse egress.");
  } else {
    ctx.print("Unsealed: jobs that need the network are scheduled again.");
  }
}

/** The `seal` command. */
export const sealCommand: Command = {
  name: "seal",
  usage: "seal",
  summary: "Seal the engine (no network jobs scheduled; workers refuse egress)",
  options: {},
  run: (ctx, positionals) => setSealed(ctx, positionals, true),
};

/** The `unseal` command. */
export const unsealCommand: Command = {
  name: "unseal",
  usage: "unseal",
  summary: "Unseal the engine",
  options: {},
  run: (ctx, positionals) => setSealed(ctx, positionals, false),
};
