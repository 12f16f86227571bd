/**
 * The worker runtime: claims jobs, runs their handlers, and reports the outcome.
 *
 * - Claims in batches sized to its free slots, only for the types it has handlers for. Wakes on
 *   `LISTEN jobengine_ready` (direct mode), on the `/events` stream (remote mode), on a timer set
 *   to the next delayed job, and on a polling fallback; it never spins.
 * - Heartbeats every `leaseSeconds / 3`. `ctx.signal` aborts when the job is cancelled (seen on
 *   `jobengine_events` / the event stream, or by a heartbeat), when the lease is lost (a
 *   heartbeat is refused, or the lease lapses without a successful heartbeat), or at shutdown.
 * - A handler that returns completes its job with the result (completions are batched through
 *   `complete_jobs`); one that throws fails it with `{ message, code, stack }`; an
 *   `EgressDeniedError` fails it for good (`retryable = false`, code `egress_denied`).
 * - `stop()` drains: no new claims, running handlers get until the deadline, then they are
 *   aborted and their jobs released (`release_jobs`: back to scheduled, `worker_shutdown`);
 *   jobs queued by prefetch are released when the drain begins.
 * - Sealed: handlers run under the network guard; each refusal becomes a
 *   `sealed.egress_blocked` event naming the job (tracked with `AsyncLocalStorage`).
 *
 * @module
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { hostname } from "node:os";
import process from "node:process";
import type { Database } from "../db/port.ts";
import {
  DatabaseUnavailableError,
  EgressDeniedError,
  InvalidTransitionError,
  JobEngineError,
  JobNotFoundError,
  LeaseMismatchError,
} from "../errors.ts";
import type { ClaimedJob } from "../job/job.ts";
import {
  type EgressDenial,
  installNetworkGuard,
  type NetworkGuard,
} from "../runtime/network_guard.ts";
import {
  createDatabaseBackend,
  createHttpBackend,
  type JobErrorRecord,
  type LeaseCompletion,
  type LeaseRef,
  type WorkerBackend,
} from "./_backend.ts";

/** The most jobs one `claim_jobs` call may take. */
const MAX_CLAIM = 1000;
/** Where the worker logs; `debug` is optional. */
export interface WorkerLogger {
  debug?(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** What a handler gets besides its job. */
export interface JobContext {
  /** Aborts when the job is cancelled, its lease is lost, or the worker shuts down. */
  readonly signal: AbortSignal;
  /** The worker running the job. */
  readonly workerId: string;
  /** Extends the lease now; throws {@linkcode JobAbortedError} when it is gone. */
  heartbeat(): Promise<void>;
  /** The worker's logger. */
  readonly logger: WorkerLogger;
}

/** A job handler: resolves to the job's result, or throws to fail it. */
export type JobHandler = (job: ClaimedJob, ctx: JobContext) => Promise<unknown>;

/** Handlers by job type. */
export type JobHandlers = Record<string, JobHandler>;

/** Options of {@linkcode createWorker}: give `db` (direct) or `baseUrl` (remote), not both. */
export interface WorkerOptions {
  /** The database (direct mode). */
  db?: Database;
  /** The HTTP API's base URL, e.g. `http://127.0.0.1:8080` (remote mode). */
  baseUrl?: string;
  /** Extra headers for remote mode (for example an authorization header). */
  headers?: Record<string, string>;
  /** Only this tenant's jobs (remote mode: the `X-Tenant-Id` header). Default every tenant (direct) / `default` (remote). */
  tenantId?: string;
  /** Handlers by job type; the worker claims only these types. */
  handlers: JobHandlers;
  /** Most handlers running at once. Default 8. */
  concurrency?: number;
  /**
   * Jobs claimed ahead of free handler slots and queued locally (like Graphile Worker's local
   * queue): claims come in larger batches, which is what throughput needs when every commit is
   * flushed to disk. Queued jobs are `running` in the database, hold a lease and are
   * heartbeated; cancelling one aborts it before its handler starts. Default 0.
   */
  prefetch?: number;
  /** Lease length in seconds. Default 30. */
  leaseSeconds?: number;
  /** Milliseconds between heartbeats. Default a third of the lease. */
  heartbeatIntervalMs?: number;
  /** This worker's name in leases and history. Default `hostname-pid-random`. */
  workerId?: string;
  /** Fallback poll interval in milliseconds. Default 1000. */
  pollIntervalMs?: number;
  /** Run handlers under the network guard. Default: follow the engine (`is_sealed()` / `GET /system`). */
  sealed?: boolean;
  /** `host:port` entries the network guard lets through (remote mode adds the API's own). */
  allow?: readonly string[];
  /** Most completions sent in one `complete_jobs` call. Default 100, or `prefetch` up to 1000. */
  completionBatchSize?: number;
  /** Longest a completion waits for others to join its batch, in milliseconds. Default 2. */
  completionBatchMs?: number;
  /** Where to log. Default: warnings and errors to the console. */
  logger?: WorkerLogger;
}

/** Options of {@linkcode Worker.stop}. */
export interface StopOptions {
  /** How long running handlers may take to finish before they are aborted and released. Default 30000. */
  deadlineMs?: number;
}

/** Why a handler's signal aborted. */
export type AbortReason = "cancelled" | "lease_lost" | "shutdown";

/** The events a worker emits, with their payloads. */
export interface WorkerEventMap {
  /** A job was claimed and its handler started. */
  claimed: { job: ClaimedJob };
  /** A job's completion was written. */
  completed: { job: ClaimedJob; result: unknown; durationMs: number };
  /** A job's failure was written. */
  failed: { job: ClaimedJob; error: Record<string, unknown>; retryable: boolean };
  /** A handler's signal aborted (cancelled or lease lost); nothing was written for it. */
  aborted: { job: ClaimedJob; reason: AbortReason };
  /** A job was released at shutdown (back to scheduled, `worker_shutdown`). */
  released: { job: ClaimedJob };
  /** A completion or failure was refused because the lease no longer held. */
  lost: { job: ClaimedJob; outcome: "completed" | "failed" };
  /** Something went wrong in the worker itself (claiming, writing, listening). */
  error: { error: unknown; during: string };
}

/** A worker event name. */
export type WorkerEvent = keyof WorkerEventMap;

/** Counters of what a worker did. */
export interface WorkerStats {
  claimed: number;
  completed: number;
  failed: number;
  aborted: number;
  released: number;
  lost: number;
}

/** A running (or runnable) worker. */
export interface Worker {
  /** This worker's name in leases and history. */
  readonly workerId: string;
  /** How many handlers are running now. */
  readonly running: number;
  /** What the worker did so far. */
  readonly stats: Readonly<WorkerStats>;
  /** Whether the handlers run under the network guard now. */
  readonly sealed: boolean;
  /** Starts claiming; resolves once subscribed and after the first claim. */
  start(): Promise<void>;
  /** Drains and stops (see {@linkcode StopOptions}); calling it again returns the same promise. */
  stop(options?: StopOptions): Promise<void>;
  /** Subscribes to an event; returns the unsubscribe function. */
  on<E extends WorkerEvent>(event: E, listener: (payload: WorkerEventMap[E]) => void): () => void;
}

/** The reason a handler's `ctx.signal` aborted. */
export class JobAbortedError extends JobEngineError {
  /** Why: `cancelled`, `lease_lost` or `shutdown`. */
  readonly reason: AbortReason;
  /** The job. */
  readonly jobId: string;
  /** Creates the error for `jobId`. */
  constructor(jobId: string, reason: AbortReason, options: { cause?: unknown } = {}) {
    const why = reason === "cancelled"
      ? "it was cancelled"
      : reason === "lease_lost"
      ? "its lease was lost"
      : "the worker is shutting down";
    super("job_aborted", `Job ${jobId} was aborted: ${why}`, {
      details: { jobId, reason },
      cause: options.cause,
    });
    this.name = "JobAbortedError";
    this.reason = reason;
    this.jobId = jobId;
  }
}

/** The job whose handler is running in the current async context, if any. */
export function currentJob(): { id: string; tenantId: string; type: string } | undefined {
  const entry = jobContext.getStore();
  return entry
    ? { id: entry.job.id, tenantId: entry.job.tenantId, type: entry.job.type }
    : undefined;
}

/** The default worker id: `hostname-pid-random`. */
export function defaultWorkerId(): string {
  let host = "worker";
  try {
    host = hostname() || host;
  } catch {
    // no permission to read the host name
  }
  return `${host}-${process.pid}-${crypto.randomUUID().slice(0, 8)}`;
}

/** A worker that talks to the database or to the HTTP API. */
export function createWorker(options: WorkerOptions): Worker {
  if (!options.db === !options.baseUrl) {
    throw new TypeError("Cannot create a worker: give exactly one of `db` and `baseUrl`");
  }
  const types = Object.keys(options.handlers);
  if (types.length === 0) {
    throw new TypeError("Cannot create a worker: `handlers` names no job type");
  }
  const concurrency = options.concurrency ?? 8;
  const leaseSeconds = options.leaseSeconds ?? 30;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1000) {
    throw new RangeError(
      `Invalid concurrency ${concurrency}: expected a whole number from 1 to 1000`,
    );
  }
  if (!Number.isInteger(leaseSeconds) || leaseSeconds < 1 || leaseSeconds > 86400) {
    throw new RangeError(
      `Invalid leaseSeconds ${leaseSeconds}: expected a whole number from 1 to 86400`,
    );
  }
  const workerId = options.workerId ?? defaultWorkerId();
  const config = { workerId, types, leaseSeconds, tenantId: options.tenantId };
  const backend = options.db
    ? createDatabaseBackend(options.db, config)
    : createHttpBackend({ ...config, baseUrl: options.baseUrl!, headers: options.headers });
  return new WorkerRuntime(backend, options, workerId, concurrency, leaseSeconds);
}

// ------------------------------------------------------------------------------------------------

/** A job this worker holds, from claim to written outcome. */
interface Held {
  job: ClaimedJob;
  controller: AbortController;
  /** When the handler started (performance.now()). */
  startedAt: number;
  /** When the lease was last known fresh: the claim or the last successful heartbeat was sent. */
  claimedAt: number;
  /** When the next periodic heartbeat is due (`Infinity` while one is in flight). */
  nextBeatAt: number;
  /** Watched by the lease clock: false once the job finishes, is aborted or released. */
  timed: boolean;
  /** Released at shutdown: whatever the handler does later is ignored. */
  released: boolean;
  /** The handler settled and its outcome is being written: too late to release. */
  finishing: boolean;
  /** The first refused egress attempt, if any. */
  denial: EgressDenial | null;
  /** Writes of egress events in flight, awaited before the job's outcome is written. */
  records: Promise<unknown>[];
  /** While the job waits for a handler slot: how to start it, or to drop it when aborted. */
  waiting: { resolve: () => void; reject: (reason: unknown) => void } | null;
  /** Settles once the handler returned or threw and its outcome was written. */
  settled: Promise<void>;
}

interface PendingCompletion {
  held: Held;
  completion: LeaseCompletion;
}

const CONSOLE_LOGGER: WorkerLogger = {
  info() {},
  warn: (message, fields) => console.warn(`[jobengine worker] ${message}`, fields ?? ""),
  error: (message, fields) => console.error(`[jobengine worker] ${message}`, fields ?? ""),
};

/**
 * How long a lease check waits after a `jobengine_events` NOTIFY, so that a burst of events costs
 * one query: the bound on how late a cancellation reaches `ctx.signal`.
 */
const LEASE_CHECK_DELAY_MS = 50;

/** Tracks which job's handler runs in the current async context (for egress attribution). */
const jobContext = new AsyncLocalStorage<Held>();

/** The network guard's registry key (see `network_guard.ts`): set while any guard is installed. */
const GUARD_INSTALLED = Symbol.for("jobengine.network_guard");

/** Turns a thrown value into the stored `lastError`. */
function describeError(error: unknown): JobErrorRecord {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return errorRecord(
      error.message || error.name || "Error",
      // (an empty code would read as "no code": the error's name, else "error")
      typeof code === "string" && code !== "" ? code : error.name || "error",
      error.stack,
    );
  }
  return errorRecord(String(error), "non_error_thrown");
}

/**
 * Text PostgreSQL can store in JSON: a NUL (which `jsonb` refuses) becomes U+FFFD, as does a
 * lone surrogate (which it cannot read back). An error's text is for people; one such character
 * must not keep the failure from being recorded.
 */
function storableText(text: string): string {
  return text.replaceAll("\u0000", "\uFFFD").toWellFormed();
}

/** A `lastError` within the limits of the HTTP API (message 10,000, code 200, stack 100,000). */
function errorRecord(
  message: string,
  code: string,
  stack?: string,
  details?: Record<string, unknown>,
): JobErrorRecord {
  const record: JobErrorRecord = {
    message: storableText(message.slice(0, 10_000)),
    code: storableText(code.slice(0, 200)),
  };
  if (stack) record.stack = storableText(stack.slice(0, 100_000));
  if (details) record.details = details;
  return record;
}

function leaseOf(held: Held): LeaseRef {
  return { id: held.job.id, leaseId: held.job.leaseId, tenantId: held.job.tenantId };
}

/** Finds an `EgressDeniedError` in `error` or its cause chain. */
function egressDenied(error: unknown): EgressDeniedError | null {
  for (let e = error, depth = 0; e && depth < 8; depth++) {
    if (e instanceof EgressDeniedError) return e;
    if (e instanceof Error && e.name === "EgressDeniedError") return e as EgressDeniedError;
    e = (e as { cause?: unknown }).cause;
  }
  return null;
}

/** The `api` of an egress refused by the runtime's permissions rather than the guard. */
const RUNTIME_PERMISSION = "runtime permission";

/**
 * A network refusal by the runtime itself: Deno's `NotCapable` (`PermissionDenied` before Deno
 * 2), "Requires net access to "host:port"". That is code that went around the network guard (a
 * `fetch` taken before the guard was installed, `node:net`, a Worker) and met the sealed
 * launch's `--allow-net`. Sealed, it is reported like the guard's own refusals.
 */
function permissionEgress(error: unknown): EgressDeniedError | null {
  for (let e = error, depth = 0; e && depth < 8; depth++) {
    if (e instanceof Error && (e.name === "NotCapable" || e.name === "PermissionDenied")) {
      const match = /Requires net access to "([^"]*)"/.exec(e.message);
      if (match) {
        const target = match[1]!;
        const colon = target.lastIndexOf(":");
        const port = colon > 0 ? Number(target.slice(colon + 1)) : NaN;
        const host = (Number.isInteger(port) ? target.slice(0, colon) : target).replace(
          /^\[(.*)\]$/,
          "$1",
        );
        return new EgressDeniedError(host, Number.isInteger(port) ? port : 0, RUNTIME_PERMISSION);
      }
    }
    e = (e as { cause?: unknown }).cause;
  }
  return null;
}

/**
 * Serializes and parses a result once, as the database will store it (`undefined` -> null).
 * Throws for what JSON would silently alter or PostgreSQL refuse: functions and symbols
 * (dropped), NaN and infinities (null), Map and Set (`{}`), and strings or keys with a NUL or a
 * lone surrogate (one such value in a batch of completions would make the database refuse the
 * whole batch).
 */
function jsonResult(result: unknown): unknown {
  if (result === undefined) return null;
  const text = JSON.stringify(result, function (key: string, value: unknown) {
    if (!storableString(key)) {
      throw new TypeError(`key ${JSON.stringify(key)} has a NUL or a lone surrogate`);
    }
    const problem = typeof value === "function" || typeof value === "symbol"
      ? `a ${typeof value}`
      : typeof value === "number" && !Number.isFinite(value)
      ? String(value)
      : typeof value === "string" && !storableString(value)
      ? "a string with a NUL or a lone surrogate"
      : value instanceof Map || value instanceof Set
      ? `a ${value.constructor.name}`
      : null;
    if (problem !== null) throw new TypeError(`${key ? `"${key}"` : "it"} is ${problem}`);
    return value;
  });
  return text === undefined ? null : JSON.parse(text);
}

function storableString(text: string): boolean {
  return !text.includes("\u0000") && text.isWellFormed();
}

/**
 * The SQLSTATE of a refusal of the data itself: class 22 (data exception, e.g. a NUL in JSON)
 * or 54 (a program limit, e.g. a value too large), or the HTTP API's validation_failed.
 */
function refusedData(error: unknown): boolean {
  for (let e = error, depth = 0; e && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (code === "validation_failed") return true;
    if (typeof code === "string" && /^(22|54)[0-9A-Z]{3}$/.test(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

class WorkerRuntime implements Worker {
  readonly workerId: string;
  readonly stats: WorkerStats = {
    claimed: 0,
    completed: 0,
    failed: 0,
    aborted: 0,
    released: 0,
    lost: 0,
  };

  readonly #backend: WorkerBackend;
  readonly #handlers: JobHandlers;
  readonly #concurrency: number;
  readonly #prefetch: number;
  /** Fewest jobs a claim asks for while others still wait in the local queue (see #pump). */
  readonly #claimMin: number;
  /** Claims in flight at once: 2 with a local queue, else 1. */
  readonly #maxClaims: number;
  /** Handlers running now (at most `concurrency`); claimed jobs beyond it wait in `#slotQueue`. */
  #active = 0;
  readonly #slotQueue: Held[] = [];
  readonly #leaseMs: number;
  readonly #heartbeatMs: number;
  readonly #pollMs: number;
  readonly #batchSize: number;
  readonly #batchMs: number;
  readonly #logger: WorkerLogger;
  readonly #sealedOption: boolean | undefined;
  readonly #allow: readonly string[];
  readonly #listeners = new Map<WorkerEvent, Set<(payload: never) => void>>();

  readonly #held = new Map<string, Held>();
  #started = false;
  #stopping = false;
  #stopped: Promise<void> | null = null;

  // claim loop
  /** Claims in flight (at most #maxClaims) and the jobs they may still bring. */
  readonly #claims = new Set<Promise<void>>();
  #reserved = 0;
  /** Work may be waiting: set by wake-ups, cleared by a claim that came back short. */
  #hint = true;
  /** Bumped by every wake-up, so a short claim does not clear a hint that arrived during it. */
  #wakeSeq = 0;
  #pollTimer: ReturnType<typeof setInterval> | null = null;
  #dueTimer: ReturnType<typeof setTimeout> | null = null;
  #retryTimer: ReturnType<typeof setTimeout> | null = null;
  #claimFailures = 0;
  /** A claim failed: the database may have committed it all the same (see #takeUpLostClaims). */
  #lostClaim = false;
  readonly #takesUpLost: boolean;

  // lease checks after jobengine_events
  #checking: Promise<void> | null = null;
  #checkAgain = false;
  #checkTimer: ReturnType<typeof setTimeout> | null = null;

  // the lease clock: one timer for every held job's heartbeat and watchdog
  #leaseTimer: ReturnType<typeof setTimeout> | null = null;
  #leaseTimerAt = Infinity;

  // completions
  #pending: PendingCompletion[] = [];
  /**
   * Jobs whose handler finished and whose outcome is not written yet (or could not be, until
   * their lease lapses): id -> when its lease lapses (performance.now()). Still `running` under
   * this worker's id in the database; #takeUpLostClaims must not run them again.
   */
  readonly #unwritten = new Map<string, number>();
  #flushTimer: ReturnType<typeof setTimeout> | null = null;
  readonly #writes = new Set<Promise<unknown>>();

  #unsubscribe: (() => Promise<void>) | null = null;
  #guard: NetworkGuard | null = null;
  #guardExternal = false;

  constructor(
    backend: WorkerBackend,
    options: WorkerOptions,
    workerId: string,
    concurrency: number,
    leaseSeconds: number,
  ) {
    this.#backend = backend;
    this.#handlers = options.handlers;
    this.workerId = workerId;
    this.#concurrency = concurrency;
    this.#prefetch = options.prefetch ?? 0;
    if (!Number.isInteger(this.#prefetch) || this.#prefetch < 0 || this.#prefetch > 10_000) {
      throw new RangeError(
        `Invalid prefetch ${options.prefetch}: expected a whole number from 0 to 10000`,
      );
    }
    this.#leaseMs = leaseSeconds * 1000;
    this.#heartbeatMs = options.heartbeatIntervalMs ?? Math.max(100, this.#leaseMs / 3);
    this.#pollMs = options.pollIntervalMs ?? 1000;
    this.#claimMin = this.#prefetch > 0
      ? Math.max(1, Math.floor((this.#concurrency + this.#prefetch) / 2))
      : 1;
    this.#maxClaims = this.#prefetch > 0 ? 2 : 1;
    this.#batchSize = options.completionBatchSize ?? Math.max(100, Math.min(1000, this.#prefetch));
    this.#batchMs = options.completionBatchMs ?? 2;
    this.#logger = options.logger ?? CONSOLE_LOGGER;
    this.#sealedOption = options.sealed;
    this.#allow = [...(options.allow ?? []), ...backend.endpoints];
    // jobs leased to this id are this process's only when the id is its own (generated)
    this.#takesUpLost = options.workerId === undefined && backend.leasedToMe !== undefined;
  }

  get running(): number {
    return this.#held.size;
  }

  get sealed(): boolean {
    return this.#guard?.active === true || this.#guardExternal;
  }

  on<E extends WorkerEvent>(event: E, listener: (payload: WorkerEventMap[E]) => void): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, set = new Set());
    set.add(listener as (payload: never) => void);
    return () => set.delete(listener as (payload: never) => void);
  }

  #emit<E extends WorkerEvent>(event: E, payload: WorkerEventMap[E]): void {
    for (const listener of this.#listeners.get(event) ?? []) {
      try {
        (listener as (payload: WorkerEventMap[E]) => void)(payload);
      } catch (error) {
        this.#logger.error("A worker event listener threw", { event, error: String(error) });
      }
    }
  }

  #fault(during: string, error: unknown, fields: Record<string, unknown> = {}): void {
    this.#logger.error(`Worker ${this.workerId}: ${during} failed`, {
      ...fields,
      error: error instanceof Error ? error.message : String(error),
    });
    this.#emit("error", { error, during });
  }

  // --------------------------------------------------------------------------------------------
  // start and stop

  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    try {
      // Fails closed: a worker that cannot tell whether the engine is sealed does not start.
      const sealed = this.#sealedOption ?? await this.#backend.isSealed();
      if (sealed) this.#seal();
    } catch (error) {
      this.#started = false;
      throw error;
    }
    try {
      this.#unsubscribe = await this.#backend.subscribe({
        ready: (payload) => this.#onReady(payload),
        events: () => this.#scheduleLeaseCheck(),
        cancelled: (jobId) => this.#abort(jobId, "cancelled"),
      });
    } catch (error) {
      // Polling still works; LISTEN is only the fast path.
      this.#fault("subscribing to wake-ups", error);
    }
    // a seal between the check above and the LISTEN sent no NOTIFY this worker heard
    void this.#recheckSealed();
    let polls = 0;
    this.#pollTimer = setInterval(() => {
      if (++polls % 5 === 0) void this.#recheckSealed();
      this.#wake();
    }, this.#pollMs);
    this.#wake();
    await this.#claimsSettled();
    this.#logger.info(`Worker ${this.workerId} started`, {
      types: Object.keys(this.#handlers),
      concurrency: this.#concurrency,
      backend: this.#backend.kind,
      sealed: this.sealed,
    });
  }

  stop(options: StopOptions = {}): Promise<void> {
    this.#stopped ??= this.#drain(options.deadlineMs ?? 30_000);
    return this.#stopped;
  }

  async #drain(deadlineMs: number): Promise<void> {
    this.#stopping = true;
    for (const timer of [this.#dueTimer, this.#retryTimer]) if (timer) clearTimeout(timer);
    if (this.#pollTimer) clearInterval(this.#pollTimer);
    this.#pollTimer = this.#dueTimer = this.#retryTimer = null;
    await this.#claimsSettled();
    // Jobs queued by prefetch that have not started are handed back at once: another worker
    // can run them now, and none starts a handler while this one drains.
    await Promise.allSettled(
      [...this.#held.values()].filter((held) => held.waiting !== null).map((held) =>
        this.#release(held)
      ),
    );

    if (this.#held.size > 0) {
      this.#logger.info(`Worker ${this.workerId} draining`, {
        running: this.#held.size,
        deadlineMs,
      });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const deadline = new Promise<void>((resolve) => timer = setTimeout(resolve, deadlineMs));
      await Promise.race([
        Promise.allSettled([...this.#held.values()].map((held) => held.settled)),
        deadline,
      ]);
      clearTimeout(timer);
    }
    // Whatever still runs is aborted and released so that another worker can take it; outcomes
    // being written already are waited for.
    await Promise.allSettled(
      [...this.#held.values()].map((held) => held.finishing ? held.settled : this.#release(held)),
    );

    await this.#flush();
    while (this.#writes.size > 0) await Promise.allSettled([...this.#writes]);
    if (this.#checkTimer) clearTimeout(this.#checkTimer);
    this.#stopLeaseClock();
    await this.#checking;
    await this.#unsubscribe?.().catch((error) => this.#fault("unsubscribing", error));
    this.#unsubscribe = null;
    this.#unseal();
    this.#logger.info(`Worker ${this.workerId} stopped`, { ...this.stats });
  }

  async #release(held: Held): Promise<void> {
    if (held.released || held.finishing || !this.#held.has(held.job.id)) return;
    held.released = true;
    this.#leaveLeaseClock(held);
    this.#forget(held.job.id);
    this.#abortHeld(held, new JobAbortedError(held.job.id, "shutdown"));
    const error = errorRecord(`Released by worker ${this.workerId} at shutdown`, "worker_shutdown");
    try {
      if (this.#backend.release) {
        // not the job's failure: back to scheduled, never terminal because of it
        if (!(await this.#backend.release(leaseOf(held)))) {
          this.#logger.warn(`Job ${held.job.id}: lease gone before it could be released`);
          return;
        }
      } else {
        await this.#backend.fail(leaseOf(held), error, true);
      }
      this.stats.released++;
      this.#emit("released", { job: held.job });
    } catch (failure) {
      if (
        failure instanceof LeaseMismatchError || failure instanceof JobNotFoundError ||
        failure instanceof InvalidTransitionError
      ) {
        this.#logger.warn(`Job ${held.job.id}: lease gone before it could be released`);
      } else {
        this.#fault("releasing a job", failure, { jobId: held.job.id });
      }
    }
  }

  // --------------------------------------------------------------------------------------------
  // sealed mode

  #seal(): void {
    if (this.#guard?.active || this.#guardExternal) return;
    const registry = globalThis as unknown as Record<symbol, unknown>;
    if (registry[GUARD_INSTALLED]) {
      // The host installed the guard (and reports refusals itself, e.g. with currentJob()).
      // Handlers still fail with egress_denied when a call is refused.
      this.#guardExternal = true;
      this.#logger.info(`Worker ${this.workerId}: using the network guard installed by the host`);
      return;
    }
    this.#guard = installNetworkGuard({
      allow: this.#allow,
      onDenied: (denial) => this.#onDenied(denial),
    });
  }

  #unseal(): void {
    this.#guard?.uninstall();
    this.#guard = null;
    this.#guardExternal = false;
  }

  #onDenied(denial: EgressDenial): void {
    let held = jobContext.getStore();
    // Outside any handler's async context: with a single job running, it is that job's.
    if (!held && this.#held.size === 1) held = this.#held.values().next().value;
    if (held) held.denial ??= denial;
    this.#recordEgress(held, denial);
  }

  /** Writes the `sealed.egress_blocked` event of a refusal (naming `held`'s job, if any). */
  #recordEgress(held: Held | undefined, denial: { host: string; port: number; api: string }): void {
    const record = this.#backend.recordEgressBlocked({
      host: denial.host,
      port: denial.port,
      api: denial.api,
      jobId: held?.job.id ?? null,
      actor: this.workerId,
    }).catch((error) => this.#fault("recording a refused egress", error));
    held?.records.push(record);
    this.#track(record);
  }

  // --------------------------------------------------------------------------------------------
  // wake-ups and claiming

  #onReady(payload: string): void {
    // the payload only says "look": any role that may connect can NOTIFY, and a forged
    // 'sealed:false' must not take the guard down
    if (payload === "sealed:true" || payload === "sealed:false") void this.#recheckSealed();
    if (payload !== "created") this.#wake();
  }

  /**
   * Follows `is_sealed()` (when `sealed` was not pinned): on a seal NOTIFY, and on every fifth
   * poll, since a NOTIFY can be missed (sent while the LISTEN connection reconnects, or not at
   * all when the settings row is written with triggers off). A worker that cannot read the flag
   * (the database is away) keeps its state: sealing on every outage took the network away from
   * unsealed handlers, the engine's own process included.
   */
  async #recheckSealed(): Promise<void> {
    if (this.#sealedOption !== undefined || this.#stopping) return;
    let sealed: boolean;
    try {
      sealed = await this.#backend.isSealed();
    } catch {
      return;
    }
    if (this.#stopping) return;
    if (sealed) this.#seal();
    else this.#unseal();
  }

  #wake(): void {
    this.#hint = true;
    this.#wakeSeq++;
    this.#pump();
  }

  /**
   * Starts claims while work may be waiting and the window (slots + prefetch) has room. With a
   * local queue, two claims may be in flight at once, so that the database works on the next
   * batch while this process takes in the last one.
   */
  #pump(): void {
    if (this.#stopping || !this.#started) return;
    while (this.#hint && this.#claims.size < this.#maxClaims) {
      const free = Math.min(
        this.#concurrency + this.#prefetch - this.#held.size - this.#reserved,
        MAX_CLAIM,
      );
      // With a local queue, wait until half of it is free before claiming again while jobs
      // still wait in it (or are being claimed): a few large claims cost the database far less
      // than many small ones (every claim is a statement, a commit and a disk flush). Once the
      // queue is empty, claim whatever fits, so that no slot idles while work is waiting.
      const queued = this.#held.size + this.#reserved - this.#active;
      if (free <= 0 || (free < this.#claimMin && queued > 0)) return;
      const claim: Promise<void> = this.#claim(free).finally(() => {
        this.#claims.delete(claim);
        this.#pump();
      });
      this.#claims.add(claim);
    }
  }

  async #claim(limit: number): Promise<void> {
    // (no other claim in flight: its answer could still bring what the lookup would find)
    if (this.#lostClaim && this.#claims.size === 0) await this.#takeUpLostClaims();
    const seq = this.#wakeSeq;
    const sentAt = performance.now();
    this.#reserved += limit;
    let jobs: ClaimedJob[];
    try {
      jobs = await this.#backend.claim(limit);
      this.#claimFailures = 0;
    } catch (error) {
      // no claims until the retry timer (or another wake-up) says to try again
      this.#hint = false;
      this.#lostClaim = this.#takesUpLost;
      this.#claimFailed(error);
      return;
    } finally {
      this.#reserved -= limit;
    }
    for (const job of jobs) if (!this.#held.has(job.id)) this.#run(job, sentAt);
    if (jobs.length === limit) {
      this.#hint = true;
    } else if (seq === this.#wakeSeq) {
      this.#hint = false;
      await this.#armDueTimer();
    }
  }

  /**
   * After a failed claim: a claim whose answer was lost (the connection dropped after the
   * database committed it) left jobs `running` under this worker's id that nobody runs; they
   * waited for the reaper until their lease expired (and spent an attempt). Looks them up and
   * runs them now, on the rest of their lease.
   */
  async #takeUpLostClaims(): Promise<void> {
    let mine: ClaimedJob[];
    try {
      mine = await this.#backend.leasedToMe!();
    } catch {
      return; // the database is still away: the next claim tries again
    }
    this.#lostClaim = false;
    const now = performance.now();
    for (const [id, lapses] of this.#unwritten) if (lapses < now) this.#unwritten.delete(id);
    // neither held nor finished here (a finished job whose outcome is still being written is
    // `running` under this id too)
    const lost = mine.filter((job) => !this.#held.has(job.id) && !this.#unwritten.has(job.id));
    if (lost.length === 0) return;
    this.#logger.warn(
      `Worker ${this.workerId}: running ${lost.length} job(s) claimed by a claim whose answer was lost`,
      { jobIds: lost.slice(0, 20).map((job) => job.id) },
    );
    for (const job of lost) {
      // the lease clock counts from the claim: as long ago as the lease has run down
      const remaining = Date.parse(job.leaseExpiresAt) - Date.now();
      this.#run(job, now - Math.max(0, this.#leaseMs - remaining));
    }
  }

  /** Resolves once no claim is in flight. */
  async #claimsSettled(): Promise<void> {
    while (this.#claims.size > 0) await Promise.allSettled([...this.#claims]);
  }

  #claimFailed(error: unknown): void {
    this.#claimFailures++;
    // Log the first failure and then every tenth, not every poll while the database is away.
    if (this.#claimFailures === 1 || this.#claimFailures % 10 === 0) {
      this.#fault("claiming", error, { failures: this.#claimFailures });
    }
    if (this.#retryTimer || this.#stopping) return;
    const delay = Math.min(this.#pollMs, 100 * 2 ** Math.min(this.#claimFailures, 6));
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#wake();
    }, delay);
  }

  async #armDueTimer(): Promise<void> {
    let ms: number | null;
    try {
      ms = await this.#backend.nextDueInMs();
    } catch {
      return; // the poll covers it
    }
    if (ms === null || ms >= this.#pollMs || this.#stopping) return;
    if (this.#dueTimer) clearTimeout(this.#dueTimer);
    this.#dueTimer = setTimeout(() => {
      this.#dueTimer = null;
      this.#wake();
    }, Math.ceil(ms) + 2);
  }

  // --------------------------------------------------------------------------------------------
  // running one job

  #run(job: ClaimedJob, claimedAt: number): void {
    const held: Held = {
      job,
      controller: new AbortController(),
      startedAt: performance.now(),
      claimedAt,
      nextBeatAt: claimedAt + this.#heartbeatMs,
      timed: true,
      released: false,
      finishing: false,
      denial: null,
      records: [],
      waiting: null,
      settled: Promise.resolve(),
    };
    this.#held.set(job.id, held);
    this.stats.claimed++;
    this.#emit("claimed", { job });
    this.#armLeaseClock(Math.min(held.nextBeatAt, claimedAt + this.#leaseMs));
    held.settled = this.#execute(held);
  }

  /** Waits for a slot, runs the handler, writes the outcome; never rejects. */
  async #execute(held: Held): Promise<void> {
    const { job } = held;
    let outcome: { ok: true; result: unknown } | { ok: false; error: unknown };
    try {
      await this.#takeSlot(held);
      try {
        const ctx: JobContext = {
          signal: held.controller.signal,
          workerId: this.workerId,
          logger: this.#logger,
          heartbeat: () => this.#heartbeat(held, true),
        };
        const result = await jobContext.run(held, () => {
          held.startedAt = performance.now();
          const handler = this.#handlers[job.type];
          if (!handler) {
            throw new JobEngineError("no_handler", `No handler for job type "${job.type}"`);
          }
          return handler(job, ctx);
        });
        outcome = { ok: true, result };
      } finally {
        this.#giveSlot();
      }
    } catch (error) {
      outcome = { ok: false, error };
    }
    try {
      await this.#finish(held, outcome);
    } catch (error) {
      this.#fault("finishing a job", error, { jobId: job.id });
    }
  }

  /**
   * Resolves when a handler slot is free (at once unless jobs are queued by `prefetch`); rejects
   * with the abort reason when the job is cancelled or its lease lost while it waits (see
   * `#abortHeld`).
   */
  #takeSlot(held: Held): Promise<void> {
    const signal = held.controller.signal;
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.#active < this.#concurrency) {
      this.#active++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      held.waiting = { resolve, reject };
      this.#slotQueue.push(held);
    });
  }

  /** Hands the freed slot to the first queued job, if any. */
  #giveSlot(): void {
    const next = this.#slotQueue.shift();
    if (!next) {
      this.#active--;
      return;
    }
    const waiting = next.waiting!;
    next.waiting = null;
    waiting.resolve();
  }

  /**
   * Aborts a held job's signal; a job still waiting for a handler slot leaves the queue, its
   * wait rejecting with the reason. Every abort of a held job goes through here.
   */
  #abortHeld(held: Held, reason: JobAbortedError): void {
    held.controller.abort(reason);
    const waiting = held.waiting;
    if (!waiting) return;
    held.waiting = null;
    const index = this.#slotQueue.indexOf(held);
    if (index >= 0) this.#slotQueue.splice(index, 1);
    waiting.reject(reason);
  }

  async #finish(
    held: Held,
    outcome: { ok: true; result: unknown } | { ok: false; error: unknown },
  ): Promise<void> {
    this.#leaveLeaseClock(held);
    if (held.released) return;
    held.finishing = true;
    const { job } = held;
    this.#unwritten.set(job.id, held.claimedAt + this.#leaseMs);
    const signal = held.controller.signal;
    try {
      if (signal.aborted) {
        // Cancelled or lease lost: the job is not ours to write any more.
        const reason = (signal.reason as JobAbortedError).reason;
        this.stats.aborted++;
        this.#logger.info(`Job ${job.id} aborted`, { reason });
        this.#emit("aborted", { job, reason });
        return;
      }
      const refused = outcome.ok ? null : outcome.error;
      const denied = egressDenied(refused) ?? (this.sealed ? permissionEgress(refused) : null);
      if (held.denial || denied) {
        // the guard never saw this one: write its sealed.egress_blocked event here
        if (denied?.api === RUNTIME_PERMISSION && !held.denial) this.#recordEgress(held, denied);
        await Promise.allSettled(held.records);
        const host = denied?.host ?? held.denial!.host;
        const port = denied?.port ?? held.denial!.port;
        const api = denied?.api ?? held.denial!.api;
        const source = denied ?? (outcome.ok ? null : outcome.error);
        await this.#fail(
          held,
          errorRecord(
            denied?.message ?? `Egress denied in sealed mode: ${api} to ${host}:${port}`,
            "egress_denied",
            source instanceof Error ? source.stack : undefined,
            { host, port, api },
          ),
          false,
        );
        return;
      }
      if (outcome.ok) {
        let result: unknown;
        try {
          result = jsonResult(outcome.result);
        } catch (error) {
          await this.#fail(
            held,
            errorRecord(
              `The handler's result cannot be stored as JSON: ${String(error)}`,
              "invalid_result",
              error instanceof Error ? error.stack : undefined,
            ),
            true,
          );
          return;
        }
        this.#complete(held, result);
        return;
      }
      await this.#fail(held, describeError(outcome.error), true);
    } finally {
      // The slot frees once the outcome is written or queued.
      this.#forget(job.id);
      this.#pump();
    }
  }

  async #fail(held: Held, error: JobErrorRecord, retryable: boolean): Promise<void> {
    const { job } = held;
    const write = this.#whileLeaseHolds(
      held.claimedAt,
      () => this.#backend.fail(leaseOf(held), error, retryable),
    );
    this.#track(write);
    try {
      await write;
      this.#unwritten.delete(job.id);
      this.stats.failed++;
      this.#emit("failed", { job, error, retryable });
    } catch (failure) {
      if (failure instanceof JobEngineError && !(failure instanceof DatabaseUnavailableError)) {
        this.stats.lost++;
        this.#logger.warn(`Job ${job.id}: failure not recorded, the lease no longer holds`, {
          error: failure.message,
        });
        this.#emit("lost", { job, outcome: "failed" });
      } else {
        this.#fault("failing a job", failure, { jobId: job.id });
      }
    }
  }

  // --------------------------------------------------------------------------------------------
  // completions, batched

  #complete(held: Held, result: unknown): void {
    this.#pending.push({
      held,
      completion: { ...leaseOf(held), result },
    });
    if (this.#pending.length >= this.#batchSize) {
      void this.#flush();
    } else if (!this.#flushTimer) {
      this.#flushTimer = setTimeout(() => void this.#flush(), this.#batchMs);
    }
  }

  #flush(): Promise<void> {
    if (this.#flushTimer) clearTimeout(this.#flushTimer);
    this.#flushTimer = null;
    const batch = this.#pending.splice(0, this.#pending.length);
    if (batch.length === 0) return Promise.resolve();
    const write = this.#writeCompletions(batch);
    this.#track(write);
    return write;
  }

  async #writeCompletions(batch: PendingCompletion[]): Promise<void> {
    let done: Set<string>;
    try {
      done = await this.#whileLeaseHolds(
        Math.min(...batch.map((p) => p.held.claimedAt)),
        () => this.#backend.completeMany(batch.map((p) => p.completion)),
      );
    } catch (error) {
      if (refusedData(error)) {
        // The database refused something in the batch (jsonResult lets nothing known through):
        // complete the jobs one by one, so that only the one it refuses fails
        if (batch.length > 1) {
          for (const one of batch) await this.#writeCompletions([one]);
        } else {
          await this.#fail(
            batch[0]!.held,
            errorRecord(
              `The handler's result could not be stored: ${String(error)}`,
              "invalid_result",
              error instanceof Error ? error.stack : undefined,
            ),
            true,
          );
        }
        return;
      }
      // The reaper fails the jobs once their leases lapse, and they run again.
      this.#fault("completing jobs", error, { jobs: batch.length });
      return;
    }
    for (const { held, completion } of batch) {
      this.#unwritten.delete(held.job.id);
      if (done.has(held.job.id)) {
        this.stats.completed++;
        this.#emit("completed", {
          job: held.job,
          result: completion.result,
          durationMs: performance.now() - held.startedAt,
        });
      } else {
        this.stats.lost++;
        this.#logger.warn(`Job ${held.job.id}: completion not recorded, the lease no longer holds`);
        this.#emit("lost", { job: held.job, outcome: "completed" });
      }
    }
  }

  /**
   * Runs a write, trying again while the database is unavailable and the lease may still hold
   * (measured from `since`, the last time the lease was known to be fresh).
   */
  async #whileLeaseHolds<T>(since: number, write: () => Promise<T>): Promise<T> {
    for (let attempt = 1;; attempt++) {
      try {
        return await write();
      } catch (error) {
        const delay = 100 * 2 ** Math.min(attempt, 5);
        const leaseLeft = since + this.#leaseMs - performance.now();
        if (!(error instanceof DatabaseUnavailableError) || leaseLeft < delay) throw error;
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  #track(write: Promise<unknown>): void {
    const tracked = write.then(() => {}, () => {});
    this.#writes.add(tracked);
    tracked.finally(() => this.#writes.delete(tracked));
  }

  // --------------------------------------------------------------------------------------------
  // leases: heartbeats, the local watchdog, and checks after jobengine_events

  /**
   * Arms the lease clock for `at` (performance.now() time) unless it already fires by then. One
   * timer serves every held job: a claim of a thousand jobs arms no timer of its own, and a job
   * that finishes has nothing to clear.
   */
  #armLeaseClock(at: number): void {
    if (this.#leaseTimer !== null) {
      if (this.#leaseTimerAt <= at) return;
      clearTimeout(this.#leaseTimer);
    }
    this.#leaseTimerAt = at;
    this.#leaseTimer = setTimeout(() => this.#leaseTick(), Math.max(0, at - performance.now()));
  }

  #stopLeaseClock(): void {
    if (this.#leaseTimer !== null) clearTimeout(this.#leaseTimer);
    this.#leaseTimer = null;
    this.#leaseTimerAt = Infinity;
  }

  /**
   * The lease clock fired: aborts the jobs whose lease lapsed (`leaseMs` after the claim or the
   * last successful heartbeat was sent), sends the heartbeats that are due, and arms itself for
   * the next of either.
   */
  #leaseTick(): void {
    this.#leaseTimer = null;
    this.#leaseTimerAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const held of [...this.#held.values()]) {
      if (!held.timed) continue;
      const lapses = held.claimedAt + this.#leaseMs;
      if (lapses <= now) {
        this.#abort(held.job.id, "lease_lost");
        continue;
      }
      if (held.nextBeatAt <= now) {
        held.nextBeatAt = Infinity;
        void this.#periodicHeartbeat(held);
      }
      next = Math.min(next, lapses, held.nextBeatAt);
    }
    if (next !== Infinity) this.#armLeaseClock(next);
  }

  async #periodicHeartbeat(held: Held): Promise<void> {
    try {
      await this.#heartbeat(held, false);
    } catch {
      return; // aborted: no more heartbeats
    }
    if (this.#held.get(held.job.id) === held && held.timed) {
      held.nextBeatAt = performance.now() + this.#heartbeatMs;
      this.#armLeaseClock(held.nextBeatAt);
    }
  }

  async #heartbeat(held: Held, explicit: boolean): Promise<void> {
    const signal = held.controller.signal;
    if (signal.aborted) throw signal.reason;
    const sentAt = performance.now();
    try {
      await this.#backend.heartbeat(leaseOf(held));
      if (!signal.aborted) {
        held.claimedAt = sentAt;
        if (held.timed) this.#armLeaseClock(sentAt + this.#leaseMs);
      }
    } catch (error) {
      if (error instanceof LeaseMismatchError || error instanceof JobNotFoundError) {
        const status = (error.details as { status?: unknown }).status;
        this.#abort(held.job.id, status === "cancelled" ? "cancelled" : "lease_lost", error);
        throw signal.reason;
      }
      // A transient failure: the watchdog aborts the job if the lease lapses meanwhile.
      this.#logger.warn(`Heartbeat of job ${held.job.id} failed`, { error: String(error) });
      if (explicit) throw error;
    }
  }

  #abort(jobId: string, reason: AbortReason, cause?: unknown): void {
    const held = this.#held.get(jobId);
    if (!held || held.controller.signal.aborted) return;
    this.#leaveLeaseClock(held);
    this.#abortHeld(held, new JobAbortedError(jobId, reason, { cause }));
  }

  /** The job is no longer held; the lease clock stops with the last one. */
  #forget(jobId: string): void {
    this.#held.delete(jobId);
    if (this.#held.size === 0) this.#stopLeaseClock();
  }

  /**
   * The job leaves the lease clock: no more heartbeats, no watchdog. (The timer itself stops
   * once no job is held.)
   */
  #leaveLeaseClock(held: Held): void {
    held.timed = false;
    held.nextBeatAt = Infinity;
  }

  /** After `jobengine_events`: re-read the held jobs (coalesced, at most every 50 ms). */
  #scheduleLeaseCheck(): void {
    if (this.#held.size === 0 || this.#checkTimer) return;
    if (this.#checking) {
      this.#checkAgain = true;
      return;
    }
    this.#checkTimer = setTimeout(() => {
      this.#checkTimer = null;
      this.#checking = this.#checkLeases().finally(() => {
        this.#checking = null;
        if (this.#checkAgain) {
          this.#checkAgain = false;
          this.#scheduleLeaseCheck();
        }
      });
    }, LEASE_CHECK_DELAY_MS);
  }

  async #checkLeases(): Promise<void> {
    const held = [...this.#held.values()]
      .filter((h) => !h.released && !h.controller.signal.aborted)
      .map(leaseOf);
    let lost: Map<string, { status: string | null }>;
    try {
      lost = await this.#backend.checkLeases(held);
    } catch (error) {
      this.#logger.warn("Lease check failed", { error: String(error) });
      return;
    }
    for (const [id, { status }] of lost) {
      // A job whose outcome is being written right now is no longer running: not an abort.
      if (this.#held.get(id)?.finishing) continue;
      this.#abort(id, status === "cancelled" ? "cancelled" : "lease_lost");
    }
  }
}
