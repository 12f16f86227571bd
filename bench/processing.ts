/**
 * Scenario `processing`: scheduled no-op jobs worked down, history and events written for every
 * transition, counted until the database shows none unfinished.
 *
 * - `worker`: the worker runtime (`createWorker`), 8 slots in all;
 * - `sql-loop`: the SQL ceiling without the runtime: 8 loops, each on its own connection,
 *   `claim_jobs_for` a batch of the worker's size, then `complete_jobs` it.
 *
 * @module
 */
import { JobStore } from "../src/job/job_store.ts";
import type { BenchDatabase } from "./_db.ts";
import { startWorkers, type WorkerSetup } from "./_engine.ts";
import { type BenchContext, type ResultRow, type Scenario, sleep } from "./_harness.ts";

/** Fills `n` scheduled jobs, vacuums, checkpoints; returns the fill time. */
export async function prepareScheduled(
  bdb: BenchDatabase,
  n: number,
  ctx: BenchContext,
): Promise<{ built: number; seconds: number }> {
  ctx.log(`${bdb.name}: filling ${n.toLocaleString("en-US")} scheduled jobs`);
  const fill = await bdb.fill(n, { schedule: true, parallel: 2 });
  await bdb.vacuum();
  await bdb.psql("checkpoint");
  ctx.log(
    `${bdb.name}: filled ${fill.built.toLocaleString("en-US")} in ${fill.seconds.toFixed(1)} s`,
  );
  return fill;
}

/**
 * Works `expected` jobs down with the worker runtime; resolves to the seconds from start until
 * the workers completed them all and the database shows none unfinished. `stopAfter` stops
 * counting at that many completions instead (a backlog stays behind).
 */
export async function runWorkers(
  bdb: BenchDatabase,
  expected: number,
  setup: WorkerSetup,
  options: { stopAfter?: number; timeoutSeconds?: number } = {},
): Promise<{ seconds: number; completed: number; polls: number; timedOut: boolean }> {
  const watch = bdb.open(1, "bench-watch");
  await watch.query("select 1");
  const t0 = performance.now();
  const workers = await startWorkers((max, name) => bdb.open(max, name), setup);
  const goal = options.stopAfter ?? expected;
  const timeoutAt = t0 + (options.timeoutSeconds ?? 300) * 1000;
  let polls = 0;
  let end = 0;
  let timedOut = false;
  while (true) {
    if (performance.now() >= timeoutAt) {
      timedOut = true;
      end = performance.now();
      break;
    }
    if (workers.completed() >= goal) {
      end = performance.now();
      if (options.stopAfter !== undefined) break;
      polls++;
      if (!(await bdb.unfinished(watch))) break;
    }
    await sleep(2);
  }
  const completed = workers.completed();
  await workers.stop();
  await watch.close();
  return { seconds: (end - t0) / 1000, completed, polls, timedOut };
}

/** The SQL loop: `loops` connections, each claiming `batch` and completing it, until none is left. */
export async function runSqlLoop(
  bdb: BenchDatabase,
  options: { loops: number; batch: number; stopAfter?: number; timeoutSeconds?: number },
): Promise<{ seconds: number; completed: number; timedOut: boolean }> {
  const stores = Array.from(
    { length: options.loops },
    (_, i) => new JobStore(bdb.open(1, `bench-sql-loop-${i}`)),
  );
  await Promise.all(stores.map((s) => s.isSealed()));
  let completed = 0;
  let empty = 0;
  const goal = options.stopAfter ?? Infinity;
  const t0 = performance.now();
  const until = t0 + (options.timeoutSeconds ?? 300) * 1000;
  let timedOut = false;
  await Promise.all(stores.map(async (store, i) => {
    while (completed < goal && empty < options.loops) {
      if (performance.now() >= until) {
        timedOut = true;
        break;
      }
      const jobs = await store.claim({
        workerId: `bench-sql-loop-${i}`,
        types: null,
        limit: options.batch,
        leaseSeconds: 120,
      });
      if (jobs.length === 0) {
        empty++;
        continue;
      }
      const done = await store.completeMany(jobs.map((j) => ({ id: j.id, leaseId: j.leaseId })));
      completed += done.length;
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, completed, timedOut };
}

async function workerRow(ctx: BenchContext): Promise<ResultRow> {
  const n = ctx.sizes.processingJobs;
  const bdb = await ctx.databases.create("processing_worker");
  try {
    const fill = await prepareScheduled(bdb, n, ctx);
    const setup = ctx.workerSetup;
    ctx.log(`processing: worker runtime, ${setup.instances} x ${setup.concurrency} slots`);
    const before = await bdb.counters();
    const run = await runWorkers(bdb, fill.built, setup, {
      timeoutSeconds: ctx.sizes.processingCapSeconds,
    });
    await bdb.closeAll();
    const per = await bdb.perJob(before, run.completed, run.polls);
    const left = Number(
      await bdb.value(
        `select count(*) from jobengine.jobs where status <> 'completed'`,
      ),
    );
    const history = Number(await bdb.value(`select count(*) from jobengine.job_history`));
    const events = Number(await bdb.value(`select count(*) from jobengine.timeline_events`));
    return {
      scenario: "processing",
      name: `worker runtime, ${n.toLocaleString("en-US")} jobs, 8 slots`,
      value: run.completed / run.seconds,
      unit: "jobs/s",
      target: { op: ">=", value: 20_000 },
      count: run.completed,
      seconds: run.seconds,
      commitsPerJob: per.commitsPerJob,
      walBytesPerJob: per.walBytesPerJob,
      walSyncsPerJob: per.walSyncsPerJob,
      note:
        `${setup.instances} instance(s) x concurrency ${setup.concurrency}, prefetch ${
          setup.prefetch ?? 0
        }, pool ${setup.poolSize} each` +
        (run.timedOut
          ? `; TIME CAP ${ctx.sizes.processingCapSeconds} s hit: ${
            run.completed.toLocaleString("en-US")
          } of ${fill.built.toLocaleString("en-US")} done`
          : "") +
        (!run.timedOut && left > 0 ? `; ${left} jobs NOT completed` : ""),
      details: {
        ...setup,
        timedOut: run.timedOut,
        unfinishedAfter: left,
        historyRows: history,
        eventRows: events,
        fillSeconds: fill.seconds,
      },
    };
  } finally {
    await bdb.drop();
  }
}

async function sqlLoopRow(ctx: BenchContext): Promise<ResultRow> {
  const n = ctx.sizes.sqlLoopJobs;
  const bdb = await ctx.databases.create("processing_sql");
  try {
    await prepareScheduled(bdb, n, ctx);
    ctx.log(`processing: sql-loop, 8 loops x batch ${ctx.claimBatch}`);
    const before = await bdb.counters();
    const run = await runSqlLoop(bdb, {
      loops: 8,
      batch: ctx.claimBatch,
      timeoutSeconds: ctx.sizes.sqlLoopCapSeconds,
    });
    await bdb.closeAll();
    const per = await bdb.perJob(before, run.completed);
    return {
      scenario: "processing",
      name: `sql-loop, ${n.toLocaleString("en-US")} jobs, 8 loops x batch ${ctx.claimBatch}`,
      value: run.completed / run.seconds,
      unit: "jobs/s",
      count: run.completed,
      seconds: run.seconds,
      commitsPerJob: per.commitsPerJob,
      walBytesPerJob: per.walBytesPerJob,
      walSyncsPerJob: per.walSyncsPerJob,
      note: "claim_jobs_for + complete_jobs, no runtime (SQL ceiling)" +
        (run.timedOut ? `; TIME CAP ${ctx.sizes.sqlLoopCapSeconds} s hit` : ""),
    };
  } finally {
    await bdb.drop();
  }
}

/** Working down a prepared backlog: the runtime and the bare SQL loop. */
export const processing: Scenario = {
  name: "processing",
  description: "scheduled no-op jobs worked down with full history and events",
  async run(ctx) {
    const rows = [await workerRow(ctx), await sqlLoopRow(ctx)];
    const limit = ctx.baseline.queueJobsPerSecond;
    if (limit) {
      for (const row of rows) {
        if (row.value !== null) {
          row.ratio = { to: "SKIP LOCKED queue jobs/s", value: row.value / limit };
        }
      }
    }
    return rows;
  },
};
