/**
 * `jobengine worker <module-path>`: runs the handlers a module exports until SIGINT / SIGTERM,
 * then drains.
 *
 * @module
 */
import { JobScheduler } from "../scheduler/job_scheduler.ts";
import { createWorker, type JobHandlers, type WorkerLogger } from "../worker/mod.ts";
import {
  HandlersModuleError,
  loadHandlers as loadHandlersModule,
} from "../worker/load_handlers.ts";
import {
  type CliContext,
  type Command,
  expectPositionals,
  intOption,
  listOption,
  stringOption,
  UsageError,
} from "./_shared.ts";

const USAGE = "worker <module-path> [--concurrency n] [--lease-seconds n] [--drain-ms n] " +
  "[--poll-ms n] [--worker-id id] [--base-url url] [--no-scheduler] [--sealed] " +
  "[--allow host:port,...]";

/** Loads the handlers a module exports; a module that will not load is a usage error. */
export async function loadHandlers(ctx: CliContext, path: string): Promise<JobHandlers> {
  try {
    return await loadHandlersModule(path, ctx.io.cwd());
  } catch (error) {
    if (error instanceof HandlersModuleError) throw new UsageError(error.message, { cause: error });
    throw error;
  }
}

function cliLogger(ctx: CliContext): WorkerLogger & { debug(): void } {
  const write = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    const time = new Date().toISOString();
    if (ctx.flags.json) {
      ctx.io.stderr(`${JSON.stringify({ level, msg: message, time, ...fields })}\n`);
    } else {
      const extra = fields && Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : "";
      ctx.io.stderr(`${time} ${level.padEnd(5)} ${message}${extra}\n`);
    }
  };
  return { debug() {}, info: write("info"), warn: write("warn"), error: write("error") };
}

/** The `worker` command. */
export const workerCommand: Command = {
  name: "worker",
  usage: USAGE,
  summary: "Run job handlers from a module until SIGINT / SIGTERM, then drain",
  help: [
    "The module default-exports (or exports `handlers`) an object { [type]: async (job, ctx) => result }.",
    "Direct mode (the database) also runs a scheduler, which is safe next to others (one leads);",
    "--no-scheduler leaves that to the engine. --base-url runs against the HTTP API instead.",
    "On SIGINT / SIGTERM: no new claims; running jobs get --drain-ms (default 30000) to finish,",
    "then they are released (back to scheduled, lastError.code worker_shutdown). Sealed mode follows",
    "the engine unless --sealed or JOBENGINE_SEALED=1; --allow lists host:port pairs the network",
    "guard lets through.",
  ].join("\n"),
  options: {
    concurrency: { type: "string" },
    "lease-seconds": { type: "string" },
    "drain-ms": { type: "string" },
    "poll-ms": { type: "string" },
    "base-url": { type: "string" },
    "worker-id": { type: "string" },
    "no-scheduler": { type: "boolean" },
    sealed: { type: "boolean" },
    allow: { type: "string", multiple: true },
  },
  async run(ctx, positionals, values) {
    expectPositionals(positionals, 1, 1, USAGE);
    const handlers = await loadHandlers(ctx, positionals[0]!);
    const baseUrl = stringOption(values["base-url"]);
    const logger = cliLogger(ctx);
    const db = baseUrl ? undefined : await ctx.database();
    const worker = createWorker({
      db,
      baseUrl,
      tenantId: ctx.flags.tenant,
      handlers,
      concurrency: intOption("concurrency", values.concurrency, { min: 1, max: 1000 }),
      leaseSeconds: intOption("lease-seconds", values["lease-seconds"], { min: 1, max: 86400 }),
      pollIntervalMs: intOption("poll-ms", values["poll-ms"], { min: 10 }),
      workerId: stringOption(values["worker-id"]),
      // JOBENGINE_SEALED=1 seals the process (SPEC section 7), as it does the engine.
      sealed: values.sealed === true || ctx.io.env("JOBENGINE_SEALED") === "1" ? true : undefined,
      allow: listOption(values.allow),
      logger,
    });
    const drainMs = intOption("drain-ms", values["drain-ms"], { min: 0 }) ?? 30_000;
    const scheduler = db && values["no-scheduler"] !== true
      ? new JobScheduler(db, { logger })
      : null;

    let signalled!: (signal: string) => void;
    const stopping = new Promise<string>((resolve) => signalled = resolve);
    const stopListening = ctx.io.onShutdownSignal((signal) => signalled(signal));
    try {
      await scheduler?.start();
      await worker.start();
      logger.info(`Worker ${worker.workerId} running`, {
        types: Object.keys(handlers),
        mode: baseUrl ? "http" : "database",
        sealed: worker.sealed,
      });
      const signal = await stopping;
      logger.info(`Received ${signal}: draining`, { running: worker.running, drainMs });
    } finally {
      stopListening();
      await worker.stop({ deadlineMs: drainMs });
      await scheduler?.stop();
    }
    if (ctx.flags.json) ctx.printJson({ workerId: worker.workerId, ...worker.stats });
    else ctx.print(`Worker ${worker.workerId} stopped: ${JSON.stringify(worker.stats)}`);
  },
};
