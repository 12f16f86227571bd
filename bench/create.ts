/**
 * Scenario `create`: jobs per second created
 *
 * - one per call through `JobStore.create`, 8 callers: on 8 connections (a `create_job`
 *   statement and a commit per job), and sharing one store over a pool of 8 with group intake;
 * - one per call through the HTTP app (`POST /api/v1/jobs`, `app.fetch` in-process, 8 callers on
 *   a pool of 8);
 * - in bulk through `create_workflow`, 1,000 jobs per call, answering the job rows
 *   (`createWorkflow`) or only their ids (`createWorkflowIds`).
 *
 * @module
 */
import { JobStore } from "../src/job/job_store.ts";
import { NOOP } from "./_db.ts";
import { buildApp } from "./_engine.ts";
import { type BenchContext, concurrentLoop, type ResultRow, type Scenario } from "./_harness.ts";

const CALLERS = 8;
/** Callers for the bulk path: one per core. */
const BULK_CALLERS = 2;
const BULK_BATCH = 1000;

/**
 * One job per `JobStore.create` call, 8 callers. `alone`: each caller has its own store on its
 * own connection, so every create is its own statement and commit. `grouped`: the callers share
 * one store over a pool of 8 with group intake (`groupCreates`, as the HTTP API runs it).
 */
async function createSql(ctx: BenchContext, mode: "alone" | "grouped"): Promise<ResultRow> {
  const bdb = await ctx.databases.create(`create_sql_${mode}`);
  try {
    const stores = mode === "alone"
      ? Array.from({ length: CALLERS }, (_, i) => new JobStore(bdb.open(1, `bench-creator-${i}`)))
      : [new JobStore(bdb.open(CALLERS, "bench-creators"), { groupCreates: true })];
    const store = (caller: number) => stores[caller % stores.length]!;
    // connect (and prepare) outside the measurement
    await Promise.all(
      Array.from({ length: CALLERS }, (_, c) => store(c).create(NOOP, { warmup: c })),
    );
    const before = await bdb.counters();
    const run = await concurrentLoop(
      CALLERS,
      (caller, i) => store(caller).create(NOOP, { i }),
      { seconds: ctx.sizes.createSeconds },
    );
    await bdb.closeAll();
    const per = await bdb.perJob(before, run.done);
    return {
      scenario: "create",
      name: mode === "alone"
        ? "create_job one per call, 8 callers (SQL)"
        : "create one per call, 8 callers, group intake (SQL)",
      value: run.done / run.seconds,
      unit: "jobs/s",
      target: { op: ">=", value: 3000 },
      count: run.done,
      seconds: run.seconds,
      commitsPerJob: per.commitsPerJob,
      walBytesPerJob: per.walBytesPerJob,
      walSyncsPerJob: per.walSyncsPerJob,
      note: mode === "alone"
        ? "JobStore.create on 8 connections: a statement and a commit per job"
        : "one JobStore (groupCreates) on a pool of 8",
    };
  } finally {
    await bdb.drop();
  }
}

async function createHttp(ctx: BenchContext): Promise<ResultRow> {
  const name = "POST /api/v1/jobs, 8 callers (in-process)";
  const bdb = await ctx.databases.create("create_http");
  try {
    const db = bdb.open(CALLERS, "bench-api");
    const app = buildApp(db);
    const post = async (i: number) => {
      const response = await app.fetch(
        new Request("http://bench.local/api/v1/jobs", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ type: NOOP, payload: { i } }),
        }),
      );
      await response.arrayBuffer();
      if (response.status !== 201) throw new Error(`POST /api/v1/jobs answered ${response.status}`);
    };
    await Promise.all(Array.from({ length: CALLERS }, (_, i) => post(-1 - i)));
    const before = await bdb.counters();
    const run = await concurrentLoop(CALLERS, (_, i) => post(i), {
      seconds: ctx.sizes.createSeconds,
    });
    await bdb.closeAll();
    const per = await bdb.perJob(before, run.done);
    return {
      scenario: "create",
      name,
      value: run.done / run.seconds,
      unit: "jobs/s",
      target: { op: ">=", value: 3000 },
      count: run.done,
      seconds: run.seconds,
      commitsPerJob: per.commitsPerJob,
      walBytesPerJob: per.walBytesPerJob,
      walSyncsPerJob: per.walSyncsPerJob,
      note: "app.fetch, pool of 8",
    };
  } finally {
    await bdb.drop();
  }
}

/**
 * Bulk create through `create_workflow`, 1,000 jobs per call: `rows` answers the full job rows
 * (`JobStore.createWorkflow`, what `POST /workflows` needs), `ids` only their ids
 * (`JobStore.createWorkflowIds`).
 */
async function createBulk(ctx: BenchContext, answer: "rows" | "ids"): Promise<ResultRow> {
  const bdb = await ctx.databases.create(`create_bulk_${answer}`);
  try {
    const stores = Array.from(
      { length: BULK_CALLERS },
      (_, i) => new JobStore(bdb.open(1, `bench-bulk-${i}`)),
    );
    const batch = (offset: number) =>
      Array.from(
        { length: BULK_BATCH },
        (_, k) => ({ ref: `j${k}`, type: NOOP, payload: { i: offset + k } }),
      );
    await Promise.all(stores.map((s) => s.createWorkflow(batch(0).slice(0, 10))));
    const calls = Math.max(1, Math.round(ctx.sizes.bulkJobs / BULK_BATCH));
    const before = await bdb.counters();
    const run = await concurrentLoop(
      BULK_CALLERS,
      (caller, i) =>
        answer === "rows"
          ? stores[caller]!.createWorkflow(batch(i * BULK_BATCH))
          : stores[caller]!.createWorkflowIds(batch(i * BULK_BATCH)),
      { count: calls },
    );
    await bdb.closeAll();
    const jobs = run.done * BULK_BATCH;
    const per = await bdb.perJob(before, jobs);
    return {
      scenario: "create",
      name: `create_workflow ${BULK_BATCH.toLocaleString("en-US")} per call (bulk)` +
        (answer === "ids" ? ", ids only" : ""),
      value: jobs / run.seconds,
      unit: "jobs/s",
      target: { op: ">=", value: 40_000 },
      count: jobs,
      seconds: run.seconds,
      commitsPerJob: per.commitsPerJob,
      walBytesPerJob: per.walBytesPerJob,
      walSyncsPerJob: per.walSyncsPerJob,
      note: `JobStore.${answer === "rows" ? "createWorkflow" : "createWorkflowIds"}, ` +
        `${BULK_CALLERS} callers`,
    };
  } finally {
    await bdb.drop();
  }
}

/** Creating jobs: one by one (SQL, HTTP) and in bulk. */
export const create: Scenario = {
  name: "create",
  description: "jobs/s created one per call (8 callers, SQL and HTTP) and 1,000 per call",
  async run(ctx) {
    const rows: ResultRow[] = [];
    for (const mode of ["alone", "grouped"] as const) {
      ctx.log(`create: JobStore.create, 8 callers, ${mode}`);
      const sql = await createSql(ctx, mode);
      if (ctx.baseline.pgbenchTps) {
        sql.ratio = { to: "pgbench -N tps", value: sql.value! / ctx.baseline.pgbenchTps };
      }
      rows.push(sql);
    }
    ctx.log("create: POST /api/v1/jobs, 8 callers");
    const http = await createHttp(ctx);
    if (http.value !== null && ctx.baseline.pgbenchTps) {
      http.ratio = { to: "pgbench -N tps", value: http.value / ctx.baseline.pgbenchTps };
    }
    rows.push(http);
    ctx.log("create: create_workflow x 1,000, job rows answered");
    rows.push(await createBulk(ctx, "rows"));
    ctx.log("create: create_workflow x 1,000, ids answered");
    rows.push(await createBulk(ctx, "ids"));
    return rows;
  },
};
