/**
 * What every CLI command shares: the host I/O it writes through, the context (flags, database),
 * the command shape, usage errors, and the mapping from errors to exit codes.
 *
 * Imported only from `src/cli/`.
 *
 * @module
 */
import type { ParseArgsConfig } from "node:util";
import type { Database } from "../db/port.ts";
import {
  DatabaseUnavailableError,
  DependenciesPendingError,
  IdempotencyConflictError,
  InvalidArgumentError,
  InvalidDependencyError,
  InvalidTransitionError,
  isClientDataError,
  JobEngineError,
  JobNotFoundError,
  LeaseMismatchError,
  SealedModeError,
} from "../errors.ts";
import type { JobStore } from "../job/job_store.ts";

/** The exit codes of the CLI (documented in `--help` and `docs/cli.md`). */
export const EXIT = {
  ok: 0,
  usage: 1,
  notFound: 2,
  conflict: 3,
  unavailable: 4,
  other: 5,
} as const;

/** What the CLI needs from its host (the Deno entry point provides it; tests may fake it). */
export interface CliIo {
  /** Writes to standard output as is. */
  stdout(text: string): void;
  /** Writes to standard error as is. */
  stderr(text: string): void;
  /** Whether standard output is a terminal. */
  readonly stdoutIsTerminal: boolean;
  /** Whether standard error is a terminal. */
  readonly stderrIsTerminal: boolean;
  /** Reads an environment variable. */
  env(name: string): string | undefined;
  /** The current working directory. */
  cwd(): string;
  /** Calls `handler` on SIGINT or SIGTERM; returns the function that stops listening. */
  onShutdownSignal(handler: (signal: string) => void): () => void;
  /**
   * Takes the embedded database's directory for this process (one process at a time: an
   * engine or a CLI command holding it makes this throw `DataDirectoryInUseError`); resolves to
   * the function that lets it go. Hosts without such a lock leave it out.
   */
  lockDataDir?(dataDir: string): Promise<() => Promise<void>>;
}

/** Global flags, parsed once. */
export interface GlobalFlags {
  json: boolean;
  databaseUrl?: string;
  tenant?: string;
}

/** What a command runs with. */
export interface CliContext {
  readonly io: CliIo;
  readonly flags: GlobalFlags;
  /** Whether human output may use ANSI colours (a terminal and no `NO_COLOR`). */
  readonly color: boolean;
  /** Opens the database on first use (migrating the embedded PGlite); closed after the command. */
  database(options?: { migrate?: boolean }): Promise<Database>;
  /** A JobStore over {@linkcode CliContext.database}. */
  store(): Promise<JobStore>;
  /** Writes one line (or a JSON document in `--json` mode) to standard output. */
  print(text: string): void;
  /** Writes `value` as JSON to standard output. */
  printJson(value: unknown): void;
}

/** One subcommand. */
export interface Command {
  /** The name typed on the command line. */
  readonly name: string;
  /** Usage, e.g. `cancel <id> [--reason r]`. */
  readonly usage: string;
  /** One line for the command list. */
  readonly summary: string;
  /** Further help lines for `<command> --help`. */
  readonly help?: string;
  /** The command's own options (global flags are added by the entry point). */
  readonly options: NonNullable<ParseArgsConfig["options"]>;
  /** Runs the command; resolves to the exit code (default 0). */
  run(
    ctx: CliContext,
    positionals: string[],
    values: Record<string, string | boolean | string[] | boolean[] | undefined>,
  ): Promise<number | void>;
}

/** A mistake on the command line (exit code 1). */
export class UsageError extends Error {
  /** Creates the error. */
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = "UsageError";
  }
}

/** Maps an error to the CLI's exit code. */
export function exitCodeFor(error: unknown): number {
  if (
    error instanceof UsageError || error instanceof InvalidArgumentError ||
    error instanceof InvalidDependencyError
  ) {
    return EXIT.usage;
  }
  if ((error as { code?: unknown })?.code?.toString().startsWith("ERR_PARSE_ARGS")) {
    return EXIT.usage;
  }
  if (errorCode(error) === "invalid_data") return EXIT.usage;
  if (error instanceof JobNotFoundError) return EXIT.notFound;
  if (
    error instanceof InvalidTransitionError || error instanceof LeaseMismatchError ||
    error instanceof SealedModeError || error instanceof IdempotencyConflictError ||
    error instanceof DependenciesPendingError
  ) {
    return EXIT.conflict;
  }
  if (error instanceof DatabaseUnavailableError) return EXIT.unavailable;
  return EXIT.other;
}

/** The stable code of an error for `--json` output. */
export function errorCode(error: unknown): string {
  if (error instanceof JobEngineError) return error.code;
  if (error instanceof UsageError) return "usage";
  if ((error as { code?: unknown })?.code?.toString().startsWith("ERR_PARSE_ARGS")) return "usage";
  const sqlState = (error as { code?: unknown })?.code;
  if (sqlState === "3F000" || sqlState === "42P01" || sqlState === "42883") return "not_migrated";
  if (isClientDataError(error)) return "invalid_data";
  return "error";
}

/** A message for a person, with a hint where one helps. */
export function errorMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  if (errorCode(error) === "not_migrated") {
    return `${message} (is the database migrated? run: jobengine migrate)`;
  }
  return message;
}

/** Reads a string option. */
export function stringOption(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/** Reads a repeatable, comma-separated option into a list (`--x a,b --x c` -> `[a, b, c]`). */
export function listOption(value: unknown): string[] {
  const items = Array.isArray(value) ? value : typeof value === "string" ? [value] : [];
  return items.flatMap((item) => String(item).split(",")).map((s) => s.trim()).filter(Boolean);
}

/** Reads a whole-number option within bounds; throws {@linkcode UsageError} otherwise. */
export function intOption(
  name: string,
  value: unknown,
  bounds: { min?: number; max?: number } = {},
): number | undefined {
  if (value === undefined) return undefined;
  const text = String(value).trim();
  const n = Number(text);
  const min = bounds.min ?? Number.MIN_SAFE_INTEGER;
  const max = bounds.max ?? Number.MAX_SAFE_INTEGER;
  if (text === "" || !Number.isInteger(n) || n < min || n > max) {
    const range = bounds.min !== undefined && bounds.max !== undefined
      ? ` from ${min} to ${max}`
      : bounds.min !== undefined
      ? ` of at least ${min}`
      : "";
    throw new UsageError(`Invalid --${name} "${text}": expected a whole number${range}`);
  }
  return n;
}

/** Requires exactly `count` positionals; throws {@linkcode UsageError} naming `usage`. */
export function expectPositionals(
  positionals: string[],
  min: number,
  max: number,
  usage: string,
): void {
  if (positionals.length < min || positionals.length > max) {
    const what = positionals.length < min ? "missing argument" : "too many arguments";
    throw new UsageError(`Usage: jobengine ${usage} (${what})`);
  }
}

/** Whether `id` looks like a UUID (anything else is refused before a round trip). */
export function assertJobId(id: string): void {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) {
    throw new JobNotFoundError(`Job ${id} not found: not a job id (a UUID)`, {
      details: { jobId: id },
    });
  }
}
