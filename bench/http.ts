/**
 * Scenario `http`: the HTTP API over a real socket.
 *
 * - `POST /api/v1/jobs` requests per second, autocannon (npm, its own process, keep-alive
 *   connections) against `Deno.serve` + the Hono app, on PostgreSQL and on PGlite (persisted in
 *   a data directory, the embedded default; created and migrated once, cached in
 *   `bench/.cache/`, then copied);
 * - the full lifecycle on PGlite: 8 callers create jobs one by one while the scheduler and a
 *   worker run in the same process; jobs per second until none is left.
 *
 * @module
 */
import type { Database } from "../src/db/port.ts";
import { createPgliteDatabase } from "../src/db/pglite.ts";
import { migrate, MIGRATIONS, sha256Hex } from "../src/db/migrate.ts";
import { JobStore } from "../src/job/job_store.ts";
import { JobScheduler } from "../src/scheduler/job_scheduler.ts";
import { NOOP } from "./_db.ts";
import { buildApp, startWorkers } from "./_engine.ts";
import {
  type BenchContext,
  concurrentLoop,
  type ResultRow,
  type Scenario,
  sleep,
} from "./_harness.ts";
import type { LoadRequest, LoadSummary } from "./_load_client.ts";

const CONNECTIONS = 8;

async function load(url: string, seconds: number): Promise<LoadSummary> {
  const request: LoadRequest = {
    url,
    connections: CONNECTIONS,
    seconds,
    body: JSON.stringify({ type: NOOP, payload: { from: "autocannon" } }),
  };
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./_load_client.ts", import.meta.url).pathname,
      JSON.stringify(request),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`The load generator failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as LoadSummary;
}

async function serveAndLoad(
  db: Database,
  seconds: number,
): Promise<{ summary: LoadSummary; created: number }> {
  const app = buildApp(db);
  // warm-up: the first requests prepare statements
  for (let i = 0; i < 5; i++) {
    await (await app.fetch(
      new Request("http://bench.local/api/v1/jobs", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ type: NOOP, payload: { warmup: i } }),
      }),
    )).arrayBuffer();
  }
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => app.fetch(request),
  );
  try {
    const summary = await load(`http://127.0.0.1:${server.addr.port}/api/v1/jobs`, seconds);
    const rows = await db.query<{ n: number }>(
      `select count(*)::int8 as n from jobengine.jobs where payload ->> 'from' = 'autocannon'`,
    );
    return { summary, created: Number(rows[0]!.n) };
  } finally {
    await server.shutdown();
  }
}

function httpRow(name: string, summary: LoadSummary, created: number, note: string): ResultRow {
  const lost = summary.non2xx + summary.errors + summary.timeouts;
  return {
    scenario: "http",
    name,
    value: summary.requestsPerSecond,
    unit: "req/s",
    count: summary.ok,
    seconds: summary.seconds,
    note: `${note}; p50 ${summary.latencyP50} ms, p99 ${summary.latencyP99} ms` +
      (lost ? `; ${lost} failed` : "") +
      (created !== summary.ok ? `; ${created} jobs in the database` : ""),
    details: { ...summary, jobsInDatabase: created, connections: CONNECTIONS },
  };
}

async function onPostgres(ctx: BenchContext): Promise<ResultRow> {
  const bdb = await ctx.databases.create("http_pg");
  try {
    const db = bdb.open(CONNECTIONS, "bench-api");
    ctx.log(`http: autocannon -> POST /api/v1/jobs on PostgreSQL, ${ctx.sizes.httpSeconds} s`);
    const before = await bdb.counters();
    const { summary, created } = await serveAndLoad(db, ctx.sizes.httpSeconds);
    await bdb.closeAll();
    const per = await bdb.perJob(before, Math.max(1, created));
    const row = httpRow(
      "POST /api/v1/jobs, PostgreSQL (socket)",
      summary,
      created,
      `autocannon, ${CONNECTIONS} connections, pool ${CONNECTIONS}`,
    );
    row.commitsPerJob = per.commitsPerJob;
    row.walBytesPerJob = per.walBytesPerJob;
    row.walSyncsPerJob = per.walSyncsPerJob;
    if (ctx.baseline.pgbenchTps) {
      row.ratio = { to: "pgbench -N tps", value: row.value! / ctx.baseline.pgbenchTps };
    }
    return row;
  } finally {
    await bdb.drop();
  }
}

/**
 * A migrated PGlite data directory, copied for each use: PGlite's initdb takes 10 s here, so the
 * migrated directory is kept in `bench/.cache/` (git-ignored), keyed by the migrations'
 * checksums, and reused by later runs.
 */
async function pgliteTemplate(
  ctx: BenchContext,
): Promise<{ root: string; copy(): Promise<string> }> {
  const key = (await sha256Hex(MIGRATIONS.map((m) => `${m.name}:${m.checksum}`).join("\n")))
    .slice(0, 16);
  const cache = new URL(`./.cache/pglite-${key}`, import.meta.url).pathname;
  try {
    await Deno.stat(`${cache}/PG_VERSION`);
    ctx.log(`http: reusing the migrated PGlite data directory ${cache}`);
  } catch {
    ctx.log("http: creating and migrating a PGlite data directory (cached for later runs)");
    const building = `${cache}.building-${Deno.pid}`;
    const db = await createPgliteDatabase({ dataDir: building });
    try {
      await migrate(db);
    } finally {
      await db.close();
    }
    await Deno.remove(cache, { recursive: true }).catch(() => {});
    await Deno.rename(building, cache);
  }
  const root = await Deno.makeTempDir({ prefix: "bench-pglite-" });
  let n = 0;
  return {
    root,
    async copy() {
      const dir = `${root}/copy${++n}`;
      const out = await new Deno.Command("cp", { args: ["-a", cache, dir] }).output();
      if (!out.success) throw new Error(`Cannot copy the PGlite data directory to ${dir}`);
      return dir;
    },
  };
}

async function onPglite(ctx: BenchContext): Promise<ResultRow[]> {
  const rows: ResultRow[] = [];
  const template = await pgliteTemplate(ctx);
  try {
    rows.push(...await pgliteRuns(ctx, template.copy));
  } finally {
    await Deno.remove(template.root, { recursive: true }).catch(() => {});
  }
  return rows;
}

async function pgliteRuns(ctx: BenchContext, copy: () => Promise<string>): Promise<ResultRow[]> {
  const rows: ResultRow[] = [];
  {
    const db = await createPgliteDatabase({ dataDir: await copy() });
    try {
      ctx.log(`http: autocannon -> POST /api/v1/jobs on PGlite, ${ctx.sizes.httpSeconds} s`);
      const { summary, created } = await serveAndLoad(db, ctx.sizes.httpSeconds);
      rows.push(httpRow(
        "POST /api/v1/jobs, PGlite (socket)",
        summary,
        created,
        `autocannon, ${CONNECTIONS} connections`,
      ));
    } finally {
      await db.close();
    }
  }
  {
    const db = await createPgliteDatabase({ dataDir: await copy() });
    try {
      const n = ctx.sizes.pgliteLifecycleJobs;
      ctx.log(`http: lifecycle on PGlite, ${n.toLocaleString("en-US")} jobs`);
      // one PGlite instance serves everything; the pools' close() must not close it
      const shared: Database = { ...db, kind: db.kind, close: () => Promise.resolve() };
      const scheduler = new JobScheduler(shared, { instanceId: "bench-scheduler" });
      await scheduler.start();
      const workers = await startWorkers(() => shared, {
        instances: 1,
        concurrency: 8,
        poolSize: 1,
      });
      const store = new JobStore(shared);
      const t0 = performance.now();
      await concurrentLoop(8, (_, i) => store.create(NOOP, { i }), { count: n });
      const deadline = performance.now() + 120_000;
      while (performance.now() < deadline && workers.completed() < n) await sleep(5);
      const seconds = (performance.now() - t0) / 1000;
      const completed = workers.completed();
      await workers.stop();
      await scheduler.stop();
      rows.push({
        scenario: "http",
        name: `lifecycle on PGlite, ${n.toLocaleString("en-US")} jobs`,
        value: completed / seconds,
        unit: "jobs/s",
        count: completed,
        seconds,
        note: "8 creators, scheduler, 1 worker x 8 slots, one process",
      });
    } finally {
      await db.close();
    }
  }
  return rows;
}

/** The HTTP API over a socket, on PostgreSQL and PGlite. */
export const http: Scenario = {
  name: "http",
  description: "POST /api/v1/jobs req/s with autocannon (PostgreSQL, PGlite); lifecycle on PGlite",
  async run(ctx) {
    return [await onPostgres(ctx), ...await onPglite(ctx)];
  },
};
