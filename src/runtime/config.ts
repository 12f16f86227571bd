/**
 * The configuration of `deno task start`, read from environment variables and validated with
 * valibot (an invalid value stops the process with a message naming the variable).
 *
 * | variable | default | meaning |
 * |---|---|---|
 * | `PORT` | `8080` | listen port (`0`: any free port) |
 * | `HOST` | `127.0.0.1` | listen address |
 * | `DATABASE_URL` | unset | `postgres://...`: PostgreSQL; unset: the embedded PGlite |
 * | `JOBENGINE_DATA_DIR` | `.jobengine/pglite/` | PGlite's directory |
 * | `JOBENGINE_SEALED` | unset | `1`/`true`/`0`/`false`: seal or unseal the engine at start |
 * | `JOBENGINE_BODY_LIMIT` | `1048576` | largest request body, in bytes (`k`/`m` suffixes allowed) |
 * | `JOBENGINE_WORKER_CONCURRENCY` | `4` | handlers of the built-in worker at once; `0`: no worker |
 * | `JOBENGINE_WORKER_PREFETCH` | `0` | jobs the built-in worker claims ahead of free slots (a local queue, for throughput) |
 * | `JOBENGINE_HANDLERS` | unset | module whose `default` (or `handlers`) export maps job types to handlers; unset: the built-in `noop`, `echo`, `sleep` |
 * | `JOBENGINE_ALLOW` | unset | extra `host:port` entries for the sealed-mode network guard, comma-separated |
 * | `JOBENGINE_DRAIN_MS` | `30000` | at shutdown, how long running handlers may take to finish |
 * | `JOBENGINE_LOG_LEVEL` | `info` | `debug`, `info`, `warn` or `error` |
 *
 * @module
 */
import * as v from "valibot";
import { DEFAULT_DATA_DIR } from "../db/connect.ts";
import type { LogLevel } from "./logger.ts";

function blankToUndefined(value: unknown): unknown {
  return typeof value === "string" && value.trim() === "" ? undefined : value;
}

function integer(name: string, min: number, max: number) {
  return v.pipe(
    v.string(),
    v.trim(),
    v.regex(/^\d+$/, `${name} must be a whole number`),
    v.transform(Number),
    v.minValue(min, `${name} must be at least ${min}`),
    v.maxValue(max, `${name} must be at most ${max}`),
  );
}

const SIZE = /^(\d+)\s*(k|kb|kib|m|mb|mib)?$/i;

const TRUE = new Set(["1", "true", "yes", "on"]);
const FALSE = new Set(["0", "false", "no", "off"]);

/** The environment variables, validated and with defaults applied. */
export const EnvSchema = v.object({
  PORT: v.optional(integer("PORT", 0, 65_535), "8080"),
  HOST: v.optional(v.pipe(v.string(), v.trim(), v.minLength(1)), "127.0.0.1"),
  DATABASE_URL: v.optional(
    v.pipe(
      v.string(),
      v.trim(),
      v.regex(
        /^postgres(?:ql)?:\/\//,
        "DATABASE_URL must be a postgres:// or postgresql:// URL",
      ),
      // parsed here, so that a malformed one is a configuration error (exit 2) that does not
      // repeat the URL (it may hold a password), not a crash later with the URL in its message
      v.check(
        (url) => URL.canParse(url),
        "DATABASE_URL is not a valid URL (check for spaces or unescaped characters; a password " +
          "with @, :, / or # must be percent-encoded)",
      ),
    ),
  ),
  JOBENGINE_DATA_DIR: v.optional(v.pipe(v.string(), v.minLength(1)), DEFAULT_DATA_DIR),
  JOBENGINE_SEALED: v.optional(
    v.pipe(
      v.string(),
      v.trim(),
      v.transform((s) => s.toLowerCase()),
      v.check(
        (s) => TRUE.has(s) || FALSE.has(s),
        "JOBENGINE_SEALED must be 1, true, yes, on, 0, false, no or off",
      ),
      v.transform((s) => TRUE.has(s)),
    ),
  ),
  JOBENGINE_BODY_LIMIT: v.optional(
    v.pipe(
      v.string(),
      v.trim(),
      v.regex(SIZE, "JOBENGINE_BODY_LIMIT must be a size in bytes, e.g. 1048576, 512k or 2m"),
      v.transform((s) => {
        const [, digits, unit] = SIZE.exec(s)!;
        const factor = !unit ? 1 : unit.toLowerCase().startsWith("k") ? 1024 : 1024 * 1024;
        return Number(digits) * factor;
      }),
      v.minValue(1, "JOBENGINE_BODY_LIMIT must be at least 1 byte"),
      v.maxValue(1024 * 1024 * 1024, "JOBENGINE_BODY_LIMIT must be at most 1 GiB"),
    ),
    "1048576",
  ),
  JOBENGINE_WORKER_CONCURRENCY: v.optional(integer("JOBENGINE_WORKER_CONCURRENCY", 0, 1000), "4"),
  JOBENGINE_WORKER_PREFETCH: v.optional(integer("JOBENGINE_WORKER_PREFETCH", 0, 10000), "0"),
  JOBENGINE_HANDLERS: v.optional(v.pipe(v.string(), v.trim(), v.minLength(1))),
  JOBENGINE_ALLOW: v.optional(
    v.pipe(
      v.string(),
      v.transform((s) => s.split(",").map((e) => e.trim()).filter(Boolean)),
      v.check(
        (entries) =>
          entries.every((entry) => /^(\[[0-9a-fA-F:.]+\]|[^\s:/\[\]]+):\d{1,5}$/.test(entry)),
        "JOBENGINE_ALLOW must be comma-separated host:port entries (IPv6 in brackets)",
      ),
    ),
    "",
  ),
  JOBENGINE_DRAIN_MS: v.optional(integer("JOBENGINE_DRAIN_MS", 0, 86_400_000), "30000"),
  JOBENGINE_LOG_LEVEL: v.optional(
    v.picklist(
      ["debug", "info", "warn", "error"],
      "JOBENGINE_LOG_LEVEL must be debug, info, warn or error",
    ),
    "info",
  ),
});

/** The configuration of the process. */
export interface Config {
  port: number;
  host: string;
  databaseUrl: string | undefined;
  dataDir: string;
  /** Seal (true) or unseal (false) at start; undefined: leave the database's setting. */
  sealed: boolean | undefined;
  bodyLimitBytes: number;
  workerConcurrency: number;
  workerPrefetch: number;
  handlersModule: string | undefined;
  allow: string[];
  drainMs: number;
  logLevel: LogLevel;
}

/**
 * The exit code with which the engine asks the launcher to start it again with sealed
 * permissions: the database was sealed (`set_sealed(true)`), `JOBENGINE_SEALED` was not set, and
 * the process was given the network unrestricted (`src/runtime/launch.ts`, `start.ts`).
 */
export const RELAUNCH_SEALED_EXIT_CODE = 75;

/** Set by the launcher in the engine's environment: the launcher will start it again sealed. */
export const LAUNCHED_ENV = "JOBENGINE_LAUNCHED";

/** A configuration error: names every invalid variable. */
export class ConfigError extends Error {
  /** One message per invalid variable. */
  readonly problems: string[];
  /** Creates the error. */
  constructor(problems: string[]) {
    super(`Invalid configuration: ${problems.join("; ")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/** The variable names {@linkcode loadConfig} reads. */
export const ENV_NAMES = Object.keys(EnvSchema.entries) as Array<keyof typeof EnvSchema.entries>;

/** Validates `env` (for example `Deno.env.toObject()`); throws {@linkcode ConfigError}. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const input = Object.fromEntries(ENV_NAMES.map((name) => [name, blankToUndefined(env[name])]));
  const result = v.safeParse(EnvSchema, input);
  if (!result.success) {
    throw new ConfigError(
      result.issues.map((issue) => {
        const name = v.getDotPath(issue);
        return issue.message.startsWith(name ?? "\u0000")
          ? issue.message
          : `${name ?? "environment"}: ${issue.message}`;
      }),
    );
  }
  const out = result.output;
  return {
    port: out.PORT,
    host: out.HOST,
    databaseUrl: out.DATABASE_URL,
    dataDir: out.JOBENGINE_DATA_DIR,
    sealed: out.JOBENGINE_SEALED,
    bodyLimitBytes: out.JOBENGINE_BODY_LIMIT,
    workerConcurrency: out.JOBENGINE_WORKER_CONCURRENCY,
    workerPrefetch: out.JOBENGINE_WORKER_PREFETCH,
    handlersModule: out.JOBENGINE_HANDLERS,
    allow: out.JOBENGINE_ALLOW,
    drainMs: out.JOBENGINE_DRAIN_MS,
    logLevel: out.JOBENGINE_LOG_LEVEL,
  };
}
