/**
 * Chaos scenario 2, database restart under load: on a cluster of its own, API clients submit jobs
 * over a real socket (`Deno.serve` on 127.0.0.1) while two workers and the scheduler run; the
 * server is restarted (`pg_ctl restart -m fast`) mid-run. The engine must reconnect by itself;
 * while the database is down the API answers 503 problem+json `database_unavailable` (every
 * request is bounded by a timeout: none may hang, and the process must not crash); clients
 * retry a 503 with the same idempotency key. Afterwards every submitted job exists exactly once
 * and completed exactly once (job_history).
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Cluster, startCluster } from "../../scripts/pg_cluster.ts";
import { createApp } from "../../src/api/app.ts";
import { migrate } from "../../src/db/migrate.ts";
import { createPostgresDatabase } from "../../src/db/postgres.ts";
import type { Database } from "../../src/db/port.ts";
import { JobScheduler } from "../../src/scheduler/job_scheduler.ts";
import { createWorker, type Worker } from "../../src/worker/mod.ts";
import {
  assertHistoryConsistent,
  assertStepExactlyOnce,
  assertTimelineMatchesHistory,
  delay,
  report,
  until,
} from "./_chaos.ts";

const CLIENTS = 4;
/** Jobs each client submits at least (it keeps going until the restart is over). */
const PER_CLIENT = 60;
/** Bound on every HTTP request: a request that takes longer is a hang. */
const REQUEST_TIMEOUT_MS = 5000;
const SILENT = { info() {}, warn() {}, error() {} };

interface Outcome {
  status: number | "timeout" | "network_error";
  ms: number;
  detail?: string;
}

interface Log {
  base: string;
  outcomes: Outcome[];
  anomalies: string[];
}

/** Sends one request bounded by the timeout; records its outcome and any anomaly. */
async function request(
  log: Log,
  method: string,
  path: string,
  body?: unknown,
): Promise<Outcome & { json?: unknown }> {
  const { base, outcomes, anomalies } = log;
  const t0 = performance.now();
  try {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const text = await response.text();
    const outcome: Outcome & { json?: unknown } = {
      status: response.status,
      ms: performance.now() - t0,
    };
    const type = response.headers.get("content-type") ?? "";
    try {
      outcome.json = JSON.parse(text);
    } catch {
      outcome.detail = text.slice(0, 200);
    }
    if (response.status === 503) {
      const code = (outcome.json as { code?: string } | undefined)?.code;
      if (!type.startsWith("application/problem+json") || code !== "database_unavailable") {
        anomalies.push(`${method} ${path}: 503 "${type}" ${text.slice(0, 200)}`);
      }
    } else if (response.status >= 300) {
      anomalies.push(`${method} ${path}: ${response.status} ${text.slice(0, 300)}`);
    }
    outcomes.push(outcome);
    return outcome;
  } catch (error) {
    const timedOut = error instanceof DOMException && error.name === "TimeoutError";
    const outcome: Outcome = {
      status: timedOut ? "timeout" : "network_error",
      ms: performance.now() - t0,
      detail: String(error),
    };
    anomalies.push(`${method} ${path}: ${outcome.status} after ${Math.round(outcome.ms)} ms`);
    outcomes.push(outcome);
    return outcome;
  }
}

Deno.test("database restart: the engine reconnects, the API answers 503 while down, no job is lost or doubled", async () => {
  const cluster = await startCluster({ fast: true });
  const dbs: Database[] = [];
  const workers: Worker[] = [];
  let server: Deno.HttpServer | undefined;
  let scheduler: JobScheduler | undefined;
  const started = performance.now();
  try {
    const url = await cluster.createDatabase("jobengine_restart");
    const open = (name: string, max: number) => {
      const db = createPostgresDatabase(url, { max, applicationName: name });
      dbs.push(db);
      return db;
    };
    const admin = open("chaos-admin", 2);
    await migrate(admin);

    const apiDb = open("chaos-api", 6);
    const app = createApp({ db: apiDb });
    server = Deno.serve(
      {
        hostname: "127.0.0.1",
        port: 0,
        onListen() {},
        onError: () => new Response(null, { status: 599 }),
      },
      app.fetch,
    );
    const base = `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`;
    scheduler = new JobScheduler(open("chaos-scheduler", 2), { intervalMs: 200, leaseSeconds: 5 });
    await scheduler.start();
    for (let i = 1; i <= 2; i++) {
      const worker = createWorker({
        db: open(`chaos-worker-${i}`, 3),
        workerId: `restart-worker-${i}`,
        leaseSeconds: 2,
        pollIntervalMs: 250,
        concurrency: 8,
        handlers: {
          restart: async () => {
            await delay(10);
            return { ok: true };
          },
        },
        logger: SILENT,
      });
      workers.push(worker);
      await worker.start();
    }

    const outcomes: Outcome[] = [];
    const anomalies: string[] = [];
    const keys = new Set<string>();
    const log: Log = { base, outcomes, anomalies };
    const send = (method: string, path: string, body?: unknown) => request(log, method, path, body);

    let restarting = false;
    let restartDone = false;
    let restartMs = 0;
    const accepted = () => keys.size;
    const clients = Array.from({ length: CLIENTS }, async (_, client) => {
      for (let n = 0; n < PER_CLIENT || !restartDone; n++) {
        const key = `restart-${client}-${n}`;
        // submit until accepted; a 503 is retried with the same idempotency key
        for (let attempt = 1;; attempt++) {
          const reply = await send("POST", "/api/v1/jobs", {
            type: "restart",
            payload: { client, n },
            idempotencyKey: key,
          });
          if (reply.status === 201 || reply.status === 200) {
            keys.add(key);
            const id = (reply.json as { id: string }).id;
            // read it back (also answered 503 while the database is down)
            await send("GET", `/api/v1/jobs/${id}`);
            break;
          }
          if (attempt > 200) throw new Error(`Job ${key} was never accepted`);
          await delay(reply.status === 503 ? 100 : 250);
        }
        await delay(5);
        if (n > 10_000) break;
      }
    });
    const restarter = (async () => {
      await until(() => accepted() >= (CLIENTS * PER_CLIENT) / 4, 60_000, "a quarter of the jobs");
      restarting = true;
      const t0 = performance.now();
      await cluster.restart();
      restartMs = performance.now() - t0;
      restartDone = true;
    })();
    await Promise.all([restarter, ...clients]);
    assert.ok(restarting);

    // every accepted job completes
    const completedCount = async () => {
      const [row] = await admin.query<{ n: number }>(
        `select count(*)::int as n from jobengine.jobs where status = 'completed'`,
      );
      return row!.n;
    };
    const waited = await until(
      async () => await completedCount() === keys.size,
      90_000,
      "all completions",
      100,
    );
    const ready = await send("GET", "/readyz");
    assert.equal(ready.status, 200, "ready again after the restart");

    const unavailable = outcomes.filter((o) => o.status === 503).length;
    const slowest = Math.max(...outcomes.map((o) => o.ms));
    report("database restart", {
      jobs: keys.size,
      requests: outcomes.length,
      answered503: unavailable,
      slowestRequestMs: Math.round(slowest),
      restartMs: Math.round(restartMs),
      drainMs: Math.round(waited),
      totalMs: Math.round(performance.now() - started),
      completedByWorkers: workers.map((w) => w.stats.completed).join("/"),
    });
    // each key is one job, and each job completed exactly once
    const [rows] = await admin.query<{ jobs: number; keys: number }>(
      `select count(*)::int as jobs, count(distinct idempotency_key)::int as keys from jobengine.jobs`,
    );
    assert.deepEqual(rows, { jobs: keys.size, keys: keys.size }, "no job lost, none doubled");
    const stored = await admin.query<{ key: string }>(
      `select idempotency_key as key from jobengine.jobs`,
    );
    assert.deepEqual(new Set(stored.map((row) => row.key)), keys);
    await assertStepExactlyOnce(admin, { from: "running", to: "completed" });
    const [creation] = await admin.query<{ bad: number }>(
      `select count(*)::int as bad from (select job_id from jobengine.job_history
        where from_status is null group by job_id having count(*) <> 1) x`,
    );
    assert.equal(creation!.bad, 0, "each job was created once");
    await assertHistoryConsistent(admin);
    await assertTimelineMatchesHistory(admin);
    // the API never hung: every answer in time, 2xx or 503 database_unavailable
    assert.deepEqual(
      anomalies,
      [],
      `every answer was 2xx or a 503 database_unavailable within ${REQUEST_TIMEOUT_MS} ms`,
    );
    assert.ok(unavailable > 0, "the API answered 503 while the database was down");
  } finally {
    await Promise.all(workers.map((w) => w.stop({ deadlineMs: 2000 })));
    await scheduler?.stop();
    await server?.shutdown();
    for (const db of dbs) await db.close();
    await cluster.stop();
  }
});

/** Runs `pg_ctl` on `cluster` (as its server user when this process is root). */
async function pgCtl(cluster: Cluster, args: string[]): Promise<void> {
  const path = `${cluster.binDir}/pg_ctl`;
  const root = Deno.uid() === 0;
  const out = await new Deno.Command(root ? "runuser" : path, {
    args: root ? ["-u", cluster.osUser, "--", path, ...args] : args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`pg_ctl ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

Deno.test("database outage: 503 while down, and served again within 2 s of the database coming back", async () => {
  const cluster = await startCluster({ fast: true });
  const dbs: Database[] = [];
  try {
    const url = await cluster.createDatabase("jobengine_outage");
    const admin = createPostgresDatabase(url, { max: 1, applicationName: "chaos-admin" });
    dbs.push(admin);
    await migrate(admin);
    const apiDb = createPostgresDatabase(url, { max: 6, applicationName: "chaos-api" });
    dbs.push(apiDb);
    const app = createApp({ db: apiDb });
    const post = async (n: number) => {
      const t0 = performance.now();
      const response = await app.request("/api/v1/jobs", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ type: "outage", idempotencyKey: `outage-${n}` }),
      });
      const body = await response.json();
      return {
        status: response.status,
        code: body.code as string | undefined,
        ms: performance.now() - t0,
      };
    };
    assert.equal((await post(0)).status, 201);

    // down for 3 s while clients keep calling: each call is a prompt 503
    await pgCtl(cluster, ["-D", cluster.dataDir, "-w", "-t", "60", "-m", "fast", "stop"]);
    const downUntil = performance.now() + 3000;
    const during: { status: number; code?: string; ms: number }[] = [];
    let n = 1;
    await Promise.all([1, 2, 3].map(async () => {
      while (performance.now() < downUntil) {
        during.push(await post(n++));
        await delay(20);
      }
    }));
    await pgCtl(cluster, ["-D", cluster.dataDir, "-l", cluster.logFile, "-w", "-t", "60", "start"]);
    const upAt = performance.now();

    // back: the pool reconnects by itself, promptly
    const after = await Promise.all([1, 2, 3, 4].map(() => post(n++)));
    const servedWithinMs = performance.now() - upAt;
    report("database outage", {
      requestsWhileDown: during.length,
      slowestWhileDownMs: Math.round(Math.max(...during.map((r) => r.ms))),
      servedAgainWithinMs: Math.round(servedWithinMs),
    });
    assert.ok(during.length > 0);
    assert.deepEqual(
      during.filter((r) => r.status !== 503 || r.code !== "database_unavailable"),
      [],
      "every call while down is a 503 database_unavailable",
    );
    const slowest = Math.max(...during.map((r) => r.ms));
    assert.ok(
      slowest < 2000,
      `a call while the database was down took ${Math.round(slowest)} ms to answer 503 ` +
        `(expected < 2000 ms): queries wait out the pool's reconnect backoff`,
    );
    assert.deepEqual(after.map((r) => r.status), [201, 201, 201, 201]);
    assert.ok(
      servedWithinMs < 2000,
      `the first requests after the database came back took ${Math.round(servedWithinMs)} ms ` +
        `(expected < 2000 ms): the pool waits out its reconnect backoff instead of reconnecting`,
    );
  } finally {
    for (const db of dbs) await db.close();
    await cluster.stop();
  }
});
