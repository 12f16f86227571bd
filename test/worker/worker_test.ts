/**
 * Tests of the worker runtime against real PostgreSQL (and PGlite for the embedded wake-up):
 * throughput without loss or double runs, cancellation and lease loss through `ctx.signal`,
 * failure recording, draining on stop and on SIGTERM, and sealed mode proven at a socket.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/api/app.ts";
import { createPgliteDatabase } from "../../src/db/pglite.ts";
import type { Database } from "../../src/db/port.ts";
import { migrate } from "../../src/db/migrate.ts";
import type { ClaimedJob } from "../../src/job/job.ts";
import { JobStore } from "../../src/job/job_store.ts";
import {
  createWorker,
  JobAbortedError,
  type JobContext,
  type Worker,
  type WorkerLogger,
} from "../../src/worker/mod.ts";
import { withStore } from "../_store.ts";
import { startTcpProxy } from "../api/_client.ts";
import { createPostgresDatabase } from "../../src/db/postgres.ts";
import { until } from "../_wait.ts";
import { countingListener } from "../_listener.ts";

const SILENT: WorkerLogger = { info() {}, warn() {}, error() {} };

function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => resolve = r);
  return { promise, resolve };
}

/** Resolves when `signal` aborts, with its reason; never rejects. */
function aborted(signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve(signal.reason);
    signal.addEventListener("abort", () => resolve(signal.reason), { once: true });
  });
}

/** Creates a job and schedules it at once. */
async function scheduledJob(
  store: JobStore,
  type: string,
  options: { payload?: unknown; maxRetries?: number } = {},
): Promise<string> {
  const { job } = await store.create(type, options.payload ?? {}, {
    retryPolicy: { maxRetries: options.maxRetries ?? 3, initialDelayMs: 0, jitter: 0 },
  });
  await store.schedule(job.id);
  return job.id;
}

async function stopAll(workers: Worker[]): Promise<void> {
  await Promise.all(workers.map((worker) => worker.stop({ deadlineMs: 1000 })));
}

Deno.test("createWorker() runs 2,000 jobs on 4 workers: none lost, none run twice (job_history)", async () => {
  await withStore(async ({ db, store, connect }) => {
    const runs = new Map<string, number>();
    const handlers = {
      bulk: async (job: ClaimedJob) => {
        runs.set(job.id, (runs.get(job.id) ?? 0) + 1);
        if (Math.random() < 0.1) await new Promise((resolve) => setTimeout(resolve, 1));
        return { n: (job.payload as { n: number }).n };
      },
    };
    const workers = [1, 2, 3, 4].map((i) =>
      createWorker({ db: connect(3), handlers, workerId: `bulk-${i}`, logger: SILENT })
    );
    await Promise.all(workers.map((worker) => worker.start()));
    try {
      await db.query(
        `select count(*) from generate_series(1, 2000) g,
           lateral jobengine.create_job(p_type => 'bulk', p_payload => jsonb_build_object('n', g)) j`,
      );
      const started = performance.now();
      while (await store.scheduleReady(1000) > 0) { /* promote them all */ }
      const completed = () => workers.reduce((sum, w) => sum + w.stats.completed, 0);
      await until(() => completed() === 2000, 60_000, "2,000 completions");
      const elapsed = performance.now() - started;
      console.log(
        `2,000 jobs on 4 workers x 8 slots: ${Math.round(elapsed)} ms ` +
          `(${Math.round(2000 / (elapsed / 1000))} jobs/s); per worker: ` +
          workers.map((w) => w.stats.completed).join(", "),
      );
    } finally {
      await stopAll(workers);
    }

    const [totals] = await db.query<{ completed: number; started: number; other: number }>(
      `select count(*) filter (where from_status = 'running' and to_status = 'completed')::int as completed,
              count(*) filter (where from_status = 'scheduled' and to_status = 'running')::int as started,
              count(*) filter (where to_status in ('failed', 'cancelled'))::int as other
         from jobengine.job_history`,
    );
    assert.deepEqual(totals, { completed: 2000, started: 2000, other: 0 });
    const twice = await db.query(
      `select job_id from jobengine.job_history
        where from_status = 'running' and to_status = 'completed'
        group by job_id having count(*) <> 1`,
    );
    assert.equal(twice.length, 0, "every job completed exactly once");
    const [jobs] = await db.query<{ n: number; results: number }>(
      `select count(*)::int as n, count(distinct (result ->> 'n'))::int as results
         from jobengine.jobs where status = 'completed' and type = 'bulk'`,
    );
    assert.deepEqual(jobs, { n: 2000, results: 2000 });
    assert.equal(runs.size, 2000);
    assert.ok([...runs.values()].every((n) => n === 1), "no handler ran twice");
    for (const worker of workers) {
      assert.ok(worker.stats.completed > 0, `${worker.workerId} worked`);
    }
  });
});

Deno.test("createWorker() wakes on LISTEN jobengine_ready, not on its poll (PostgreSQL)", async () => {
  await withStore(async ({ store, connect }) => {
    const done = deferred<number>();
    const worker = createWorker({
      db: connect(2),
      handlers: { wake: () => Promise.resolve(done.resolve(performance.now())) },
      pollIntervalMs: 60_000,
      logger: SILENT,
    });
    await worker.start();
    try {
      const scheduledAt = performance.now();
      await scheduledJob(store, "wake");
      const ranAt = await done.promise;
      assert.ok(ranAt - scheduledAt < 3000, `woke after ${Math.round(ranAt - scheduledAt)} ms`);
    } finally {
      await worker.stop();
    }
  });
});

Deno.test("createWorker() wakes on LISTEN jobengine_ready on the embedded PGlite", async () => {
  const db = await createPgliteDatabase();
  try {
    await migrate(db);
    const store = new JobStore(db);
    const worker = createWorker({
      db,
      handlers: { embedded: (job) => Promise.resolve({ echo: job.payload }) },
      pollIntervalMs: 60_000,
      logger: SILENT,
    });
    await worker.start();
    try {
      const id = await scheduledJob(store, "embedded", { payload: { hello: "pglite" } });
      await until(async () => (await store.get(id)).status === "completed", 3000, "completion");
      assert.deepEqual((await store.get(id)).result, { echo: { hello: "pglite" } });
    } finally {
      await worker.stop();
    }
  } finally {
    await db.close();
  }
});

Deno.test("createWorker() completes a job with the handler's result; ctx.heartbeat() extends the lease", async () => {
  await withStore(async ({ store, connect }) => {
    let expiresBefore = "";
    const worker = createWorker({
      db: connect(2),
      handlers: {
        echo: async (job: ClaimedJob, ctx: JobContext) => {
          expiresBefore = job.leaseExpiresAt;
          await new Promise((resolve) => setTimeout(resolve, 20));
          await ctx.heartbeat();
          return { payload: job.payload, when: new Date(0) };
        },
      },
      logger: SILENT,
    });
    await worker.start();
    try {
      const id = await scheduledJob(store, "echo", { payload: { x: 1 } });
      await until(async () => (await store.get(id)).status === "completed", 5000, "completion");
      const job = await store.get(id);
      assert.deepEqual(job.result, { payload: { x: 1 }, when: "1970-01-01T00:00:00.000Z" });
      const history = await store.history(id);
      assert.deepEqual(history.map((h) => h.toStatus), [
        "pending",
        "scheduled",
        "running",
        "completed",
      ]);
      assert.equal(history[2]!.actor, worker.workerId);
      assert.ok(expiresBefore !== "");
    } finally {
      await worker.stop();
    }
  });
});

Deno.test("createWorker(): a thrown error fails the job with message, code and stack stored", async () => {
  await withStore(async ({ store, connect }) => {
    class QuotaError extends Error {
      code = "quota_exceeded";
      constructor(message: string) {
        super(message);
        this.name = "QuotaError";
      }
    }
    const worker = createWorker({
      db: connect(2),
      handlers: {
        coded: () => Promise.reject(new QuotaError("Quota of 10 exceeded")),
        plain: () => Promise.reject(new TypeError("x is not a function")),
        thrown: () => Promise.reject("a string"),
      },
      logger: SILENT,
    });
    await worker.start();
    try {
      const coded = await scheduledJob(store, "coded", { maxRetries: 0 });
      const plain = await scheduledJob(store, "plain", { maxRetries: 0 });
      const thrown = await scheduledJob(store, "thrown", { maxRetries: 1 });
      await until(
        async () =>
          (await Promise.all([coded, plain, thrown].map((id) => store.get(id))))
            .every((job) => job.status === "failed" && job.terminal),
        5000,
        "three terminal failures",
      );
      const codedJob = await store.get(coded);
      assert.equal(codedJob.lastError?.message, "Quota of 10 exceeded");
      assert.equal(codedJob.lastError?.code, "quota_exceeded");
      assert.match(String(codedJob.lastError?.stack), /QuotaError: Quota of 10 exceeded\n\s+at /);
      const plainJob = await store.get(plain);
      assert.equal(plainJob.lastError?.code, "TypeError");
      assert.equal(plainJob.lastError?.message, "x is not a function");
      const thrownJob = await store.get(thrown);
      assert.equal(thrownJob.attempt, 2, "retried once, then terminal");
      assert.deepEqual(thrownJob.lastError, { message: "a string", code: "non_error_thrown" });
      // the last failure is visible once committed, a moment before the worker counts it
      await until(() => worker.stats.failed >= 4, 1000, "the worker to count four failures");
      assert.equal(worker.stats.failed, 4);
    } finally {
      await worker.stop();
    }
  });
});

Deno.test("createWorker(): cancelling a running job aborts its handler's ctx.signal at once", async () => {
  await withStore(async ({ store, connect }) => {
    const started = deferred<AbortSignal>();
    const worker = createWorker({
      db: connect(2),
      handlers: {
        long: (_job: ClaimedJob, ctx: JobContext) => {
          started.resolve(ctx.signal);
          return new Promise((_, reject) => {
            ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason));
          });
        },
      },
      logger: SILENT,
    });
    const abortedJobs: string[] = [];
    worker.on("aborted", ({ job, reason }) => abortedJobs.push(`${job.id}:${reason}`));
    await worker.start();
    try {
      const id = await scheduledJob(store, "long");
      const signal = await started.promise;
      const cancelledAt = performance.now();
      await store.cancel(id, "operator changed their mind");
      const reason = await aborted(signal);
      const latency = performance.now() - cancelledAt;
      assert.ok(reason instanceof JobAbortedError);
      assert.equal(reason.reason, "cancelled");
      // Heartbeats come every 10 s here (and the bound is loose for a loaded CI machine):
      // the abort came from jobengine_events.
      assert.ok(latency < 3000, `aborted ${Math.round(latency)} ms after the cancel`);
      await until(() => abortedJobs.length === 1, 2000, "the aborted event");
      assert.deepEqual(abortedJobs, [`${id}:cancelled`]);
      assert.equal(worker.running, 0);
      const job = await store.get(id);
      assert.equal(job.status, "cancelled");
      assert.deepEqual((await store.history(id)).map((h) => h.toStatus).slice(-1), ["cancelled"]);
    } finally {
      await worker.stop();
    }
  });
});

Deno.test("createWorker(): a heartbeat refused because the job was cancelled aborts with reason cancelled", async () => {
  await withStore(async ({ store, connect }) => {
    const started = deferred<JobContext>();
    const worker = createWorker({
      db: connect(2),
      handlers: {
        beat: (_job: ClaimedJob, ctx: JobContext) => {
          started.resolve(ctx);
          return aborted(ctx.signal);
        },
      },
      logger: SILENT,
    });
    await worker.start();
    try {
      const id = await scheduledJob(store, "beat");
      const ctx = await started.promise;
      await store.cancel(id);
      // Whichever comes first, the events check or this heartbeat, the reason is the same.
      await ctx.heartbeat().catch(() => {});
      const reason = await aborted(ctx.signal) as JobAbortedError;
      assert.equal(reason.reason, "cancelled");
      await assert.rejects(ctx.heartbeat(), JobAbortedError);
    } finally {
      await worker.stop();
    }
  });
});

Deno.test("createWorker(): periodic heartbeats keep every held job's lease past its first expiry", async () => {
  await withStore(async ({ store, connect, db }) => {
    const abortedJobs: string[] = [];
    const worker = createWorker({
      db: connect(2),
      concurrency: 2,
      leaseSeconds: 1,
      heartbeatIntervalMs: 250,
      handlers: {
        slow: async (job: ClaimedJob, ctx: JobContext) => {
          ctx.signal.addEventListener("abort", () => abortedJobs.push(job.id));
          // twice the lease, without calling ctx.heartbeat()
          await new Promise((resolve) =>
            setTimeout(resolve, 2000 + (job.payload as { n: number }).n)
          );
          return { n: (job.payload as { n: number }).n };
        },
      },
      logger: SILENT,
    });
    await worker.start();
    try {
      const first = await scheduledJob(store, "slow", { payload: { n: 0 } });
      await new Promise((resolve) => setTimeout(resolve, 300)); // a second claim, another lease
      const second = await scheduledJob(store, "slow", { payload: { n: 300 } });
      await until(
        async () =>
          (await store.get(first)).status === "completed" &&
          (await store.get(second)).status === "completed",
        6000,
        "both jobs to complete",
      );
      assert.deepEqual(abortedJobs, []);
      for (const id of [first, second]) {
        const job = await store.get(id);
        assert.equal(job.status, "completed");
        assert.equal(job.attempt, 1, "never lost its lease, never ran again");
      }
      const [row] = await db.query<{ n: number }>(
        `select count(*)::int as n from jobengine.job_history where to_status = 'running'`,
      );
      assert.equal(row!.n, 2);
    } finally {
      await worker.stop();
    }
  });
});

Deno.test("createWorker(): a lease lost to expiry aborts the handler and the job runs again", async () => {
  await withStore(async ({ store, connect }) => {
    const reasons: string[] = [];
    const worker = createWorker({
      db: connect(2),
      leaseSeconds: 1,
      heartbeatIntervalMs: 60_000, // a stalled heartbeat: the lease lapses after 1 s
      handlers: {
        stall: async (job: ClaimedJob, ctx: JobContext) => {
          if (job.attempt === 1) {
            const reason = await aborted(ctx.signal) as JobAbortedError;
            reasons.push(reason.reason);
            throw reason;
          }
          return { attempt: job.attempt };
        },
      },
      logger: SILENT,
    });
    await worker.start();
    try {
      const id = await scheduledJob(store, "stall", { maxRetries: 2 });
      await until(() => reasons.length === 1, 3000, "the handler to be aborted");
      assert.deepEqual(reasons, ["lease_lost"]);
      await until(async () => (await store.reapExpiredLeases()) === 1, 3000, "the reaper");
      await until(async () => (await store.get(id)).status === "completed", 5000, "the retry");
      const job = await store.get(id);
      assert.equal(job.attempt, 2);
      assert.deepEqual(job.result, { attempt: 2 });
      const history = await store.history(id);
      assert.deepEqual(
        history.map((h) => `${h.fromStatus}->${h.toStatus}:${h.reason}`).slice(2),
        [
          "scheduled->running:claimed",
          "running->failed:lease_expired",
          "failed->scheduled:retry",
          "scheduled->running:claimed",
          "running->completed:completed",
        ],
      );
      assert.equal(worker.stats.aborted, 1);
    } finally {
      await worker.stop();
    }
  });
});

Deno.test("Worker.stop() drains: no new claims, running handlers finish before the deadline", async () => {
  await withStore(async ({ store, connect }) => {
    const started = deferred();
    const worker = createWorker({
      db: connect(2),
      handlers: {
        slow: async () => {
          started.resolve();
          await new Promise((resolve) => setTimeout(resolve, 300));
          return "done";
        },
      },
      logger: SILENT,
    });
    await worker.start();
    const id = await scheduledJob(store, "slow");
    await started.promise;
    const stopping = worker.stop({ deadlineMs: 5000 });
    const later = await scheduledJob(store, "slow");
    await stopping;
    assert.equal(worker.running, 0);
    assert.equal((await store.get(id)).status, "completed");
    assert.equal((await store.get(id)).result, "done");
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal((await store.get(later)).status, "scheduled", "nothing claimed while stopping");
  });
});

Deno.test("Worker.stop() aborts handlers still running at the deadline and releases their jobs", async () => {
  await withStore(async ({ store, connect }) => {
    const started = deferred<AbortSignal>();
    const worker = createWorker({
      db: connect(2),
      handlers: {
        // ignores its signal: the worker must not wait for it
        stuck: (_job: ClaimedJob, ctx: JobContext) => {
          started.resolve(ctx.signal);
          return new Promise(() => {});
        },
      },
      logger: SILENT,
    });
    await worker.start();
    // its only attempt: a shutdown is not its failure, so it is not failed for good
    const id = await scheduledJob(store, "stuck", { maxRetries: 0 });
    const signal = await started.promise;
    const stoppedAt = performance.now();
    await worker.stop({ deadlineMs: 150 });
    const took = performance.now() - stoppedAt;
    assert.ok(took >= 140 && took < 5000, `stop took ${Math.round(took)} ms`);
    assert.equal((signal.reason as JobAbortedError).reason, "shutdown");
    const job = await store.get(id);
    assert.equal(job.status, "scheduled", "released for another worker");
    assert.equal(job.terminal, false);
    assert.equal(job.lastError?.code, "worker_shutdown");
    assert.equal(worker.stats.released, 1);
  });
});

Deno.test("Worker.stop() hands back jobs queued by prefetch at once: none starts during the drain, none is failed", async () => {
  await withStore(async ({ store, connect }) => {
    const started: string[] = [];
    const first = deferred();
    const worker = createWorker({
      db: connect(2),
      concurrency: 1,
      prefetch: 5,
      handlers: {
        queued: (job: ClaimedJob, ctx: JobContext) => {
          started.push(job.id);
          first.resolve();
          // finishes when the drain aborts it, or after 300 ms
          return new Promise((resolve) => {
            const timer = setTimeout(resolve, 300);
            ctx.signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
          });
        },
      },
      logger: SILENT,
    });
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push(await scheduledJob(store, "queued", { maxRetries: 0 }));
    await worker.start();
    await first.promise;
    await until(() => worker.running === 4, 5000, "all four to be held");
    await worker.stop({ deadlineMs: 2000 });
    assert.equal(started.length, 1, "no queued job started during the drain");
    const jobs = await Promise.all(ids.map((id) => store.get(id)));
    const runner = jobs.find((job) => job.id === started[0])!;
    assert.equal(runner.status, "completed");
    for (const job of jobs.filter((job) => job.id !== started[0])) {
      assert.deepEqual(
        { status: job.status, terminal: job.terminal, code: job.lastError?.code },
        { status: "scheduled", terminal: false, code: "worker_shutdown" },
      );
    }
    assert.equal(worker.stats.released, 3);
  });
});

Deno.test("A worker process drains on SIGTERM: a running job completes, a stuck one is released", async () => {
  await withStore(async ({ store, url }) => {
    for (const mode of ["finish", "stuck"] as const) {
      const id = await scheduledJob(store, `sigterm-${mode}`, { maxRetries: 3 });
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", new URL("./_sigterm_worker.ts", import.meta.url).pathname, mode],
        env: { DATABASE_URL: url },
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let output = "";
      while (!output.includes("started ")) {
        const { value, done } = await reader.read();
        if (done) break;
        output += value;
      }
      assert.match(output, new RegExp(`started ${id}`));
      child.kill("SIGTERM");
      const rest = (async () => {
        while (!(await reader.read()).done) { /* drain */ }
      })();
      const [status, stderr] = await Promise.all([
        child.status,
        new Response(child.stderr).text(),
        rest,
      ]);
      assert.equal(status.code, 0, stderr);
      const job = await store.get(id);
      if (mode === "finish") {
        assert.equal(job.status, "completed");
        assert.deepEqual(job.result, { finished: true });
      } else {
        assert.equal(job.status, "scheduled");
        assert.equal(job.lastError?.code, "worker_shutdown");
      }
    }
  });
});

// ------------------------------------------------------------------------------------------------
// Sealed mode: the proof is a socket that counts connections.

Deno.test("Sealed: fetch, WebSocket and Deno.connect in a handler fail with egress_denied, terminal, and the socket counts zero", async () => {
  const target = countingListener();
  try {
    await withStore(async ({ db, store, connect }) => {
      const url = `http://127.0.0.1:${target.port}/exfiltrate`;
      const worker = createWorker({
        db: connect(2),
        sealed: true,
        handlers: {
          "egress.fetch": async () => (await fetch(url)).text(),
          "egress.websocket": () => {
            new WebSocket(`ws://127.0.0.1:${target.port}/`);
            return Promise.resolve("opened");
          },
          "egress.connect": async () => {
            const conn = await Deno.connect({ hostname: "127.0.0.1", port: target.port });
            conn.close();
          },
          // swallows the refusal: the job must still fail
          "egress.swallowed": async () => {
            try {
              await fetch(url);
            } catch { /* ignored on purpose */ }
            return "pretend all is well";
          },
        },
        logger: SILENT,
      });
      await worker.start();
      const types = ["egress.fetch", "egress.websocket", "egress.connect", "egress.swallowed"];
      const ids: string[] = [];
      try {
        assert.equal(worker.sealed, true);
        for (const type of types) ids.push(await scheduledJob(store, type, { maxRetries: 3 }));
        await until(
          async () =>
            (await Promise.all(ids.map((id) => store.get(id)))).every((job) =>
              job.status === "failed"
            ),
          5000,
          "four failures",
        );
      } finally {
        await worker.stop();
      }
      const apis = ["fetch", "WebSocket", "Deno.connect", "fetch"];
      for (const [i, id] of ids.entries()) {
        const job = await store.get(id);
        assert.equal(job.terminal, true, `${types[i]} is not retried`);
        assert.equal(job.attempt, 1);
        assert.equal(job.lastError?.code, "egress_denied");
        assert.deepEqual(job.lastError?.details, {
          host: "127.0.0.1",
          port: target.port,
          api: apis[i],
        });
        const events = await db.query<{ data: Record<string, unknown>; actor: string }>(
          `select data, actor from jobengine.timeline_events
            where type = 'sealed.egress_blocked' and subject_id = $1::uuid`,
          [id],
        );
        assert.equal(events.length, 1, `one sealed.egress_blocked event for ${types[i]}`);
        assert.deepEqual(events[0]!.data, { host: "127.0.0.1", port: target.port, api: apis[i] });
        assert.equal(events[0]!.actor, worker.workerId);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(target.count(), 0, "not one connection reached the listener");
      assert.equal(typeof globalThis.fetch, "function");
    });

    // Unsealed, the same handler reaches the listener: the test can see traffic.
    await withStore(async ({ store, connect }) => {
      const worker = createWorker({
        db: connect(2),
        sealed: false,
        handlers: {
          "egress.fetch": async () =>
            (await fetch(`http://127.0.0.1:${target.port}/exfiltrate`)).text(),
        },
        logger: SILENT,
      });
      await worker.start();
      try {
        const id = await scheduledJob(store, "egress.fetch");
        await until(async () => (await store.get(id)).status === "completed", 5000, "completion");
        assert.equal((await store.get(id)).result, "ok");
      } finally {
        await worker.stop();
      }
      assert.equal(target.count(), 1);
    });
  } finally {
    await target.close();
  }
});

Deno.test("Sealed by the database: a worker follows set_sealed(), and a plain UPDATE of the settings row too", async () => {
  await withStore(async ({ db, store, connect }) => {
    const worker = createWorker({
      db: connect(2),
      handlers: { noop: () => Promise.resolve() },
      logger: SILENT,
    });
    await worker.start();
    const rawUpdate = async (sealed: boolean) => {
      await db.query(`update jobengine.settings set value = $1::jsonb where key = 'sealed'`, [
        JSON.stringify(sealed),
      ]);
    };
    try {
      // what /system reports follows the row; the guard must as well (it missed a plain UPDATE)
      for (const seal of [(sealed: boolean) => store.setSealed(sealed), rawUpdate]) {
        assert.equal(worker.sealed, false);
        await seal(true);
        await until(() => worker.sealed, 2000, "the worker to seal");
        await seal(false);
        await until(() => !worker.sealed, 2000, "the worker to unseal");
      }
    } finally {
      await worker.stop();
    }
    assert.equal(worker.sealed, false);
  });
});

Deno.test("Sealed by the database: a forged NOTIFY does not unseal a worker, and a seal no NOTIFY announced is found by the poll", async () => {
  await withStore(async ({ db, store, connect }) => {
    await store.setSealed(true);
    const worker = createWorker({
      db: connect(2),
      handlers: { noop: () => Promise.resolve() },
      pollIntervalMs: 50,
      logger: SILENT,
    });
    await worker.start();
    try {
      assert.equal(worker.sealed, true);
      // any role that may connect can NOTIFY; the database is still sealed
      await db.query(`notify jobengine_ready, 'sealed:false'`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(worker.sealed, true, "a forged payload took the guard down");
      // unsealed, then sealed with the settings trigger off (a restore, logical replication):
      // no NOTIFY at all; the poll's re-check finds it
      await store.setSealed(false);
      await until(() => !worker.sealed, 2000, "the worker to unseal");
      await db.transaction(async (tx) => {
        await tx.query(`set local session_replication_role = replica`);
        await tx.query(`update jobengine.settings set value = 'true' where key = 'sealed'`);
      });
      await until(() => worker.sealed, 3000, "the poll to find the seal");
    } finally {
      await worker.stop();
    }
  });
});

// ------------------------------------------------------------------------------------------------
// Remote mode: the same handlers against the HTTP API, served on 127.0.0.1.

/** Serves the HTTP API over `db` on 127.0.0.1 at a free port. */
function serveApi(db: Database): { baseUrl: string; close(): Promise<void> } {
  const app = createApp({ db });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
  return {
    baseUrl: `http://127.0.0.1:${server.addr.port}`,
    close: () => server.shutdown(),
  };
}

Deno.test("createWorker({ baseUrl }) runs the same handlers over the HTTP API, for every tenant", async () => {
  await withStore(async ({ db, store }) => {
    const api = serveApi(db);
    const worker = createWorker({
      baseUrl: api.baseUrl,
      handlers: {
        "remote.ok": (job: ClaimedJob) => Promise.resolve({ n: (job.payload as { n: number }).n }),
        "remote.fail": () =>
          Promise.reject(Object.assign(new Error("remote boom"), { code: "boom" })),
      },
      pollIntervalMs: 200,
      logger: SILENT,
    });
    await worker.start();
    try {
      await db.query(
        `select count(*) from generate_series(1, 200) g,
           lateral jobengine.create_job(p_type => 'remote.ok', p_payload => jsonb_build_object('n', g),
             p_options => jsonb_build_object('tenantId', case when g % 2 = 0 then 'acme' else 'default' end)) j`,
      );
      const { job: failing } = await store.create("remote.fail", {}, {
        tenantId: "acme",
        retryPolicy: { maxRetries: 0 },
      });
      const started = performance.now();
      while (await store.scheduleReady(1000) > 0) { /* promote them all */ }
      await until(
        () => worker.stats.completed === 200 && worker.stats.failed === 1,
        20_000,
        "200 jobs",
      );
      console.log(
        `200 jobs over HTTP, 1 worker x 8 slots: ${Math.round(performance.now() - started)} ms`,
      );
      const [counts] = await db.query<{ completed: number; tenants: number }>(
        `select count(*)::int as completed, count(distinct tenant_id)::int as tenants
           from jobengine.jobs where type = 'remote.ok' and status = 'completed'`,
      );
      assert.deepEqual(counts, { completed: 200, tenants: 2 });
      const failed = await store.get(failing.id);
      assert.equal(failed.lastError?.code, "boom");
      assert.match(String(failed.lastError?.stack), /remote boom/, "the stack is stored");
      const overHttp = await (await fetch(`${api.baseUrl}/api/v1/jobs/${failing.id}`, {
        headers: { "x-tenant-id": "acme" },
      })).json();
      assert.equal(overHttp.lastError.code, "boom");
      assert.equal("stack" in overHttp.lastError, false, "the API never returns the stack");
    } finally {
      await worker.stop();
      await api.close();
    }
  });
});

Deno.test("createWorker({ baseUrl }): a cancel through the API aborts the handler via the event stream", async () => {
  await withStore(async ({ db, store }) => {
    const api = serveApi(db);
    const started = deferred<AbortSignal>();
    const worker = createWorker({
      baseUrl: api.baseUrl,
      handlers: {
        "remote.long": (_job: ClaimedJob, ctx: JobContext) => {
          started.resolve(ctx.signal);
          return aborted(ctx.signal);
        },
      },
      logger: SILENT,
    });
    await worker.start();
    try {
      const id = await scheduledJob(store, "remote.long");
      const signal = await started.promise;
      const cancelledAt = performance.now();
      const response = await fetch(`${api.baseUrl}/api/v1/jobs/${id}/cancel`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      assert.equal(response.status, 200);
      await response.body?.cancel();
      const reason = await aborted(signal) as JobAbortedError;
      const latency = performance.now() - cancelledAt;
      assert.equal(reason.reason, "cancelled");
      assert.ok(latency < 3000, `aborted ${Math.round(latency)} ms after the cancel`);
      assert.equal((await store.get(id)).status, "cancelled");
    } finally {
      await worker.stop();
      await api.close();
    }
  });
});

Deno.test("createWorker({ baseUrl, sealed }): egress fails the job while the worker still reaches the API", async () => {
  const target = countingListener();
  try {
    await withStore(async ({ db, store }) => {
      const api = serveApi(db);
      const worker = createWorker({
        baseUrl: api.baseUrl,
        sealed: true,
        handlers: {
          "remote.egress": async () => (await fetch(`http://127.0.0.1:${target.port}/`)).text(),
        },
        logger: SILENT,
      });
      await worker.start();
      try {
        assert.equal(worker.sealed, true);
        const id = await scheduledJob(store, "remote.egress");
        await until(async () => (await store.get(id)).status === "failed", 5000, "the failure");
        const job = await store.get(id);
        assert.equal(job.terminal, true);
        assert.equal(job.lastError?.code, "egress_denied");
        assert.deepEqual(job.lastError?.details, {
          host: "127.0.0.1",
          port: target.port,
          api: "fetch",
        });
      } finally {
        await worker.stop();
        await api.close();
      }
      assert.equal(target.count(), 0);
    });
  } finally {
    await target.close();
  }
});

Deno.test("createWorker(): a result JSON would alter or PostgreSQL refuse fails its job alone with invalid_result; the batch's other jobs complete", async () => {
  await withStore(async ({ store, connect }) => {
    const release = deferred();
    const worker = createWorker({
      db: connect(2),
      concurrency: 8,
      handlers: {
        // all finish together, so their completions go in one batch
        fine: async () => (await release.promise, { ok: 1 }),
        nul: async () => (await release.promise, { s: "a\u0000b" }),
        surrogate: async () => (await release.promise, ["a\ud800b"]),
        nan: async () => (await release.promise, { n: NaN }),
        map: async () => (await release.promise, new Map([["a", 1]])),
        fn: async () => (await release.promise, () => 1),
      },
      logger: SILENT,
    });
    await worker.start();
    try {
      const fine = await Promise.all([1, 2, 3].map(() => scheduledJob(store, "fine")));
      const bad = await Promise.all(
        ["nul", "surrogate", "nan", "map", "fn"].map((type) =>
          scheduledJob(store, type, { maxRetries: 0 })
        ),
      );
      await until(() => worker.stats.claimed >= 8, 5000, "all eight claimed");
      release.resolve();
      await until(
        async () =>
          (await Promise.all([...fine, ...bad].map((id) => store.get(id))))
            .every((job) => job.terminal),
        5000,
        "every job terminal at once (none left running for its lease)",
      );
      for (const id of fine) assert.deepEqual((await store.get(id)).result, { ok: 1 });
      for (const id of bad) {
        const job = await store.get(id);
        assert.equal(job.status, "failed", job.type);
        assert.equal(job.lastError?.code, "invalid_result", job.type);
      }
    } finally {
      await worker.stop();
    }
  });
});

Deno.test("createWorker(): an error whose text PostgreSQL cannot store (a NUL) is still recorded, made storable", async () => {
  await withStore(async ({ store, connect }) => {
    const worker = createWorker({
      db: connect(2),
      handlers: { nul: () => Promise.reject(new Error("bad\u0000msg\ud800")) },
      logger: SILENT,
    });
    await worker.start();
    try {
      const id = await scheduledJob(store, "nul", { maxRetries: 0 });
      await until(async () => (await store.get(id)).terminal, 5000, "the failure recorded");
      const job = await store.get(id);
      assert.equal(job.lastError?.message, "bad\ufffdmsg\ufffd");
      assert.equal(job.lastError?.code, "Error");
    } finally {
      await worker.stop();
    }
  });
});

Deno.test("createWorker(): a completion batch the database refuses as data is written job by job; only the refused job fails", async () => {
  await withStore(async ({ store, connect }) => {
    const db = connect(2);
    let poisoned = "";
    // complete_jobs refuses any batch holding the poisoned job, as PostgreSQL refuses a bad value
    const refusing = new Proxy(db, {
      get(target, name, receiver) {
        if (name !== "query") return Reflect.get(target, name, receiver);
        return (text: string, params?: unknown[]) => {
          if (text.includes("complete_jobs") && (params?.[0] as string[]).includes(poisoned)) {
            return Promise.reject(
              Object.assign(new Error("unsupported Unicode escape sequence"), { code: "22P05" }),
            );
          }
          return target.query(text, params);
        };
      },
    });
    const release = deferred();
    const worker = createWorker({
      db: refusing,
      concurrency: 4,
      handlers: { t: async () => (await release.promise, "done") },
      logger: SILENT,
    });
    await worker.start();
    try {
      const ids = await Promise.all(
        [1, 2, 3, 4].map(() => scheduledJob(store, "t", { maxRetries: 0 })),
      );
      poisoned = ids[2]!;
      await until(() => worker.stats.claimed >= 4, 5000, "all four claimed");
      release.resolve();
      await until(
        async () =>
          (await Promise.all(ids.map((id) => store.get(id)))).every((job) => job.terminal),
        5000,
        "all four terminal at once",
      );
      const jobs = await Promise.all(ids.map((id) => store.get(id)));
      assert.deepEqual(jobs.map((job) => job.status), [
        "completed",
        "completed",
        "failed",
        "completed",
      ]);
      assert.equal(jobs[2]!.lastError?.code, "invalid_result");
    } finally {
      await worker.stop();
    }
  });
});

Deno.test("A claim whose answer was lost: the worker finds the jobs leased to it and runs them, instead of leaving them to the reaper", async () => {
  await withStore(async ({ db, store, url }) => {
    const target = new URL(url);
    const proxy = startTcpProxy({ hostname: target.hostname, port: Number(target.port) });
    const viaProxy = new URL(url);
    viaProxy.hostname = "127.0.0.1";
    viaProxy.port = String(proxy.port);
    const proxied = createPostgresDatabase(viaProxy.toString(), { max: 2, connectTimeout: 2 });
    const ran: string[] = [];
    const worker = createWorker({
      db: proxied,
      handlers: { lost: (job) => Promise.resolve(void ran.push(job.id)) },
      leaseSeconds: 60,
      pollIntervalMs: 100,
      logger: SILENT,
    });
    try {
      await worker.start();
      proxy.cut();
      // what a claim that committed but whose answer never came back leaves behind: the job
      // running under this worker's id (claimed here on another connection)
      const { job } = await store.create("lost", {});
      await store.schedule(job.id);
      const claimed = await db.query<{ id: string }>(
        `select id from jobengine.claim_jobs_for($1::text, array['lost'], 1, 60, null)`,
        [worker.workerId],
      );
      assert.deepEqual(claimed.map((row) => row.id), [job.id]);
      // the worker's own claims fail while the connection is cut
      await new Promise((resolve) => setTimeout(resolve, 600));
      proxy.restore();
      await until(async () => (await store.get(job.id)).status === "completed", 10_000, "the job");
      assert.deepEqual(ran, [job.id]);
      const history = await store.history(job.id);
      assert.deepEqual(history.map((h) => h.toStatus), [
        "pending",
        "scheduled",
        "running",
        "completed",
      ]);
    } finally {
      await worker.stop();
      await proxied.close();
      proxy.close();
    }
  });
});
