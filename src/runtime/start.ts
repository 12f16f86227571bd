/**
 * `deno task start`: the whole engine in one process.
 *
 * 1. Reads the configuration from the environment (`config.ts`).
 * 2. Connects: PostgreSQL when `DATABASE_URL` is set, otherwise the embedded PGlite under
 *    `JOBENGINE_DATA_DIR` (default `.jobengine/pglite/`), holding the directory's lock
 *    (`data_dir_lock.ts`: one process at a time). Waits up to 30 s for a database that is not
 *    up yet or a directory another process holds.
 * 3. Applies the embedded migrations.
 * 4. Seals or unseals the engine when `JOBENGINE_SEALED` is set (`set_sealed`). When it is not
 *    set and the database's seal and this process's network permission disagree (sealed while
 *    this process may open any socket, or unsealed after a sealed relaunch), the engine stops
 *    before it starts anything and exits with {@linkcode RELAUNCH_SEALED_EXIT_CODE}, so that the
 *    launcher starts it again with the other permissions; the same happens, after a drain as on
 *    SIGTERM, when the seal changes while it runs (run by the launcher only: `JOBENGINE_LAUNCHED`;
 *    otherwise it warns and goes on with the network guard alone).
 * 5. Starts the TimelineEventEmitter, the JobScheduler, the built-in worker (handlers from
 *    `JOBENGINE_HANDLERS`, or the built-in `noop` / `echo` / `sleep`; none when
 *    `JOBENGINE_WORKER_CONCURRENCY=0`) and the HTTP API (`Deno.serve` on `HOST:PORT`).
 * 6. On SIGINT or SIGTERM (or, started by the launcher, when the launcher is gone: standard
 *    input ends): ends open event streams, stops accepting requests, stops claiming
 *    and lets running handlers finish within `JOBENGINE_DRAIN_MS` (then releases their leases),
 *    stops the scheduler and the emitter, closes the database, and exits 0. A second signal
 *    exits at once with 130; the same signal again within a second is taken for a copy of the
 *    first (Ctrl-C reaches both the launcher, which forwards it, and the engine).
 *
 * Logs are JSON lines (`{ level, msg, time, ... }`). Sealed mode's runtime permission sandbox
 * (`--allow-net` limited to the listen address and the database) is applied by the task that
 * starts this file (`launch.ts`), not here.
 *
 * @module
 */
import { createApp, VERSION } from "../api/app.ts";
import { connectDatabase } from "../db/connect.ts";
import { migrate } from "../db/migrate.ts";
import type { Database } from "../db/port.ts";
import { DatabaseUnavailableError } from "../errors.ts";
import { TimelineEventEmitter } from "../events/timeline_event_emitter.ts";
import { JobStore } from "../job/job_store.ts";
import { JobScheduler } from "../scheduler/job_scheduler.ts";
import { createWorker, type Worker } from "../worker/worker.ts";
import { BUILTIN_HANDLERS } from "./builtin_handlers.ts";
import { loadHandlers } from "../worker/load_handlers.ts";
import { databaseEndpoint } from "./_endpoint.ts";
import { type DataDirLock, lockDataDir } from "./data_dir_lock.ts";
import {
  type Config,
  ConfigError,
  LAUNCHED_ENV,
  loadConfig,
  RELAUNCH_SEALED_EXIT_CODE,
} from "./config.ts";
import { createLogger, type Logger } from "./logger.ts";
import { withDeadline } from "../deadline.ts";

/** How long start-up waits for a database that is not reachable yet. */
const STARTUP_WAIT_MS = 30_000;

/** How often a launched engine re-reads the seal besides its NOTIFY (see `startEngine`). */
const SEAL_CHECK_MS = 2_000;

/** The same signal again within this many milliseconds is a copy of the first (see `main`). */
const DUPLICATE_SIGNAL_MS = 1_000;

/**
 * Thrown by {@linkcode startEngine} with `relaunchWhenSealed`: the database is sealed and this
 * process may open any socket; the launcher starts the engine again with sealed permissions.
 */
export class SealedRelaunchRequired extends Error {
  /** Creates the error: the database is sealed (or unsealed) and this process's permission is not. */
  constructor(readonly sealed = true) {
    super(
      sealed
        ? "The database is sealed: the engine must run with sealed permissions"
        : "The database is unsealed: the engine must run with network permissions",
    );
    this.name = "SealedRelaunchRequired";
  }
}

/** Options of {@linkcode startEngine}. */
export interface StartOptions {
  /**
   * Set when the launcher runs this process and can start it again with other permissions:
   * with `JOBENGINE_SEALED` unset, stop with {@linkcode SealedRelaunchRequired} when the
   * database's seal and this process's network permission disagree (sealed with the network
   * unrestricted, or unsealed with it limited), at start; and, while running, call
   * `onRelaunch` when they come to disagree (`set_sealed`, or an UPDATE of the settings row).
   */
  relaunchWhenSealed?: boolean;
  /** Called once when the engine must be started again with other permissions (see above). */
  onRelaunch?: (sealed: boolean) => void;
}

/** Whether this process may open a socket to any host (Deno's `--allow-net` without a list). */
function networkUnrestricted(): boolean {
  return Deno.permissions.querySync({ name: "net" }).state === "granted";
}

/** A running engine. */
export interface Engine {
  /** The API's base URL (`http://host:port`). */
  readonly url: string;
  /** The database. */
  readonly db: Database;
  /**
   * Shuts everything down gracefully (see the module doc); safe to call twice. `drainMs`
   * replaces `JOBENGINE_DRAIN_MS` (0: running handlers are aborted and their jobs handed back
   * at once).
   */
  stop(options?: { drainMs?: number }): Promise<void>;
}

async function connectAndMigrate(
  config: Config,
  logger: Logger,
): Promise<{ db: Database; lock: DataDirLock | null }> {
  const deadline = Date.now() + STARTUP_WAIT_MS;
  for (let attempt = 1;; attempt++) {
    let db: Database | undefined;
    let lock: DataDirLock | null = null;
    try {
      // the embedded database: one process at a time (another engine or a CLI command waits)
      if (!config.databaseUrl) lock = await lockDataDir(config.dataDir);
      db = await connectDatabase(
        { DATABASE_URL: config.databaseUrl, JOBENGINE_DATA_DIR: config.dataDir },
        { applicationName: "jobengine" },
      );
      const { applied, skipped } = await migrate(db);
      logger.info("Database ready", {
        database: db.kind,
        ...(db.kind === "pglite" ? { dataDir: config.dataDir } : {}),
        migrationsApplied: applied,
        migrationsUpToDate: skipped,
      });
      return { db, lock };
    } catch (error) {
      await db?.close().catch(() => {});
      await lock?.release().catch(() => {});
      if (!(error instanceof DatabaseUnavailableError) || Date.now() > deadline) throw error;
      logger.warn("Database not reachable yet; retrying", { attempt, error: error.message });
      await new Promise((resolve) => setTimeout(resolve, Math.min(250 * attempt, 2000)));
    }
  }
}

/** Starts the engine with `config`; resolves once the API listens. */
export async function startEngine(
  config: Config,
  logger: Logger,
  options: StartOptions = {},
): Promise<Engine> {
  logger.info("jobengine starting", {
    version: VERSION,
    database: config.databaseUrl ? "postgres" : "pglite",
  });
  const { db, lock } = await connectAndMigrate(config, logger);
  let drainOverride: number | undefined;
  // group intake: concurrent POST /jobs share statements and commits (src/job/_create_group.ts)
  const store = new JobStore(db, { groupCreates: true });
  // stopped in reverse: the database closes before its directory is let go
  const stoppers: Array<() => Promise<void>> = [
    async () => await lock?.release(),
    () => db.close(),
  ];
  const stopAll = async () => {
    for (const stop of stoppers.splice(0).reverse()) {
      try {
        await stop();
      } catch (error) {
        logger.error("Error during shutdown", { error });
      }
    }
  };
  try {
    if (config.sealed !== undefined) {
      await store.setSealed(config.sealed);
      logger.info(config.sealed ? "Engine sealed" : "Engine unsealed", {
        source: "JOBENGINE_SEALED",
      });
    } else {
      const sealed = await store.isSealed();
      if (sealed === networkUnrestricted()) {
        // the runtime's own permission backstop is set when the process starts: sealed by
        // set_sealed(true) with any socket allowed, or unsealed since a sealed relaunch
        if (options.relaunchWhenSealed) throw new SealedRelaunchRequired(sealed);
        if (sealed) {
          logger.warn(
            "The database is sealed but this process may open any socket: only the network " +
              "guard stands between handlers and the network (start it with `deno task start` " +
              "for the runtime's permission backstop)",
          );
        }
      }
      if (options.relaunchWhenSealed && options.onRelaunch) {
        // while running: the same disagreement, when the seal changes. The settings trigger
        // notifies every change; a NOTIFY can be missed all the same (sent while the LISTEN
        // connection reconnects, or never, with triggers off), so a timer checks too. The flag
        // is read from the row, never taken from a payload: any role may NOTIFY, and one
        // transaction that sealed and unsealed sends both.
        const onRelaunch = options.onRelaunch;
        let asked = false;
        const check = async () => {
          if (asked) return;
          const nowSealed = await store.isSealed().catch(() => null);
          if (asked || nowSealed === null || nowSealed !== networkUnrestricted()) return;
          asked = true;
          logger.warn(
            nowSealed
              ? "The database was sealed: restarting the engine with sealed permissions"
              : "The database was unsealed: restarting the engine with network permissions",
          );
          onRelaunch(nowSealed);
        };
        const unlisten = await db.listen("jobengine_ready", (payload) => {
          if (payload === "sealed:true" || payload === "sealed:false") void check();
        });
        stoppers.push(() => unlisten());
        const timer = setInterval(() => void check(), SEAL_CHECK_MS);
        stoppers.push(() => Promise.resolve(clearInterval(timer)));
        // a seal between the check above and the LISTEN
        void check();
      }
    }

    const emitter = new TimelineEventEmitter(db, { logger });
    await emitter.start();
    stoppers.push(() => emitter.stop());

    const scheduler = new JobScheduler(db, { logger });
    await scheduler.start();
    stoppers.push(() => scheduler.stop());

    let worker: Worker | null = null;
    if (config.workerConcurrency > 0) {
      const handlers = config.handlersModule
        ? await loadHandlers(config.handlersModule)
        : BUILTIN_HANDLERS;
      const dbEndpoint = databaseEndpoint(config.databaseUrl);
      worker = createWorker({
        db,
        handlers,
        concurrency: config.workerConcurrency,
        prefetch: config.workerPrefetch,
        // JOBENGINE_SEALED=1 pins the guard on; otherwise (unset, or 0, which unsealed the
        // database above) the worker follows the database, so a later set_sealed(true) seals it
        sealed: config.sealed === true ? true : undefined,
        allow: [...(dbEndpoint ? [dbEndpoint] : []), ...config.allow],
        logger,
      });
      await worker.start();
      logger.info("Worker started", {
        workerId: worker.workerId,
        types: Object.keys(handlers),
        concurrency: config.workerConcurrency,
        handlers: config.handlersModule ?? "built-in",
      });
    }

    const shutdown = new AbortController();
    const app = createApp({
      db,
      store,
      emitter,
      bodyLimitBytes: config.bodyLimitBytes,
      sealed: config.sealed === true,
      logger,
      signal: shutdown.signal,
    });
    const server = Deno.serve({
      hostname: config.host,
      port: config.port,
      onListen() {},
    }, app.fetch);
    const host = server.addr.hostname.includes(":")
      ? `[${server.addr.hostname}]`
      : server.addr.hostname;
    const url = `http://${host}:${server.addr.port}`;
    logger.info("Listening", { url, host: server.addr.hostname, port: server.addr.port });

    // Stopped in reverse: the API first, then the worker (drain), scheduler, emitter, database.
    stoppers.push(async () => {
      const drainMs = drainOverride ?? config.drainMs;
      const drain = worker?.stop({ deadlineMs: drainMs }) ?? Promise.resolve();
      shutdown.abort();
      // server.shutdown() waits for every request in progress, however slowly its client
      // sends: bounded like the drain, so that the process (and the handlers of any job it
      // released) ends in time
      const served = withDeadline(server.shutdown(), drainMs + 1_000, () => {
        logger.warn("Requests still open at the end of the drain: closing them", { drainMs });
      });
      await Promise.all([served, drain]);
      logger.info("API and worker stopped", { stats: worker?.stats });
    });

    let stopping: Promise<void> | null = null;
    return {
      url,
      db,
      stop: (options?: { drainMs?: number }) => {
        drainOverride ??= options?.drainMs;
        return stopping ??= stopAll();
      },
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/**
 * Calls `gone` once standard input ends: the launcher holds the other end of that pipe and
 * never writes, so its end is the launcher's exit, whatever ended it.
 */
async function watchLauncher(gone: () => void): Promise<void> {
  try {
    for await (const _ of Deno.stdin.readable) {
      // nothing is ever written
    }
  } catch {
    // a read error means the same: the launcher is gone
  }
  gone();
}

/** The entry point of `deno task start`. */
export async function main(): Promise<number> {
  let config: Config;
  try {
    config = loadConfig(Deno.env.toObject());
  } catch (error) {
    const logger = createLogger();
    if (error instanceof ConfigError) {
      logger.error("Invalid configuration", { problems: error.problems });
      return 2;
    }
    throw error;
  }
  const logger = createLogger({ level: config.logLevel, base: { service: "jobengine" } });
  // run by the launcher (launch.ts), which can start it again sealed and holds its stdin
  const launched = Deno.env.get(LAUNCHED_ENV) === "1";

  let signalled!: (signal: string) => void;
  const signal = new Promise<string>((resolve) => signalled = resolve);
  let first: { name: Deno.Signal; at: number } | null = null;
  const onSignal = (name: Deno.Signal) => () => {
    if (first === null) {
      first = { name, at: Date.now() };
      signalled(name);
      return;
    }
    // One operator action can arrive twice: Ctrl-C (or systemd's stop) signals the whole
    // process group, and the launcher forwards what it receives. The same signal again within
    // DUPLICATE_SIGNAL_MS is that copy, not a request to skip the drain.
    if (name === first.name && Date.now() - first.at < DUPLICATE_SIGNAL_MS) return;
    logger.warn("Second signal: exiting now", { signal: name });
    Deno.exit(130);
  };
  const listeners: Array<[Deno.Signal, () => void]> = [];
  for (const name of ["SIGINT", "SIGTERM"] as const) {
    const listener = onSignal(name);
    try {
      Deno.addSignalListener(name, listener);
      listeners.push([name, listener]);
    } catch {
      // SIGTERM is not available on every platform
    }
  }

  let relaunch = false;
  let engine: Engine;
  try {
    engine = await startEngine(config, logger, {
      relaunchWhenSealed: launched,
      onRelaunch: () => {
        relaunch = true;
        signalled("seal changed");
      },
    });
  } catch (error) {
    if (error instanceof SealedRelaunchRequired) {
      // a SIGTERM that came during the start is a stop, not a restart
      if (first !== null) return 0;
      logger.info(
        error.sealed
          ? "The database is sealed: handing back to the launcher to start sealed"
          : "The database is unsealed: handing back to the launcher to start with the network",
      );
      return RELAUNCH_SEALED_EXIT_CODE;
    }
    logger.error("Start-up failed", { error });
    return 1;
  }
  if (launched) void watchLauncher(() => signalled("launcher gone"));
  const name = await signal;
  logger.info("Shutting down", { signal: name, drainMs: config.drainMs });
  // a seal: what runs now has only the guard, so nothing waits for it (the jobs are handed
  // back, not failed, and run again under the new permissions)
  await engine.stop(relaunch && first === null ? { drainMs: 0 } : undefined);
  for (const [sig, listener] of listeners) Deno.removeSignalListener(sig, listener);
  logger.info("Stopped");
  return relaunch && first === null ? RELAUNCH_SEALED_EXIT_CODE : 0;
}

if (import.meta.main) Deno.exit(await main());
