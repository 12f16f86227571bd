/**
 * A tiny structured logger: one JSON object per line, `{ level, msg, time, ...fields }`, on
 * stdout (`debug`, `info`) or stderr (`warn`, `error`). Errors among the fields are written as
 * `{ name, message, code?, stack? }`.
 *
 * @module
 */

/** A log level, lowest first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** What every component that logs receives (the scheduler, the worker, the API). */
export interface Logger {
  /** Logs a debugging detail. */
  debug(msg: string, fields?: Record<string, unknown>): void;
  /** Logs a normal event. */
  info(msg: string, fields?: Record<string, unknown>): void;
  /** Logs something unexpected that the program recovered from. */
  warn(msg: string, fields?: Record<string, unknown>): void;
  /** Logs a failure. */
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** Options of {@linkcode createLogger}. */
export interface LoggerOptions {
  /** The lowest level written (default `info`). */
  level?: LogLevel;
  /** Fields added to every line (for example `{ service: "jobengine" }`). */
  base?: Record<string, unknown>;
  /** Where a line goes (default: `console.log` / `console.error` by level). */
  write?: (line: string, level: LogLevel) => void;
}

const RANK: Readonly<Record<LogLevel, number>> = { debug: 10, info: 20, warn: 30, error: 40 };

/** A logger that drops everything (the default of library components). */
export const SILENT_LOGGER: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** Returns true when `value` is a log level. */
export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === "string" && value in RANK;
}

function serializeError(error: Error): Record<string, unknown> {
  const out: Record<string, unknown> = { name: error.name, message: error.message };
  const code = (error as { code?: unknown }).code;
  if (code !== undefined) out.code = code;
  if (error.stack) out.stack = error.stack;
  if (error.cause !== undefined) {
    out.cause = error.cause instanceof Error ? serializeError(error.cause) : String(error.cause);
  }
  return out;
}

function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return serializeError(value);
  if (typeof value === "bigint") return value.toString();
  return value;
}

function defaultWrite(line: string, level: LogLevel): void {
  if (level === "warn" || level === "error") console.error(line);
  else console.log(line);
}

/** Creates a structured JSON-lines logger. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const min = RANK[options.level ?? "info"];
  const base = options.base ?? {};
  const write = options.write ?? defaultWrite;
  function log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    if (RANK[level] < min) return;
    let line: string;
    try {
      line = JSON.stringify(
        { level, msg, time: new Date().toISOString(), ...base, ...fields },
        replacer,
      );
    } catch {
      line = JSON.stringify({ level, msg, time: new Date().toISOString(), ...base });
    }
    write(line, level);
  }
  return {
    debug: (msg, fields) => log("debug", msg, fields),
    info: (msg, fields) => log("info", msg, fields),
    warn: (msg, fields) => log("warn", msg, fields),
    error: (msg, fields) => log("error", msg, fields),
  };
}
