/**
 * Scenario `backlog`: does throughput hold as the queue grows? The worker runtime works
 * `backlogMeasured` jobs off
 *
 * 1. a backlog of `backlogSmall` (10k) scheduled jobs;
 * 2. a backlog of `backlogLarge` (1M) scheduled jobs, or the largest that can be built in the
 *    time left (built through `create_workflow` + `schedule_ready`, so with history and events);
 * 3. the same database after the large backlog was worked down set-based (so its jobs are
 *    finished, with all their history and events), plus `backlogSmall` new scheduled jobs.
 *
 * Each measurement stops after `backlogMeasured` completions or `backlogCapSeconds`, whichever
 * comes first, and is taken three times (the 10k backlog refilled in between); rows report the
 * median, the JSON all three. The ratios are (2) / (1) and (3) / (1); target >= 0.8. The claim's real plan at each size
 * (auto_explain of one `claim_jobs_for` call, ANALYZE and BUFFERS, nested statements) goes
 * into the JSON.
 *
 * @module
 */
import { type BenchDatabase, type ClaimPlans, explainClaim } from "./_db.ts";
import { type BenchContext, remainingSeconds, type ResultRow, type Scenario } from "./_harness.ts";
import { runWorkers } from "./processing.ts";

interface Measured {
  /** The median of `rates`. */
  rate: number;
  rates: number[];
  seconds: number;
  completed: number;
  plans: ClaimPlans;
}

/**
 * Before each measurement: VACUUM ANALYZE (as the processing scenario does after its fill) and
 * a CHECKPOINT. Without the vacuum, autovacuum starts on the freshly built tables (a million
 * rows inserted, a million updated) in the middle of the measurement and takes one of the two
 * cores; a backlog that grew over hours would have been vacuumed long before.
 */
async function settle(bdb: BenchDatabase): Promise<void> {
  await bdb.vacuum();
  await bdb.psql("checkpoint");
}

/** Repeats of each measurement; the row reports the median (one work-off lasts about a second). */
const REPEATS = 3;

/**
 * Works `backlogMeasured` jobs off `REPEATS` times and reports the median rate. `refill` runs
 * before every repeat after the first, so that each starts with the same backlog size.
 */
async function measure(
  ctx: BenchContext,
  bdb: BenchDatabase,
  label: string,
  refill?: () => Promise<unknown>,
): Promise<Measured> {
  const repeats = ctx.quick ? 1 : REPEATS;
  const rates: number[] = [];
  let plans: ClaimPlans | null = null;
  let seconds = 0;
  let completed = 0;
  for (let i = 0; i < repeats; i++) {
    if (i > 0 && refill) await refill();
    await settle(bdb);
    plans ??= await explainClaim(bdb, ctx.claimBatch);
    ctx.log(
      `backlog: ${label}: working off ${ctx.sizes.backlogMeasured.toLocaleString("en-US")} jobs` +
        (repeats > 1 ? ` (${i + 1} of ${repeats})` : ""),
    );
    const run = await runWorkers(bdb, ctx.sizes.backlogMeasured, ctx.workerSetup, {
      stopAfter: ctx.sizes.backlogMeasured,
      timeoutSeconds: ctx.sizes.backlogCapSeconds,
    });
    await bdb.closeAll();
    rates.push(run.completed / run.seconds);
    seconds += run.seconds;
    completed += run.completed;
  }
  const sorted = [...rates].sort((a, b) => a - b);
  return {
    rate: sorted[Math.floor(sorted.length / 2)]!,
    rates,
    seconds,
    completed,
    plans: plans!,
  };
}

function planSummary(plans: ClaimPlans): string {
  const exec = /Execution Time: ([\d.]+) ms/.exec(plans.claim)?.[1] ??
    /duration: ([\d.]+) ms/.exec(plans.claim)?.[1];
  const buffers = /Buffers: shared hit=(\d+)/.exec(plans.claim)?.[1];
  return plans.indexPath
    ? `claim of ${plans.limit}: index scan on ${plans.index}` +
      (exec ? `, ${exec} ms incl. triggers under auto_explain` : "") +
      (buffers ? `, ${buffers} buffers` : "")
    : "claim: NO index path";
}

/** Throughput at 10k and at 1M (or the largest size that fits) waiting, and with 1M finished. */
export const backlog: Scenario = {
  name: "backlog",
  description: "processing throughput with 10k and 1M jobs waiting, and with 1M finished",
  async run(ctx) {
    const { sizes } = ctx;
    const rows: ResultRow[] = [];
    const measured = sizes.backlogMeasured;

    // 1. the small backlog
    const small = await ctx.databases.create("backlog_small");
    let base: Measured;
    try {
      const fill = await small.fill(sizes.backlogSmall, { schedule: true });
      base = await measure(
        ctx,
        small,
        `${fill.built.toLocaleString("en-US")} waiting`,
        () => small.fill(sizes.backlogMeasured, { schedule: true }),
      );
      rows.push({
        scenario: "backlog",
        name: `${fill.built.toLocaleString("en-US")} waiting`,
        value: base.rate,
        unit: "jobs/s",
        count: base.completed,
        seconds: base.seconds,
        note: planSummary(base.plans),
        details: {
          waiting: fill.built,
          rates: base.rates,
          claimPlan: base.plans.claim,
          plans: base.plans.all,
        },
      });
    } finally {
      await small.drop();
    }

    // 2. the large backlog: as large as fits in the time left
    const large = await ctx.databases.create("backlog_large");
    try {
      // keep time for two measurements (each: analyze, checkpoint, explain, up to
      // backlogCapSeconds of work) and the clean-up; the rest goes 60:40 to building the
      // backlog and to finishing it
      const reserve = ctx.quick ? 6 : 60;
      const spare = Math.max(5, remainingSeconds(ctx) - reserve);
      const buildBudget = Math.min(sizes.backlogBuildSeconds, spare * 0.6);
      ctx.log(
        `backlog: building up to ${sizes.backlogLarge.toLocaleString("en-US")} waiting jobs ` +
          `(budget ${buildBudget.toFixed(0)} s)`,
      );
      const fill = await large.fill(sizes.backlogLarge, {
        schedule: true,
        budgetSeconds: buildBudget,
      });
      const complete = fill.built >= sizes.backlogLarge;
      const sizeNote = complete
        ? `built in ${fill.seconds.toFixed(0)} s`
        : `only ${fill.built.toLocaleString("en-US")} of ${
          sizes.backlogLarge.toLocaleString("en-US")
        } fit the time budget (${fill.seconds.toFixed(0)} s to build)`;
      ctx.log(`backlog: ${sizeNote}`);
      const big = await measure(ctx, large, `${fill.built.toLocaleString("en-US")} waiting`);
      rows.push({
        scenario: "backlog",
        name: `${fill.built.toLocaleString("en-US")} waiting`,
        value: big.rate,
        unit: "jobs/s",
        count: big.completed,
        seconds: big.seconds,
        note: `${planSummary(big.plans)}; ${sizeNote}`,
        details: {
          waiting: fill.built,
          requested: sizes.backlogLarge,
          buildSeconds: fill.seconds,
          rates: big.rates,
          claimPlan: big.plans.claim,
          plans: big.plans.all,
        },
      });
      rows.push({
        scenario: "backlog",
        name: `ratio ${abbreviate(fill.built)} / ${abbreviate(sizes.backlogSmall)} waiting`,
        value: big.rate / base.rate,
        unit: "ratio",
        target: { op: ">=", value: 0.8 },
        note: complete ? "" : `measured at ${fill.built.toLocaleString("en-US")}, not 1M`,
      });

      // 3. the large backlog finished (history and events in place), then fresh work
      const finishBudget = Math.min(
        sizes.backlogHistorySeconds,
        Math.max(3, remainingSeconds(ctx) - (ctx.quick ? 3 : 35)),
      );
      ctx.log(`backlog: finishing the backlog set-based (budget ${finishBudget.toFixed(0)} s)`);
      const done = await large.finish({ budgetSeconds: finishBudget });
      const left = Number(
        await large.value(
          `select count(*) from jobengine.jobs where status = 'scheduled'`,
        ),
      );
      const added = await large.fill(sizes.backlogSmall, { schedule: true });
      const history = Number(
        await large.value(
          `select count(*) from jobengine.job_history`,
        ),
      );
      const fin = await measure(
        ctx,
        large,
        `${done.completed.toLocaleString("en-US")} finished`,
        () => large.fill(sizes.backlogMeasured, { schedule: true }),
      );
      const finishedNote = `${done.completed.toLocaleString("en-US")} finished ` +
        `(${history.toLocaleString("en-US")} history rows), ${
          added.built.toLocaleString("en-US")
        } waiting` +
        (left > 0
          ? `; the finishing ran out of time with ${left.toLocaleString("en-US")} left`
          : "");
      rows.push({
        scenario: "backlog",
        name: `${abbreviate(done.completed)} finished + ${abbreviate(added.built)} waiting`,
        value: fin.rate,
        unit: "jobs/s",
        count: fin.completed,
        seconds: fin.seconds,
        note: `${planSummary(fin.plans)}; ${finishedNote}`,
        details: {
          finished: done.completed,
          historyRows: history,
          waiting: added.built,
          finishSeconds: done.seconds,
          rates: fin.rates,
          claimPlan: fin.plans.claim,
          plans: fin.plans.all,
        },
      });
      rows.push({
        scenario: "backlog",
        name: `ratio with ${abbreviate(done.completed)} finished / ${
          abbreviate(sizes.backlogSmall)
        } waiting`,
        value: fin.rate / base.rate,
        unit: "ratio",
        target: { op: ">=", value: 0.8 },
        note: finishedNote,
      });
    } finally {
      await large.drop();
    }
    for (const row of rows) {
      if (row.unit === "jobs/s" && ctx.baseline.queueJobsPerSecond) {
        row.ratio = {
          to: "SKIP LOCKED queue jobs/s",
          value: row.value! / ctx.baseline.queueJobsPerSecond,
        };
      }
      row.details = {
        ...row.details,
        workers: ctx.workerSetup,
        measuredJobs: measured,
        capSeconds: sizes.backlogCapSeconds,
      };
    }
    return rows;
  },
};

function abbreviate(n: number): string {
  if (n >= 1_000_000) return `${+(n / 1_000_000).toFixed(2)}M`;
  if (n >= 1_000) return `${+(n / 1_000).toFixed(1)}k`;
  return String(n);
}
