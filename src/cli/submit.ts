/**
 * `jobengine submit <type> [payload-json | --file f.json|f.ndjson] [options]`: creates jobs.
 *
 * @module
 */
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { inexactNumber } from "../job/exact_json.ts";
import type { Job } from "../job/job.ts";
import type { CreateJobOptions, JobStore } from "../job/job_store.ts";
import { jobLine, palette, progressBar } from "./_format.ts";
import {
  type CliContext,
  type Command,
  expectPositionals,
  intOption,
  listOption,
  stringOption,
  UsageError,
} from "./_shared.ts";

const USAGE = "submit <type> [payload-json | --file f.json|f.ndjson] [--depends-on id,...] " +
  "[--priority n] [--max-retries n] [--requires-network] [--idempotency-key k] [--not-before iso] " +
  "[--correlation-id c] [--progress]";

/** Parses JSON given on the command line or in a file, as a usage error when it is not JSON. */
export function parseJsonArgument(text: string, where: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`Invalid JSON in ${where}: ${(error as Error).message}`, { cause: error });
  }
  const inexact = inexactNumber(text);
  if (inexact !== null) {
    throw new UsageError(
      `Invalid JSON in ${where}: the number ${inexact} cannot be kept exactly (JSON numbers ` +
        "are read as 64-bit floating point); write it as a string",
    );
  }
  return value;
}

/** Reads a file relative to the working directory; a missing file is a usage error. */
export async function readTextArgument(ctx: CliContext, path: string): Promise<string> {
  try {
    return await readFile(resolve(ctx.io.cwd(), path), "utf8");
  } catch (error) {
    throw new UsageError(`Cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
}

function isoOption(name: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) {
    throw new UsageError(`Invalid --${name} "${value}": expected an ISO 8601 timestamp`);
  }
  return date.toISOString();
}

/**
 * Runs `fn` over `items`, at most `limit` at once. After a failure no new item starts; the ones
 * in flight finish; then the failure of the lowest index is thrown, with that index.
 */
async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const failures: { index: number; error: unknown }[] = [];
  async function lane(): Promise<void> {
    while (failures.length === 0 && next < items.length) {
      const index = next++;
      try {
        await fn(items[index]!, index);
      } catch (error) {
        failures.push({ index, error });
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failures.length > 0) {
    const first = failures.reduce((a, b) => (b.index < a.index ? b : a));
    throw new ItemFailure(first.index, first.error);
  }
}

/** The failure of item `index` of an {@linkcode eachLimited} run. */
class ItemFailure {
  constructor(readonly index: number, readonly error: unknown) {}
}

async function submitMany(
  ctx: CliContext,
  store: JobStore,
  type: string,
  payloads: readonly { line: number; payload: unknown }[],
  options: CreateJobOptions,
  showProgress: boolean,
  file: string,
): Promise<void> {
  const db = await ctx.database();
  const bar = showProgress
    ? progressBar(payloads.length, (text) => ctx.io.stderr(text), palette(ctx.io.stderrIsTerminal))
    : null;
  const ids: string[] = new Array(payloads.length);
  let done = 0;
  try {
    await eachLimited(payloads, db.kind === "postgres" ? 8 : 1, async ({ line, payload }, i) => {
      const key = options.idempotencyKey ? `${options.idempotencyKey}:${line}` : undefined;
      const { job } = await store.create(type, payload, { ...options, idempotencyKey: key });
      ids[i] = job.id;
      bar?.update(++done);
    });
  } catch (failure) {
    if (!(failure instanceof ItemFailure)) throw failure;
    bar?.finish(done);
    // what was written stays: say so, and which ids (stdout with --json), before the error
    const written = ids.filter((id) => id !== undefined);
    const line = payloads[failure.index]!.line;
    if (ctx.flags.json) {
      ctx.printJson({ submitted: written.length, ids: written, failedLine: line });
    } else {
      ctx.io.stderr(
        `${written.length} of ${payloads.length} jobs were created before ${file} line ${line} ` +
          `failed, and stay${
            options.idempotencyKey
              ? " (run again with the same key: created lines are replayed)"
              : ""
          }\n`,
      );
    }
    const error = failure.error;
    if (error instanceof Error) error.message = `${file} line ${line}: ${error.message}`;
    throw error;
  }
  bar?.finish(done);
  if (ctx.flags.json) {
    ctx.printJson({ submitted: ids.length, ids });
  } else {
    ctx.print(`Submitted ${ids.length} jobs of type ${type}`);
    if (ids.length > 0) ctx.print(`first ${ids[0]}, last ${ids.at(-1)}`);
  }
}

/** The `submit` command. */
export const submitCommand: Command = {
  name: "submit",
  usage: USAGE,
  summary: "Create a job (or one per line of an .ndjson file)",
  help: [
    "The payload is a JSON argument, or --file: a .json file holds one payload, an .ndjson file",
    "one payload per line (one job each; --idempotency-key k becomes k:<line number>).",
    "A progress bar goes to stderr for .ndjson files on a terminal, or with --progress.",
    "Jobs start pending; the engine's scheduler promotes them (or use `jobengine schedule`).",
  ].join("\n"),
  options: {
    file: { type: "string", short: "f" },
    "depends-on": { type: "string", multiple: true },
    priority: { type: "string" },
    "max-retries": { type: "string" },
    "requires-network": { type: "boolean" },
    "idempotency-key": { type: "string" },
    "not-before": { type: "string" },
    "correlation-id": { type: "string" },
    progress: { type: "boolean" },
  },
  async run(ctx, positionals, values) {
    expectPositionals(positionals, 1, 2, USAGE);
    const [type, payloadText] = positionals as [string, string | undefined];
    const file = stringOption(values.file);
    if (file !== undefined && payloadText !== undefined) {
      throw new UsageError("Give the payload as an argument or with --file, not both");
    }
    const options: CreateJobOptions = {
      tenantId: ctx.flags.tenant,
      priority: intOption("priority", values.priority),
      dependsOn: listOption(values["depends-on"]),
      maxRetries: intOption("max-retries", values["max-retries"], { min: 0, max: 100 }),
      requiresNetwork: values["requires-network"] === true ? true : undefined,
      idempotencyKey: stringOption(values["idempotency-key"]),
      notBefore: isoOption("not-before", stringOption(values["not-before"])),
      correlationId: stringOption(values["correlation-id"]),
      actor: "cli",
    };
    if (options.dependsOn?.length === 0) delete options.dependsOn;

    if (file !== undefined && /\.ndjson$/i.test(file)) {
      const text = await readTextArgument(ctx, file);
      const payloads = text.split(/\r?\n/).flatMap((line, i) =>
        line.trim() === ""
          ? []
          : [{ line: i + 1, payload: parseJsonArgument(line, `${file} line ${i + 1}`) }]
      );
      const progress = values.progress === true ||
        (ctx.io.stderrIsTerminal && !ctx.flags.json && payloads.length > 1);
      await submitMany(ctx, await ctx.store(), type, payloads, options, progress, file);
      return;
    }
    const payload = file !== undefined
      ? parseJsonArgument(await readTextArgument(ctx, file), file)
      : payloadText !== undefined
      ? parseJsonArgument(payloadText, "the payload argument")
      : {};
    const store = await ctx.store();
    const { job, created }: { job: Job; created: boolean } = await store.create(
      type,
      payload,
      options,
    );
    if (ctx.flags.json) {
      ctx.printJson(job);
    } else {
      const p = palette(ctx.color);
      ctx.print(created ? `Submitted ${jobLine(job, p)}` : `Already submitted ${jobLine(job, p)}`);
    }
  },
};
