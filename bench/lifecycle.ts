/**
 * Scenario `lifecycle`: create -> schedule (the JobScheduler) -> claim -> complete, end to end.
 * 8 callers create jobs one by one (`JobStore.create`, one store with group intake over a pool
 * of 8, as the HTTP API runs it) while the scheduler and the workers run; jobs per second from
 * the first create until the database shows none left.
 *
 * @module
 */
import { JobStore } from "../src/job/job_store.ts";
import { NOOP } from "./_db.ts";
import { startScheduler, startWorkers } from "./_engine.ts";
import { concurrentLoop, type Scenario, sleep } from "./_harness.ts";

const CREATORS = 8;

/** The full lifecycle on PostgreSQL. */
export const lifecycle: Scenario = {
  name: "lifecycle",
  description: "create (8 callers, one by one) -> scheduler -> worker claim -> complete",
  async run(ctx) {
    const n = ctx.sizes.lifecycleJobs;
    const bdb = await ctx.databases.create("lifecycle");
    try {
      const open = (max: number, name: string) => bdb.open(max, name);
      const scheduler = await startScheduler(open);
      const workers = await startWorkers(open, ctx.workerSetup);
      const store = new JobStore(open(CREATORS, "bench-creators"), { groupCreates: true });
      await Promise.all(Array.from({ length: CREATORS }, () => store.isSealed()));
      const watch = open(1, "bench-watch");
      await watch.query("select 1");
      ctx.log(`lifecycle: ${n.toLocaleString("en-US")} jobs, ${CREATORS} creators`);
      const before = await bdb.counters();
      const t0 = performance.now();
      const created = await concurrentLoop(
        CREATORS,
        (_, i) => store.create(NOOP, { i }),
        { count: n, seconds: ctx.sizes.lifecycleCapSeconds },
      );
      let polls = 0;
      let timedOut = false;
      const deadline = t0 + ctx.sizes.lifecycleCapSeconds * 1000;
      while (true) {
        if (performance.now() >= deadline) {
          timedOut = true;
          break;
        }
        if (workers.completed() >= created.done) {
          polls++;
          if (!(await bdb.unfinished(watch))) break;
        }
        await sleep(2);
      }
      const seconds = (performance.now() - t0) / 1000;
      const completed = workers.completed();
      const stats = { ...scheduler.scheduler.stats };
      await workers.stop();
      await scheduler.stop();
      await bdb.closeAll();
      const per = await bdb.perJob(before, completed, polls);
      const history = Number(await bdb.value(`select count(*) from jobengine.job_history`));
      return [{
        scenario: "lifecycle",
        name: `create -> schedule -> claim -> complete, ${n.toLocaleString("en-US")} jobs`,
        value: completed / seconds,
        unit: "jobs/s",
        count: completed,
        seconds,
        commitsPerJob: per.commitsPerJob,
        walBytesPerJob: per.walBytesPerJob,
        walSyncsPerJob: per.walSyncsPerJob,
        ratio: ctx.baseline.pgbenchTps
          ? { to: "pgbench -N tps", value: completed / seconds / ctx.baseline.pgbenchTps }
          : undefined,
        note: (timedOut
          ? `TIME CAP ${ctx.sizes.lifecycleCapSeconds} s hit: ${
            completed.toLocaleString("en-US")
          } completed; `
          : "") +
          `creates alone ${(created.done / created.seconds).toFixed(0)} jobs/s (group intake); ` +
          `scheduler + ${ctx.workerSetup.instances} x ${ctx.workerSetup.concurrency} worker slots`,
        details: {
          createSeconds: created.seconds,
          schedulerTicks: stats.ticks,
          schedulerPromoted: stats.scheduled,
          historyRows: history,
          created: created.done,
          timedOut,
        },
      }];
    } finally {
      await bdb.drop();
    }
  },
};
