/**
 * The launcher behind `deno task start`: works out the engine's Deno permissions from its
 * configuration and runs `src/runtime/start.ts` in a child Deno process with exactly those.
 *
 * Sealed (`JOBENGINE_SEALED=1`, or `deno task start:sealed`), the engine gets:
 * - `--allow-net` limited to the listen address `HOST:PORT` and the database `host:port` (none
 *   at all on the embedded PGlite), so the runtime itself refuses every other socket, whatever a
 *   handler does (the network guard is the first line; this is the backstop it cannot bypass);
 * - `--allow-read` limited to the project, the data directory, Deno's cache (PGlite's wasm) and
 *   the directory of a handlers module (`JOBENGINE_HANDLERS`) outside the project;
 *   `--allow-write` limited to the data directory;
 * - `--allow-env`, `--allow-sys=hostname` and nothing else: no `--allow-run`, no `--allow-ffi`;
 * - `--cached-only --no-remote`: Deno's module loader fetches nothing. Without them a handler's
 *   `import("https://esm.sh/...")`, `import("jsr:...")` or `import("npm:...")` made Deno itself
 *   download the module (Deno checks remote imports against `--allow-import`, whose default
 *   list names deno.land, jsr.io and esm.sh, and `npm:` downloads against nothing), around
 *   `--allow-net`. The engine's own packages come from Deno's cache, where the first
 *   (unsealed) run or `deno install` put them; an air-gapped site brings that cache along.
 *
 * Every engine process runs with `DENO_NO_UPDATE_CHECK=1` (Deno's update check looks up
 * dl.deno.land at start); the tasks in `deno.json` set it for the launcher too.
 * `JOBENGINE_ALLOW` entries join the database in the sealed `--allow-net`, as they join it in the
 * network guard's allowlist. A relative `JOBENGINE_HANDLERS` path is resolved against the
 * directory the command was typed in (`INIT_CWD`, set by `deno task`), as the CLI resolves its
 * file arguments.
 *
 * Unsealed, the engine may use the network (`--allow-net`) but the same read, write, run and ffi
 * limits apply. When `JOBENGINE_SEALED` is not set, the engine follows the database's seal: when
 * the database turns out to be sealed at start (`set_sealed(true)`), or is sealed while the
 * engine runs, the engine stops (draining as on SIGTERM) and exits with
 * `RELAUNCH_SEALED_EXIT_CODE`; the launcher then starts it again with the sealed permissions,
 * and the other way round when the database is unsealed.
 * The launcher logs the exact flags, forwards SIGINT and SIGTERM to the engine, and exits with
 * its exit code. The engine's standard input is a pipe from the launcher: when the launcher is
 * gone, however it went, the engine shuts down as on SIGTERM.
 *
 * @module
 */
import { dirname, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type Config,
  ConfigError,
  LAUNCHED_ENV,
  loadConfig,
  RELAUNCH_SEALED_EXIT_CODE,
} from "./config.ts";
import { createLogger, type Logger } from "./logger.ts";
import { databaseEndpoint } from "./_endpoint.ts";
import { handlersModuleUrl } from "../worker/load_handlers.ts";

/** Where things are on disk, for the permission flags. */
export interface LaunchPaths {
  /** The project root (read: source, handler modules). */
  projectDir: string;
  /** The working directory the engine runs in (relative paths resolve against it). */
  cwd: string;
  /** The directory the command was typed in (`INIT_CWD`): a relative handlers path's base. */
  initCwd?: string;
  /** Deno's cache directory (read: npm packages such as PGlite's wasm). */
  denoDir: string;
}

/** The `host:port` Deno's `--allow-net` needs for listening on `host:port`. */
function listenEndpoint(config: Config): string {
  const host = config.host.includes(":") ? `[${config.host}]` : config.host;
  return `${host}:${config.port}`;
}

/**
 * The directory of the handlers module (`JOBENGINE_HANDLERS`) when it is a file outside what
 * the engine may read anyway, so that the module and its relative imports load; null for none,
 * for a remote or package specifier, or for a file under the project.
 */
function handlersDir(config: Config, paths: LaunchPaths): string | null {
  if (!config.handlersModule) return null;
  const url = handlersModuleUrl(config.handlersModule, paths.initCwd ?? paths.cwd);
  if (!url.startsWith("file:")) return null;
  const dir = dirname(fileURLToPath(url));
  const inside = (root: string) =>
    dir === root || dir.startsWith(root.endsWith(sep) ? root : root + sep);
  return inside(paths.projectDir) ? null : dir;
}

/** The Deno permission flags for the engine process under `config`. */
export function permissionFlags(config: Config, paths: LaunchPaths): string[] {
  const dataDir = resolve(paths.cwd, config.dataDir);
  const handlers = handlersDir(config, paths);
  const read = [paths.projectDir, dataDir, paths.denoDir, ...(handlers ? [handlers] : [])];
  const flags = [
    `--allow-read=${read.join(",")}`,
    `--allow-write=${dataDir}`,
    "--allow-env",
    "--allow-sys=hostname",
  ];
  if (config.sealed === true) {
    if (config.port === 0) {
      throw new ConfigError([
        "PORT must be a fixed port in sealed mode: --allow-net names the exact listen address",
      ]);
    }
    const net = [listenEndpoint(config), databaseEndpoint(config.databaseUrl), ...config.allow]
      .filter((entry): entry is string => entry !== null);
    flags.push(
      `--allow-net=${[...new Set(net)].join(",")}`,
      "--cached-only",
      "--no-remote",
      // Deno writes deno.lock without a write permission when a handler imports a cached
      // package the lock does not list: refuse instead
      "--frozen-lockfile",
      // Deno's fetch takes its proxy from these, and --allow-net checks the URL's host, not
      // the proxy's: a handler that set one sent requests to it (the launcher also leaves them,
      // and every OTEL_ and DENO_ variable but the cache's, out of the engine's environment)
      `--deny-env=${PROXY_VARIABLES.join(",")}`,
    );
  } else {
    flags.push("--allow-net");
  }
  return flags;
}

async function denoDir(): Promise<string> {
  const fromEnv = Deno.env.get("DENO_DIR");
  if (fromEnv) return resolve(fromEnv);
  const { stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
  }).output();
  const info = JSON.parse(new TextDecoder().decode(stdout)) as { denoDir?: string };
  if (!info.denoDir) {
    throw new Error("Cannot find Deno's cache directory: `deno info --json` named none");
  }
  return info.denoDir;
}

/** Runs the engine in a child process with the permissions of {@linkcode permissionFlags}. */
export async function launch(env: Record<string, string>): Promise<number> {
  const base = { service: "jobengine-launcher" };
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) {
      createLogger({ base }).error("Invalid configuration", { problems: error.problems });
      return 2;
    }
    throw error;
  }
  const logger = createLogger({ base, level: config.logLevel });
  const here = dirname(fileURLToPath(import.meta.url));
  const paths: LaunchPaths = {
    projectDir: resolve(here, "../.."),
    cwd: Deno.cwd(),
    initCwd: env.INIT_CWD || Deno.cwd(),
    denoDir: await denoDir(),
  };
  const start = resolve(here, "start.ts");
  // With JOBENGINE_SEALED unset, the engine follows the database's seal: it hands back with
  // RELAUNCH_SEALED_EXIT_CODE whenever its permissions and the seal disagree (at start, or when
  // set_sealed changes it while it runs), and is started again with the other permissions.
  let sealedPermissions = config.sealed === true;
  let relaunches: number[] = [];
  for (;;) {
    const code = await runEngine(
      start,
      { ...config, sealed: sealedPermissions || config.sealed },
      paths,
      logger,
    );
    if (code !== RELAUNCH_SEALED_EXIT_CODE || config.sealed !== undefined) return code;
    const now = Date.now();
    relaunches = [...relaunches.filter((at) => now - at < 60_000), now];
    if (relaunches.length > MAX_RELAUNCHES_PER_MINUTE) {
      logger.error("The engine asked to be restarted too often; stopping", {
        relaunchesInLastMinute: relaunches.length,
      });
      return 1;
    }
    sealedPermissions = !sealedPermissions;
    logger.info(
      sealedPermissions
        ? "The database is sealed: starting the engine again with sealed permissions"
        : "The database is unsealed: starting the engine again with network permissions",
    );
  }
}

/** The proxy variables Deno's HTTP client reads, both spellings. */
const PROXY_VARIABLES = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"].flatMap((name) => [
  name,
  name.toLowerCase(),
]);

/**
 * The environment a sealed engine starts with: the launcher's, without what would make Deno
 * itself talk to the network around `--allow-net`: proxies (its fetch sends every request to
 * one), OpenTelemetry (`OTEL_DENO` exports logs and traces to `OTEL_EXPORTER_OTLP_ENDPOINT`),
 * and `DENO_` settings other than the cache's and the update check's.
 */
export function sealedEnvironment(env: Record<string, string>): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (PROXY_VARIABLES.includes(name) || /^OTEL_/i.test(name)) continue;
    if (/^DENO_/.test(name) && name !== "DENO_DIR" && name !== "DENO_NO_UPDATE_CHECK") continue;
    kept[name] = value;
  }
  return kept;
}

/** More restarts than this within a minute (the seal flapping) stop the launcher. */
const MAX_RELAUNCHES_PER_MINUTE = 10;

/** Runs `start` (`start.ts`) once in a child Deno process with the permissions of `config`. */
async function runEngine(
  start: string,
  config: Config,
  paths: LaunchPaths,
  logger: Logger,
): Promise<number> {
  let flags: string[];
  try {
    flags = permissionFlags(config, paths);
  } catch (error) {
    if (error instanceof ConfigError) {
      logger.error("Invalid configuration", { problems: error.problems });
      return 2;
    }
    throw error;
  }
  logger.info("Starting the engine", { sealed: config.sealed === true, permissions: flags });
  const sealed = config.sealed === true;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...flags, start],
    // sealed: a filtered copy of the launcher's environment, nothing inherited besides
    clearEnv: sealed,
    env: {
      ...(sealed ? sealedEnvironment(Deno.env.toObject()) : {}),
      [LAUNCHED_ENV]: "1",
      DENO_NO_UPDATE_CHECK: "1",
      // the engine reads the module by URL, resolved where the command was typed
      ...(config.handlersModule
        ? { JOBENGINE_HANDLERS: handlersModuleUrl(config.handlersModule, paths.initCwd) }
        : {}),
    },
    // never written: the engine reads it to its end, which comes when the launcher is gone
    // (even by SIGKILL), and then shuts down instead of running on unsupervised
    stdin: "piped",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const forward = (signal: Deno.Signal) => () => {
    try {
      child.kill(signal);
    } catch {
      // the engine already exited
    }
  };
  const listeners: Array<[Deno.Signal, () => void]> = [];
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const listener = forward(signal);
    Deno.addSignalListener(signal, listener);
    listeners.push([signal, listener]);
  }
  const status = await child.status;
  for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
  if (status.signal !== null) {
    // killed: it could not say so itself
    logger.error("The engine was killed", { signal: status.signal, code: status.code });
  } else if (status.code !== 0 && status.code !== RELAUNCH_SEALED_EXIT_CODE) {
    logger.error("The engine exited with an error", { code: status.code });
  }
  return status.code;
}

if (import.meta.main) Deno.exit(await launch(Deno.env.toObject()));
