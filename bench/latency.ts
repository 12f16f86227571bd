/**
 * Scenario `latency`: enqueue-to-start. An idle worker (LISTEN wake-ups) and the scheduler run;
 * jobs are created 20 ms apart; each latency is from the start of the create call to the start
 * of the handler, on the same clock (`performance.now()`, one process).
 *
 * - `create -> scheduler`: `create_job`, then the JobScheduler promotes it (NOTIFY driven);
 * - `create + schedule_job`: create and an explicit schedule in one transaction (the worker's
 *   wake-up path alone).
 *
 * @module
 */
import type { Database } from "../src/db/port.ts";
import { JobStore } from "../src/job/job_store.ts";
import { NOOP } from "./_db.ts";
import { startScheduler, startWorkers } from "./_engine.ts";
import { percentile, type ResultRow, round, type Scenario, sleep, waitUntil } from "./_harness.ts";

const SPACING_MS = 20;

type Create = (db: Database, i: number) => Promise<unknown>;

const viaScheduler: Create = (db, i) => new JobStore(db).create(NOOP, { i });
const explicit: Create = (db, i) =>
  db.transaction(async (tx) => {
    const store = new JobStore(tx);
    const { job } = await store.create(NOOP, { i });
    await store.schedule(job.id);
  });

/** Enqueue-to-start latency percentiles. */
export const latency: Scenario = {
  name: "latency",
  description: "create-call start -> handler start, idle worker, jobs 20 ms apart",
  async run(ctx) {
    const n = ctx.sizes.latencyJobs;
    const bdb = await ctx.databases.create("latency");
    const started = new Map<number, number>();
    try {
      const open = (max: number, name: string) => bdb.open(max, name);
      const scheduler = await startScheduler(open);
      const workers = await startWorkers(open, {
        instances: 1,
        concurrency: 8,
        poolSize: 2,
        handler: (job) => {
          started.set((job.payload as { i: number }).i, performance.now());
          return Promise.resolve(null);
        },
      });
      const creator = open(2, "bench-creator");
      const rows: ResultRow[] = [];
      let offset = 0;
      for (
        const [name, create, target] of [
          ["create -> scheduler -> handler", viaScheduler, true],
          ["create + schedule_job in one tx -> handler", explicit, false],
        ] as const
      ) {
        // warm-up: connections, prepared statements, the worker's first claim
        for (let k = 0; k < 5; k++) await create(creator, -1 - k - offset);
        await sleep(200);
        ctx.log(`latency: ${name}, ${n} jobs ${SPACING_MS} ms apart`);
        const sentAt = new Map<number, number>();
        const calls: Promise<unknown>[] = [];
        const t0 = performance.now() + 10;
        for (let k = 0; k < n; k++) {
          const i = offset + k;
          const wait = t0 + k * SPACING_MS - performance.now();
          if (wait > 0) await sleep(wait);
          sentAt.set(i, performance.now());
          calls.push(create(creator, i));
        }
        await Promise.all(calls);
        await waitUntil(
          () => Promise.resolve([...sentAt.keys()].every((i) => started.has(i))),
          { timeoutMs: 10_000, intervalMs: 10 },
        );
        const latencies = [...sentAt].flatMap(([i, t]) => {
          const s = started.get(i);
          return s === undefined ? [] : [s - t];
        });
        const missing = n - latencies.length;
        rows.push({
          scenario: "latency",
          name: `${name}, p99`,
          value: percentile(latencies, 99),
          unit: "ms",
          target: target ? { op: "<=", value: 10 } : undefined,
          count: latencies.length,
          note:
            `p50 ${percentile(latencies, 50).toFixed(1)}, p95 ${
              percentile(latencies, 95).toFixed(1)
            }, max ${Math.max(...latencies).toFixed(1)} ms` +
            (missing ? `; ${missing} never started` : ""),
          details: {
            p50: round(percentile(latencies, 50)),
            p95: round(percentile(latencies, 95)),
            p99: round(percentile(latencies, 99)),
            max: round(Math.max(...latencies)),
            mean: round(latencies.reduce((a, b) => a + b, 0) / latencies.length),
            missing,
            spacingMs: SPACING_MS,
          },
        });
        offset += n + 100;
      }
      await workers.stop();
      await scheduler.stop();
      return rows;
    } finally {
      await bdb.drop();
    }
  },
};
