/**
 * `jobengine watch`: prints timeline events as they happen, in sequence order, each once.
 *
 * @module
 */
import { TimelineEventEmitter } from "../events/timeline_event_emitter.ts";
import { EVENT_TYPES } from "../job/job.ts";
import { eventLine, palette } from "./_format.ts";
import { type Command, expectPositionals, intOption, listOption, UsageError } from "./_shared.ts";

const USAGE = "watch [--after n] [--types t,...] [--count n]";

/** The `watch` command. */
export const watchCommand: Command = {
  name: "watch",
  usage: USAGE,
  summary: "Print live events (colours on a terminal; --json: one envelope per line)",
  help: [
    "--after n replays events with sequence > n first; without it, watching starts now.",
    "--types filters by event type (job.failed,sealed.egress_blocked,...); --count n exits after",
    "n events. Every tenant unless --tenant. Stops on Ctrl-C or SIGTERM. NO_COLOR disables colours.",
  ].join("\n"),
  options: {
    after: { type: "string" },
    types: { type: "string", multiple: true },
    count: { type: "string" },
  },
  async run(ctx, positionals, values) {
    expectPositionals(positionals, 0, 0, USAGE);
    const after = intOption("after", values.after, { min: 0 });
    const count = intOption("count", values.count, { min: 1 });
    const types = listOption(values.types);
    const unknown = types.find((t) => !(EVENT_TYPES as readonly string[]).includes(t));
    if (unknown !== undefined) {
      throw new UsageError(
        `Invalid --types "${unknown}": expected one of ${EVENT_TYPES.join(", ")}`,
      );
    }
    const db = await ctx.database();
    // The emitter retries a failing read for ever (an engine outlives an outage); a command
    // should say at once that there is nothing to watch: an unmigrated database is exit 5
    await db.query("select from jobengine.timeline_events limit 1");
    const emitter = new TimelineEventEmitter(db);
    const p = palette(ctx.color);
    let seen = 0;
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => finish = resolve);
    const stopListening = ctx.io.onShutdownSignal(() => finish());
    await emitter.start();
    const unsubscribe = emitter.subscribe(
      { after, types: types.length > 0 ? types : null, tenantId: ctx.flags.tenant ?? null },
      (event) => {
        if (count !== undefined && seen >= count) return;
        seen++;
        ctx.print(ctx.flags.json ? JSON.stringify(event) : eventLine(event, p));
        if (count !== undefined && seen >= count) finish();
      },
    );
    // a signal while the emitter finds its position ends the command too
    await Promise.race([emitter.ready(), finished]);
    if (!ctx.flags.json && ctx.io.stderrIsTerminal) {
      ctx.io.stderr(
        p.dim(`Watching events after #${after ?? emitter.position} (Ctrl-C to stop)\n`),
      );
    }
    try {
      await finished;
    } finally {
      unsubscribe();
      stopListening();
      await emitter.stop();
    }
  },
};
