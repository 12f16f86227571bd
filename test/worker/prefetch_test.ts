/**
 * The worker's local queue (`prefetch`): larger claims, never more handlers than `concurrency`,
 * and a queued job that is cancelled never starts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createWorker, type WorkerLogger } from "../../src/worker/mod.ts";
import type { Database } from "../../src/db/port.ts";
import type { JobStore } from "../../src/job/job_store.ts";
import { withStore } from "../_store.ts";
import { until } from "../_wait.ts";

const SILENT: WorkerLogger = { info() {}, warn() {}, error() {} };

async function completedJobs(db: Database): Promise<number> {
  const rows = await db.query<{ n: number }>(
    "select count(*)::int as n from jobengine.jobs where status = 'completed'",
  );
  return rows[0]!.n;
}

/** Creates `n` scheduled jobs of `type` (one workflow, then schedule_ready). */
async function scheduledJobs(
  { db, store }: { db: Database; store: JobStore },
  type: string,
  n: number,
): Promise<void> {
  await db.query(
    `select jobengine.create_workflow((select jsonb_agg(jsonb_build_object('ref', 'r' || i, 'type', $1::text))
       from generate_series(1, $2::int) i))`,
    [type, n],
  );
  await store.scheduleReady(1000);
}

Deno.test("createWorker({ prefetch }) claims ahead but runs at most `concurrency` handlers", async () => {
  await withStore(async ({ db, store }) => {
    await scheduledJobs({ db, store }, "pf", 300);
    let active = 0;
    let peak = 0;
    const worker = createWorker({
      db,
      concurrency: 3,
      prefetch: 20,
      logger: SILENT,
      handlers: {
        pf: async () => {
          active++;
          peak = Math.max(peak, active);
          await new Promise((resolve) => setTimeout(resolve, 1));
          active--;
          return { ok: true };
        },
      },
    });
    await worker.start();
    try {
      await until(async () => (await completedJobs(db)) === 300, 30_000, "300 jobs to complete");
    } finally {
      await worker.stop();
    }
    assert.equal(peak, 3, "never more handlers than concurrency");
    const claims = await db.query<{ n: number; biggest: number }>(
      `select count(*)::int as n, max(c)::int as biggest from (
         select occurred_at, count(*) as c from jobengine.job_history
          where to_status = 'running' group by occurred_at) s`,
    );
    assert.ok(
      claims[0]!.biggest > 3,
      `some claim took more than 3 jobs (biggest ${claims[0]!.biggest})`,
    );
    const runs = await db.query<{ runs: number; jobs: number }>(
      `select runs, count(*)::int as jobs from (
         select job_id, count(*) filter (where to_status = 'completed')::int as runs
           from jobengine.job_history group by job_id) s group by runs`,
    );
    assert.deepEqual(runs, [{ runs: 1, jobs: 300 }]);
  });
});

Deno.test("createWorker({ prefetch }) claims in batches of at least half its window while jobs are held", async () => {
  await withStore(async ({ db, store }) => {
    await scheduledJobs({ db, store }, "pq", 1000);
    // window = concurrency + prefetch = 100: a claim takes at least 50 jobs unless nothing is held
    const worker = createWorker({
      db,
      concurrency: 4,
      prefetch: 96,
      logger: SILENT,
      handlers: { pq: () => Promise.resolve({ ok: true }) },
    });
    await worker.start();
    try {
      await until(async () => (await completedJobs(db)) === 1000, 30_000, "1,000 jobs to complete");
    } finally {
      await worker.stop();
    }
    // one claim statement = one transaction = one started_at (now()) for all its jobs
    const claims = await db.query<{ size: number }>(
      `select count(*)::int as size from jobengine.jobs where type = 'pq' group by started_at order by 1`,
    );
    const sizes = claims.map((c) => c.size);
    assert.equal(sizes.reduce((a, b) => a + b, 0), 1000);
    assert.ok(Math.max(...sizes) <= 100, `no claim beyond the window (sizes ${sizes})`);
    // claims below the floor happen only when the local queue was empty: at the very end, or
    // when the other claim in flight came back first; a handful at most
    const small = sizes.filter((n) => n < 50).length;
    assert.ok(small <= 3, `at most 3 claims below 50 jobs (sizes ${sizes})`);
    assert.ok(sizes.length <= 25, `1,000 jobs in at most 25 claims (${sizes.length})`);
  });
});

Deno.test("createWorker({ prefetch }) refills an empty local queue below the claim floor, so no slot idles", async () => {
  await withStore(async ({ db, store }) => {
    await scheduledJobs({ db, store }, "slow", 12);
    // window = concurrency + prefetch = 6, floor 3: with every slot busy and the queue empty,
    // only 2 fit; they are claimed at once rather than after a third handler has finished
    const gates: Array<() => void> = [];
    let finished = false;
    const worker = createWorker({
      db,
      concurrency: 4,
      prefetch: 2,
      logger: SILENT,
      handlers: {
        slow: () =>
          finished ? Promise.resolve({}) : new Promise((resolve) => gates.push(() => resolve({}))),
      },
    });
    const running = async () =>
      (await db.query<{ n: number }>(
        "select count(*)::int as n from jobengine.jobs where type = 'slow' and status = 'running'",
      ))[0]!.n;
    await worker.start();
    try {
      await until(
        async () => gates.length === 4 && await running() === 6,
        5000,
        "4 running, 2 queued",
      );
      // two handlers finish: the two queued jobs take their slots, the queue is empty
      gates[0]!();
      gates[1]!();
      await until(() => gates.length === 6, 5000, "the queued jobs to start");
      await until(async () => await completedJobs(db) === 2, 5000, "the two completions");
      // 2 completed and 6 running: 8 claimed, so the empty queue was refilled
      await until(async () => await running() === 6, 5000, "a claim of 2 to refill the queue");
    } finally {
      finished = true;
      for (const open of gates) open();
      await worker.stop();
    }
  });
});

Deno.test("createWorker({ prefetch }): a queued job cancelled before its turn never starts", async () => {
  await withStore(async ({ db, store }) => {
    const { job: first } = await store.create("gate", {}, { priority: 10 });
    const { job: queued } = await store.create("gate", {}, { priority: 1 });
    await store.schedule(first.id);
    await store.schedule(queued.id);
    const started: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => release = resolve);
    const worker = createWorker({
      db,
      concurrency: 1,
      prefetch: 5,
      logger: SILENT,
      handlers: {
        gate: async (job) => {
          started.push(job.id);
          await gate;
          return {};
        },
      },
    });
    const aborted = new Promise<string>((resolve) =>
      worker.on("aborted", ({ job, reason }) => {
        if (job.id === queued.id) resolve(reason);
      })
    );
    await worker.start();
    try {
      // both are claimed (one running, one queued locally), only the first has started
      await until(
        async () => (await store.get(queued.id)).status === "running",
        5000,
        "the queued claim",
      );
      assert.deepEqual(started, [first.id]);
      await store.cancel(queued.id, "operator_cancelled");
      assert.equal(await aborted, "cancelled", "the queued job leaves the queue when cancelled");
      release();
      await until(
        async () => (await store.get(first.id)).status === "completed",
        5000,
        "the first job",
      );
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(started, [first.id], "the cancelled job's handler never ran");
      assert.equal((await store.get(queued.id)).status, "cancelled");
    } finally {
      await worker.stop();
    }
  });
});

Deno.test("createWorker({ prefetch }) beyond claim_jobs' 1,000-job limit still claims (in calls of 1,000)", async () => {
  await withStore(async ({ db, store }) => {
    await scheduledJobs({ db, store }, "big", 50);
    const worker = createWorker({
      db,
      concurrency: 2,
      prefetch: 5000,
      logger: SILENT,
      handlers: { big: () => Promise.resolve(null) },
    });
    await worker.start();
    try {
      await until(async () => (await completedJobs(db)) === 50, 10_000, "50 jobs to complete");
    } finally {
      await worker.stop();
    }
  });
});
