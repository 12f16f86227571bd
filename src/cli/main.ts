/**
 * The jobengine command-line interface: `deno task cli <command> ...` (or
 * `deno run -A src/runtime/cli.ts ...`). Talks to the database directly, through the same
 * `jobengine.*` functions as everything else.
 *
 * {@linkcode runCli} and the commands use only a {@linkcode CliIo}; the Deno entry point that
 * turns `Deno.args`, the environment, the terminal and signals into one is
 * `src/runtime/cli.ts` (no runtime-specific API outside `src/runtime/`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { connectDatabase, DEFAULT_DATA_DIR } from "../db/connect.ts";
import { migrate } from "../db/migrate.ts";
import type { Database } from "../db/port.ts";
import { JobEngineError } from "../errors.ts";
import { JobStore } from "../job/job_store.ts";
import { palette } from "./_format.ts";
import {
  type CliContext,
  type CliIo,
  type Command,
  errorCode,
  errorMessage,
  EXIT,
  exitCodeFor,
  type GlobalFlags,
  UsageError,
} from "./_shared.ts";
import { listCommand } from "./list.ts";
import { migrateCommand } from "./migrate.ts";
import { sealCommand, unsealCommand } from "./seal.ts";
import { showCommand } from "./show.ts";
import { submitCommand } from "./submit.ts";
import { cancelCommand, retryCommand, scheduleCommand } from "./transitions.ts";
import { watchCommand } from "./watch.ts";
import { workerCommand } from "./worker.ts";
import { workflowCommand } from "./workflow.ts";

export type { CliIo } from "./_shared.ts";
export { EXIT } from "./_shared.ts";

/** Every subcommand, in the order `--help` lists them. */
export const COMMANDS: readonly Command[] = [
  submitCommand,
  workflowCommand,
  listCommand,
  showCommand,
  watchCommand,
  cancelCommand,
  retryCommand,
  scheduleCommand,
  migrateCommand,
  sealCommand,
  unsealCommand,
  workerCommand,
];

const GLOBAL_OPTIONS = {
  json: { type: "boolean" },
  "database-url": { type: "string" },
  tenant: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** Global flags that take a value (so the value is not mistaken for the command). */
const GLOBAL_WITH_VALUE = new Set(["--database-url", "--tenant"]);

/** The text of `jobengine --help`. */
export function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    "Usage: jobengine [--json] [--database-url url] [--tenant t] <command> [arguments]",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Global flags:",
    "  --json              machine-readable output (JSON on stdout; errors as JSON on stderr)",
    "  --database-url url  PostgreSQL URL; default $DATABASE_URL, else the embedded PGlite",
    "                      under $JOBENGINE_DATA_DIR (default .jobengine/pglite/)",
    "  --tenant t          the tenant (default: `default` for submit, workflow and ls; any",
    "                      tenant for show, cancel, retry, schedule and watch)",
    "  -h, --help          this help, or a command's: jobengine <command> --help",
    "",
    "Exit codes:",
    "  0  ok",
    "  1  usage error (bad flags or arguments, invalid JSON, invalid input refused by the engine)",
    "  2  not found",
    "  3  invalid transition or conflict (state, lease, sealed mode, idempotency, dependencies)",
    "  4  database unavailable",
    "  5  any other error",
    "",
    "Environment: DATABASE_URL, JOBENGINE_DATA_DIR, NO_COLOR (disables colours).",
  ].join("\n");
}

function commandHelp(command: Command): string {
  return [`Usage: jobengine ${command.usage}`, "", command.summary, command.help ?? ""]
    .join("\n").trimEnd();
}

/** Finds the command name: the first argument that is neither a flag nor a global flag's value. */
function splitCommand(args: readonly string[]): { name?: string; rest: string[] } {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") break;
    if (GLOBAL_WITH_VALUE.has(arg)) {
      i++;
      continue;
    }
    if (arg.startsWith("-")) continue;
    return { name: arg, rest: [...args.slice(0, i), ...args.slice(i + 1)] };
  }
  return { rest: [...args] };
}

function createContext(io: CliIo, flags: GlobalFlags): CliContext & { close(): Promise<void> } {
  let opened: Promise<Database> | null = null;
  let migrated: Promise<unknown> | null = null;
  let unlock: (() => Promise<void>) | null = null;
  const open = async (): Promise<Database> => {
    const url = flags.databaseUrl ?? io.env("DATABASE_URL");
    // the engine's rule (config.ts): anything else is a mistake, not an unreachable server
    if (url?.trim() && !/^postgres(?:ql)?:\/\//.test(url.trim())) {
      throw new UsageError("The database URL must be a postgres:// or postgresql:// URL");
    }
    // the embedded database: one process at a time, or a write made here is lost
    if (!url?.trim() && io.lockDataDir) {
      unlock = await io.lockDataDir(io.env("JOBENGINE_DATA_DIR") || DEFAULT_DATA_DIR);
    }
    return await connectDatabase({
      DATABASE_URL: url,
      JOBENGINE_DATA_DIR: io.env("JOBENGINE_DATA_DIR"),
    }, { applicationName: "jobengine-cli", max: 8 });
  };
  const color = io.stdoutIsTerminal && !io.env("NO_COLOR");
  const ctx = {
    io,
    flags,
    color,
    async database(options: { migrate?: boolean } = {}): Promise<Database> {
      opened ??= open();
      const db = await opened;
      // The embedded database is the engine's own: bring it up to date, as the engine does.
      if (db.kind === "pglite" && options.migrate !== false) {
        migrated ??= migrate(db);
        await migrated;
      }
      return db;
    },
    async store(): Promise<JobStore> {
      return new JobStore(await ctx.database());
    },
    print(text: string): void {
      io.stdout(`${text}\n`);
    },
    printJson(value: unknown): void {
      io.stdout(`${JSON.stringify(value)}\n`);
    },
    async close(): Promise<void> {
      if (!opened) return;
      const db = await opened.catch(() => null);
      await db?.close().catch(() => {});
      await unlock?.().catch(() => {});
    },
  };
  return ctx;
}

function reportError(io: CliIo, json: boolean, error: unknown): void {
  if (json) {
    const details = error instanceof JobEngineError ? error.details : {};
    io.stderr(
      `${
        JSON.stringify({
          error: { ...details, code: errorCode(error), message: errorMessage(error) },
        })
      }\n`,
    );
  } else {
    io.stderr(
      `${palette(io.stderrIsTerminal && !io.env("NO_COLOR")).red("error:")} ${
        errorMessage(error)
      }\n`,
    );
  }
}

/** Runs the CLI with `args` (without the program name) over `io`; resolves to the exit code. */
export async function runCli(args: readonly string[], io: CliIo): Promise<number> {
  const { name, rest } = splitCommand(args);
  const wantsJson = rest.includes("--json");
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    if (name === undefined || name === "help") {
      io.stdout(`${mainHelp()}\n`);
      return rest.includes("--help") || rest.includes("-h") || name === "help"
        ? EXIT.ok
        : EXIT.usage;
    }
    reportError(io, wantsJson, new UsageError(`Unknown command "${name}": see jobengine --help`));
    return EXIT.usage;
  }
  let values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: rest,
      options: { ...GLOBAL_OPTIONS, ...command.options },
      allowPositionals: true,
      strict: true,
    }));
  } catch (error) {
    reportError(
      io,
      wantsJson,
      new UsageError(`${(error as Error).message}\nUsage: jobengine ${command.usage}`),
    );
    return EXIT.usage;
  }
  if (values.help === true) {
    io.stdout(`${commandHelp(command)}\n`);
    return EXIT.ok;
  }
  const flags: GlobalFlags = {
    json: values.json === true,
    databaseUrl: typeof values["database-url"] === "string" ? values["database-url"] : undefined,
    tenant: typeof values.tenant === "string" ? values.tenant : undefined,
  };
  const ctx = createContext(io, flags);
  try {
    return (await command.run(ctx, positionals, values)) ?? EXIT.ok;
  } catch (error) {
    reportError(io, flags.json, error);
    return exitCodeFor(error);
  } finally {
    await ctx.close();
  }
}
