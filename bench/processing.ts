/**
 * Scenario `processing`: scheduled no-op jobs worked down, history and events written for every
 * transition, counted until the database shows none unfinished.
 *
 * - `worker`: the worker runtime (`createWorker`), 8 slots in all;
 * - `engine SQL`: the SQL ceiling without the runtime: pgbench, one client per core, each
 *   claiming a batch of the worker's claim size with `claim_jobs_for` and completing it with
 *   `complete_jobs`, as the baseline's one-table queue does with its own two statements.
 *
 * @module
 */
import type { BenchDatabase } from "./_db.ts";
import { startWorkers, type WorkerSetup } from "./_engine.ts";
import {
  type BenchContext,
  type ResultRow,
  type Scenario,
  sleep,
  SQL_CLIENTS,
} from "./_harness.ts";

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

/**
 * The engine's claim and completion without the runtime, as pgbench runs them: claim a batch
 * with `claim_jobs_for` (one transaction), then `complete_jobs` exactly those leases (a second).
 */
function engineScript(batch: number): string {
  return [
    "select quote_literal(coalesce(array_agg(id), '{}')::text) as ids," +
    " quote_literal(coalesce(array_agg(lease_id), '{}')::text) as leases, count(*) as n" +
    ` from jobengine.claim_jobs_for('bench-pgbench', null, ${batch}, 120, null) \\gset`,
    "select count(*) from jobengine.complete_jobs(:ids::uuid[], :leases::uuid[]," +
    " array_fill(null::jsonb, array[:n]::int[]));",
    "",
  ].join("\n");
}

async function engineSqlRow(ctx: BenchContext): Promise<ResultRow> {
  const batch = ctx.claimBatch;
  const clients = SQL_CLIENTS;
  // every claim finds a full batch: a batch per client is left over
  const perClient = Math.max(1, Math.floor(ctx.sizes.sqlCeilingJobs / (batch * clients)) - 1);
  const bdb = await ctx.databases.create("processing_sql");
  try {
    await prepareScheduled(bdb, ctx.sizes.sqlCeilingJobs, ctx);
    ctx.log(`processing: engine SQL, pgbench -c ${clients} -t ${perClient}, batch ${batch}`);
    const before = await bdb.counters();
    const run = await bdb.pgbench(
      ["-n", "-c", String(clients), "-j", String(clients), "-t", String(perClient)],
      engineScript(batch),
    );
    await bdb.waitIdle();
    const completed = Number(
      await bdb.value(`select count(*) from jobengine.jobs where status = 'completed'`),
    );
    const per = await bdb.perJob(before, completed);
    return {
      scenario: "processing",
      name: `engine SQL, ${
        completed.toLocaleString("en-US")
      } jobs, ${clients} clients x batch ${batch}`,
      value: run.tps * (completed / run.transactions),
      unit: "jobs/s",
      count: completed,
      seconds: run.transactions / run.tps,
      commitsPerJob: per.commitsPerJob,
      walBytesPerJob: per.walBytesPerJob,
      walSyncsPerJob: per.walSyncsPerJob,
      note: "pgbench: claim_jobs_for tx + complete_jobs tx, no runtime (the engine's SQL ceiling)",
      details: { script: engineScript(batch), transactions: run.transactions, tps: run.tps },
    };
  } finally {
    await bdb.drop();
  }
}

/** Working down a prepared backlog: the runtime and the engine's SQL without it. */
export const processing: Scenario = {
  name: "processing",
  description: "scheduled no-op jobs worked down with full history and events",
  async run(ctx) {
    const worker = await workerRow(ctx);
    const engine = await engineSqlRow(ctx);
    const limit = ctx.baseline.queueJobsPerSecond;
    if (limit) {
      for (const row of [worker, engine]) {
        if (row.value !== null) {
          row.ratio = { to: "SKIP LOCKED queue jobs/s", value: row.value / limit };
        }
      }
    }
    if (worker.value !== null && engine.value) {
      const share = Math.round((worker.value / engine.value) * 100);
      worker.note += `; ${share}% of the engine's SQL ceiling (next row)`;
    }
    return [worker, engine];
  },
};
