/**
 * The benchmark harness: result rows, the context every scenario gets, timing and concurrency
 * helpers. Imported only from `bench/`.
 *
 * @module
 */
import type { Cluster } from "../scripts/pg_cluster.ts";
import type { BenchDatabases } from "./_db.ts";
import type { WorkerSetup } from "./_engine.ts";

/** A target a row is held to. */
export interface Target {
  /** `>=` (throughput, ratios) or `<=` (latency). */
  op: ">=" | "<=";
  /** The threshold, in the row's unit. */
  value: number;
}

/** One line of the results table. */
export interface ResultRow {
  /** The scenario that produced it (`create`, `processing`, ...). */
  scenario: string;
  /** What was measured, e.g. `create_job, 8 callers`. */
  name: string;
  /** The measured value; null when the row was not run. */
  value: number | null;
  /** The unit: `jobs/s`, `tps`, `ms`, `ratio`, `req/s`. */
  unit: string;
  /** The target of the issue, when it sets one for this row. */
  target?: Target;
  /** Whether `value` meets `target` (null when there is no value). */
  pass?: boolean | null;
  /** The value as a fraction of the database's own limit measured in the same run. */
  ratio?: { to: string; value: number };
  /** Jobs (or requests) counted. */
  count?: number;
  /** Wall-clock seconds of the measured part. */
  seconds?: number;
  /** Committed transactions per job in the measured part (pg_stat_database.xact_commit). */
  commitsPerJob?: number;
  /** WAL bytes written per job in the measured part. */
  walBytesPerJob?: number;
  /** WAL flushes to disk per job (`pg_stat_wal.wal_sync`, cluster-wide): what fsync costs. */
  walSyncsPerJob?: number;
  /** A short remark printed with the row. */
  note?: string;
  /** Why the row has no value (`not run: ...`). */
  notRun?: string;
  /** Anything else worth keeping in the JSON (plans, percentiles, settings). */
  details?: Record<string, unknown>;
}

/** Sizes of one run: `--quick` shrinks every one of them. */
export interface Sizes {
  pgbenchScale: number;
  pgbenchSeconds: number;
  notifySeconds: number;
  queueRows: number;
  queueSeconds: number;
  createSeconds: number;
  bulkJobs: number;
  processingJobs: number;
  /** Longest the worker may take on `processingJobs` (the rate is then over what it did). */
  processingCapSeconds: number;
  /** Scheduled jobs for the engine's SQL ceiling (pgbench claims all but a batch per client). */
  sqlCeilingJobs: number;
  lifecycleJobs: number;
  lifecycleCapSeconds: number;
  latencyJobs: number;
  backlogSmall: number;
  backlogLarge: number;
  backlogMeasured: number;
  /** Longest one backlog measurement may take. */
  backlogCapSeconds: number;
  /** Most seconds spent building the large backlog (it stops at the largest size that fits). */
  backlogBuildSeconds: number;
  /** Most seconds spent building the finished history for the backlog scenario. */
  backlogHistorySeconds: number;
  httpSeconds: number;
  pgliteLifecycleJobs: number;
}

/** The full run: about five minutes on 2 cores. */
export const FULL_SIZES: Sizes = {
  pgbenchScale: 10,
  pgbenchSeconds: 15,
  notifySeconds: 5,
  queueRows: 600_000,
  queueSeconds: 5,
  createSeconds: 6,
  bulkJobs: 50_000,
  processingJobs: 100_000,
  processingCapSeconds: 40,
  sqlCeilingJobs: 60_000,
  lifecycleJobs: 20_000,
  lifecycleCapSeconds: 30,
  latencyJobs: 200,
  backlogSmall: 10_000,
  backlogLarge: 1_000_000,
  backlogMeasured: 10_000,
  backlogCapSeconds: 10,
  backlogBuildSeconds: 90,
  backlogHistorySeconds: 60,
  httpSeconds: 6,
  pgliteLifecycleJobs: 2_000,
};

/** `--quick`: tiny sizes, a smoke run under a minute. */
export const QUICK_SIZES: Sizes = {
  pgbenchScale: 1,
  pgbenchSeconds: 2,
  notifySeconds: 1,
  queueRows: 150_000,
  queueSeconds: 2,
  createSeconds: 1.5,
  bulkJobs: 3_000,
  processingJobs: 3_000,
  processingCapSeconds: 3,
  sqlCeilingJobs: 3_000,
  lifecycleJobs: 1_000,
  lifecycleCapSeconds: 5,
  latencyJobs: 30,
  backlogSmall: 1_000,
  backlogLarge: 10_000,
  backlogMeasured: 1_000,
  backlogCapSeconds: 2,
  backlogBuildSeconds: 5,
  backlogHistorySeconds: 3,
  httpSeconds: 1,
  pgliteLifecycleJobs: 200,
};

/** pgbench clients of the SKIP LOCKED queue and of the engine's SQL ceiling: one per core. */
export const SQL_CLIENTS = 2;

/** The database's own limits, measured first, for the ratios. */
export interface Baseline {
  /** `pgbench -N` transactions per second. */
  pgbenchTps: number | null;
  /** Jobs per second of the one-table `SKIP LOCKED` claim+complete script. */
  queueJobsPerSecond: number | null;
}

/** What every scenario gets. */
export interface BenchContext {
  readonly cluster: Cluster;
  readonly quick: boolean;
  readonly profile: boolean;
  readonly sizes: Sizes;
  readonly databases: BenchDatabases;
  readonly baseline: Baseline;
  /**
   * The worker runtime's usual claim size in the processing work-off (half its window of 8
   * slots and a local queue of 1,000); the pgbench queue and the engine's SQL ceiling use it.
   */
  readonly claimBatch: number;
  /** How the worker runtime is deployed: 8 slots in all (`--workers=IxC`). */
  readonly workerSetup: WorkerSetup;
  /** When the whole run should be done (`performance.now()` ms): the backlog sizes adapt to it. */
  readonly deadline: number;
  /** Prints a progress line (to stderr, so the table stays clean). */
  log(message: string): void;
}

/** Seconds left until the run's deadline. */
export function remainingSeconds(ctx: BenchContext): number {
  return (ctx.deadline - performance.now()) / 1000;
}

/** One scenario: a name and a function that returns its rows. */
export interface Scenario {
  readonly name: string;
  readonly description: string;
  run(ctx: BenchContext): Promise<ResultRow[]>;
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Fills in `pass` from `value` and `target`. */
export function judge(row: ResultRow): ResultRow {
  if (!row.target) return row;
  if (row.value === null) return { ...row, pass: null };
  const pass = row.target.op === ">="
    ? row.value >= row.target.value
    : row.value <= row.target.value;
  return { ...row, pass };
}

/** A row that was not run, with the reason. */
export function notRun(
  scenario: string,
  name: string,
  unit: string,
  reason: string,
  target?: Target,
): ResultRow {
  return { scenario, name, value: null, unit, target, pass: null, notRun: `not run: ${reason}` };
}

/** The p-th percentile (0..100) of `values` (nearest rank). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** Rounds to `digits` significant decimals for the JSON. */
export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/**
 * Runs `callers` loops side by side; each calls `fn(caller, i)` until `count` calls were
 * started in all or `seconds` passed. Resolves to how many calls finished and the seconds taken.
 */
export async function concurrentLoop(
  callers: number,
  fn: (caller: number, i: number) => Promise<unknown>,
  options: { count?: number; seconds?: number },
): Promise<{ done: number; seconds: number }> {
  const limit = options.count ?? Infinity;
  const until = options.seconds === undefined
    ? Infinity
    : performance.now() + options.seconds * 1000;
  let started = 0;
  let done = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async (_, caller) => {
      while (started < limit && performance.now() < until) {
        const i = started++;
        await fn(caller, i);
        done++;
      }
    }),
  );
  return { done, seconds: (performance.now() - t0) / 1000 };
}

/** Polls `check` every `intervalMs` until it resolves true or `timeoutMs` passes; returns whether it did. */
export async function waitUntil(
  check: () => Promise<boolean>,
  options: { intervalMs?: number; timeoutMs: number },
): Promise<boolean> {
  const end = performance.now() + options.timeoutMs;
  while (performance.now() < end) {
    if (await check()) return true;
    await sleep(options.intervalMs ?? 20);
  }
  return await check();
}

/** Formats a number for the table: thousands separators, few decimals. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return value.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}
