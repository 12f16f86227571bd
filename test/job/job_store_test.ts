import assert from "node:assert/strict";
import { JobStore } from "../../src/job/job_store.ts";
import {
  DependenciesPendingError,
  IdempotencyConflictError,
  InvalidArgumentError,
  InvalidDependencyError,
  InvalidTransitionError,
  JobNotFoundError,
  LeaseMismatchError,
  SealedModeError,
} from "../../src/errors.ts";
import { createPgliteDatabase } from "../../src/db/pglite.ts";
import { migrate } from "../../src/db/migrate.ts";
import type { Database } from "../../src/db/port.ts";
import { jobIn, withStore } from "../_store.ts";
import type { ClaimedJob } from "../../src/job/job.ts";

const NO_WAIT = { initialDelayMs: 0, jitter: 0 };

async function historyOf(db: Database, id: string): Promise<string[]> {
  const rows = await db.query<{ t: string }>(
    `select coalesce(from_status::text, '(new)') || '->' || to_status::text as t
       from jobengine.job_history where job_id = $1 order by seq`,
    [id],
  );
  return rows.map((r) => r.t);
}

async function lifecycle(store: JobStore, db: Database): Promise<void> {
  const { job, created } = await store.create("email", { to: "ops@example.test" });
  assert.equal(created, true);
  assert.equal(job.status, "pending");
  const scheduled = await store.schedule(job.id, "alice");
  assert.equal(scheduled.status, "scheduled");
  const [claimed] = await store.claim({
    workerId: "w1",
    types: ["email"],
    limit: 5,
    leaseSeconds: 60,
  });
  assert.ok(claimed);
  assert.equal(claimed.id, job.id);
  assert.equal(claimed.status, "running");
  assert.equal(claimed.attempt, 1);
  assert.equal(claimed.leaseOwner, "w1");
  assert.match(claimed.leaseId, /^[0-9a-f-]{36}$/);
  const completed = await store.complete(job.id, claimed.leaseId, { sent: true });
  assert.equal(completed.status, "completed");
  assert.equal(completed.terminal, true);
  assert.deepEqual(completed.result, { sent: true });
  assert.deepEqual(await historyOf(db, job.id), [
    "(new)->pending",
    "pending->scheduled",
    "scheduled->running",
    "running->completed",
  ]);
  const timeline = await store.timeline(job.id);
  assert.deepEqual(timeline.map((e) => e.type), [
    "job.created",
    "job.scheduled",
    "job.started",
    "job.completed",
  ]);
  for (let i = 1; i < timeline.length; i++) {
    assert.ok(timeline[i]!.sequence > timeline[i - 1]!.sequence);
  }
  await assert.rejects(() => store.schedule(job.id), InvalidTransitionError);
}

Deno.test("JobStore runs create -> schedule -> claim -> complete on PostgreSQL", async () => {
  await withStore(({ store, db }) => lifecycle(store, db));
});

Deno.test("JobStore runs the same lifecycle on PGlite with the same migrations", async () => {
  const db = await createPgliteDatabase();
  try {
    await migrate(db);
    await lifecycle(new JobStore(db), db);
  } finally {
    await db.close();
  }
});

Deno.test("fail() retries per policy: three re-entries into scheduled, the fourth failure terminal", async () => {
  await withStore(async ({ store, db }) => {
    const { job } = await store.create("flaky", {}, {
      retryPolicy: { maxRetries: 3, backoff: "fixed", initialDelayMs: 0, jitter: 0 },
    });
    await store.schedule(job.id);
    let last = job;
    for (let run = 1; run <= 4; run++) {
      const [claimed] = await store.claim({ workerId: "w", types: ["flaky"] });
      assert.ok(claimed, `run ${run} claimed`);
      assert.equal(claimed.attempt, run);
      last = await store.fail(job.id, claimed.leaseId, { message: `boom ${run}`, code: "boom" });
      assert.equal(last.status, run < 4 ? "scheduled" : "failed");
    }
    assert.equal(last.attempt, 4);
    assert.equal(last.terminal, true);
    assert.deepEqual(last.lastError, { message: "boom 4", code: "boom" });
    const history = await historyOf(db, job.id);
    assert.deepEqual(history.filter((t) => t === "failed->scheduled").length, 3);
    assert.deepEqual(history.filter((t) => t === "running->failed").length, 4);
    assert.equal(history.at(-1), "running->failed");
    assert.deepEqual(await store.claim({ workerId: "w", types: ["flaky"] }), []);
  });
});

Deno.test("fail() sets not_before to now() + backoff", async () => {
  await withStore(async ({ store }) => {
    const { job } = await store.create("slow", {}, {
      retryPolicy: { backoff: "fixed", initialDelayMs: 60_000, jitter: 0 },
    });
    await store.schedule(job.id);
    const [claimed] = await store.claim({ workerId: "w", types: ["slow"] });
    const failed = await store.fail(job.id, claimed!.leaseId, { message: "x" });
    assert.equal(failed.status, "scheduled");
    const wait = Date.parse(failed.notBefore) - Date.parse(failed.updatedAt);
    assert.ok(Math.abs(wait - 60_000) < 5, `not_before is 60 s after the failure, got ${wait} ms`);
    assert.deepEqual(await store.claim({ workerId: "w", types: ["slow"] }), [], "not due yet");
  });
});

Deno.test("list() pages with its own cursors and refuses any other (it never restarts at page 1)", async () => {
  await withStore(async ({ store }) => {
    for (let i = 0; i < 3; i++) await store.create("page");
    const first = await store.list({ limit: 2 });
    assert.equal(first.items.length, 2);
    const second = await store.list({ limit: 2, cursor: first.nextCursor });
    assert.equal(second.items.length, 1);
    assert.ok(!first.items.some((job) => job.id === second.items[0]!.id));
    for (const cursor of ["garbage", "eyJ4IjoxfQ", first.items[0]!.id]) {
      await assert.rejects(() => store.list({ limit: 2, cursor }), InvalidArgumentError);
    }
  });
});

Deno.test("fail() with retryable = false is terminal at once", async () => {
  await withStore(async ({ store }) => {
    const { job } = await store.create("once");
    await store.schedule(job.id);
    const [claimed] = await store.claim({ workerId: "w", types: ["once"] });
    const failed = await store.fail(job.id, claimed!.leaseId, { message: "no" }, false);
    assert.equal(failed.status, "failed");
    assert.equal(failed.terminal, true);
    const retried = await store.retry(job.id, "operator");
    assert.equal(retried.status, "scheduled");
    assert.equal(retried.terminal, false);
  });
});

Deno.test("leases: wrong or expired leases are refused with LeaseMismatchError; the reaper fails and retries", async () => {
  await withStore(async ({ store, db }) => {
    const { job } = await store.create("leased", {}, { retryPolicy: NO_WAIT });
    await store.schedule(job.id);
    const [claimed] = await store.claim({ workerId: "w", types: ["leased"], leaseSeconds: 30 });
    assert.ok(claimed);
    const other = crypto.randomUUID();
    await assert.rejects(() => store.complete(job.id, other), LeaseMismatchError);
    await assert.rejects(() => store.fail(job.id, other, { message: "x" }), LeaseMismatchError);
    await assert.rejects(() => store.heartbeat(job.id, other), LeaseMismatchError);
    const beat = await store.heartbeat(job.id, claimed.leaseId, 120);
    assert.ok(Date.parse(beat.leaseExpiresAt!) > Date.parse(claimed.leaseExpiresAt));
    // expire the lease (a raw update that does not touch status is allowed)
    await db.query(
      `update jobengine.jobs set lease_expires_at = clock_timestamp() - interval '1 second' where id = $1`,
      [job.id],
    );
    await assert.rejects(() => store.complete(job.id, claimed.leaseId), LeaseMismatchError);
    await assert.rejects(() => store.heartbeat(job.id, claimed.leaseId), LeaseMismatchError);
    assert.equal(await store.reapExpiredLeases(), 1);
    const reaped = await store.get(job.id);
    assert.equal(reaped.status, "scheduled");
    assert.equal(reaped.lastError?.code, "lease_expired");
    const history = await db.query<{ reason: string; to_status: string }>(
      `select reason, to_status::text from jobengine.job_history where job_id = $1 order by seq`,
      [job.id],
    );
    assert.deepEqual(history.slice(-2), [
      { reason: "lease_expired", to_status: "failed" },
      { reason: "retry", to_status: "scheduled" },
    ]);
    await assert.rejects(
      () => store.complete(crypto.randomUUID(), claimed.leaseId),
      JobNotFoundError,
    );
  });
});

Deno.test("idempotency: same key and request returns the job, a different request conflicts", async () => {
  await withStore(async ({ store, db }) => {
    const first = await store.create("bill", { amount: 5 }, { idempotencyKey: "k-1" });
    const again = await store.create("bill", { amount: 5 }, { idempotencyKey: "k-1" });
    assert.equal(first.created, true);
    assert.equal(again.created, false);
    assert.equal(again.job.id, first.job.id);
    await assert.rejects(
      () => store.create("bill", { amount: 6 }, { idempotencyKey: "k-1" }),
      IdempotencyConflictError,
    );
    const other = await store.create("bill", { amount: 5 }, {
      idempotencyKey: "k-1",
      tenantId: "acme",
    });
    assert.notEqual(other.job.id, first.job.id, "keys are per tenant");
    const count = await db.query<{ n: number }>("select count(*)::int as n from jobengine.jobs");
    assert.equal(count[0]!.n, 2);
  });
});

Deno.test("idempotency holds under concurrent creates with one key", async () => {
  await withStore(async ({ connect }) => {
    const stores = Array.from({ length: 6 }, () => new JobStore(connect(1)));
    const results = await Promise.all(
      stores.map((s) => s.create("race", { n: 1 }, { idempotencyKey: "same" })),
    );
    assert.equal(new Set(results.map((r) => r.job.id)).size, 1);
    assert.equal(results.filter((r) => r.created).length, 1);
  });
});

Deno.test("create() refuses unknown and other-tenant dependencies and bad options, writing nothing", async () => {
  await withStore(async ({ store, db }) => {
    const { job: acme } = await store.create("a", {}, { tenantId: "acme" });
    await assert.rejects(
      () => store.create("b", {}, { dependsOn: [crypto.randomUUID()] }),
      InvalidDependencyError,
    );
    await assert.rejects(
      () => store.create("b", {}, { dependsOn: [acme.id] }),
      InvalidDependencyError,
    );
    await assert.rejects(
      () => store.create("b", {}, { dependsOn: ["not-a-uuid"] }),
      InvalidArgumentError,
    );
    await assert.rejects(
      () => store.create("b", {}, { retryPolicy: { jitter: 2 } }),
      InvalidArgumentError,
    );
    await assert.rejects(() => store.create("", {}), InvalidArgumentError);
    const count = await db.query<{ n: number }>("select count(*)::int as n from jobengine.jobs");
    assert.equal(count[0]!.n, 1);
  });
});

Deno.test("dependencies: a diamond schedules d as soon as b and c complete", async () => {
  await withStore(async ({ store, db }) => {
    const jobs = await store.createWorkflow([
      { ref: "a", type: "d1" },
      { ref: "b", type: "d1", dependsOn: ["a"] },
      { ref: "c", type: "d1", dependsOn: ["a"] },
      { ref: "d", type: "d1", dependsOn: ["b", "c"] },
    ]);
    const [a, b, c, d] = jobs;
    assert.ok(a && b && c && d);
    assert.deepEqual(d.dependsOn.sort(), [b.id, c.id].sort());
    await assert.rejects(() => store.schedule(d.id), DependenciesPendingError);
    assert.equal(await store.scheduleReady(), 1, "only a is eligible");
    const run = async (id: string) => {
      const [claimed] = await store.claim({ workerId: "w", types: ["d1"] });
      assert.equal(claimed?.id, id);
      await store.complete(id, claimed!.leaseId);
    };
    await run(a.id);
    // b and c were scheduled in a's completion transaction: no scheduler tick needed
    assert.equal((await store.get(b.id)).status, "scheduled");
    assert.equal((await store.get(c.id)).status, "scheduled");
    assert.equal((await store.get(d.id)).status, "pending");
    const [first] = await store.claim({ workerId: "w", types: ["d1"] });
    await store.complete(first!.id, first!.leaseId);
    assert.equal((await store.get(d.id)).status, "pending");
    const [second] = await store.claim({ workerId: "w", types: ["d1"] });
    await store.complete(second!.id, second!.leaseId);
    const ready = await store.get(d.id);
    assert.equal(ready.status, "scheduled");
    assert.equal(ready.statusReason, "dependencies_completed");
    assert.deepEqual(await historyOf(db, d.id), ["(new)->pending", "pending->scheduled"]);
  });
});

Deno.test("dependencies: a 1,000-node chain runs in order and a cancelled head cancels all 999", async () => {
  await withStore(async ({ store, db }) => {
    let previous: string | undefined;
    const ids: string[] = [];
    for (let i = 0; i < 1000; i++) {
      const { job } = await store.create("chain", { i }, { dependsOn: previous ? [previous] : [] });
      ids.push(job.id);
      previous = job.id;
    }
    await store.cancel(ids[0]!, "operator_cancelled", "alice");
    const rows = await db.query<{ status: string; status_reason: string; n: number }>(
      `select status::text, status_reason, count(*)::int as n from jobengine.jobs group by 1, 2 order by 1, 2`,
    );
    assert.deepEqual(rows, [
      { status: "cancelled", status_reason: "dependency_cancelled", n: 999 },
      { status: "cancelled", status_reason: "operator_cancelled", n: 1 },
    ]);

    const chain = await store.createWorkflow(
      Array.from(
        { length: 1000 },
        (_, i) => ({ ref: `n${i}`, type: "chain2", dependsOn: i ? [`n${i - 1}`] : [] }),
      ),
    );
    assert.equal(chain.length, 1000);
    await store.scheduleReady();
    for (let i = 0; i < 1000; i++) {
      const [claimed] = await store.claim({ workerId: "w", types: ["chain2"] });
      assert.equal(claimed?.id, chain[i]!.id, `step ${i} runs in chain order`);
      await store.complete(claimed.id, claimed.leaseId);
    }
    const done = await db.query<{ n: number }>(
      `select count(*)::int as n from jobengine.jobs where type = 'chain2' and status = 'completed'`,
    );
    assert.equal(done[0]!.n, 1000);
  });
});

Deno.test("dependencies: a terminal failure cancels every transitive dependent with dependency_failed", async () => {
  await withStore(async ({ store }) => {
    const [a, b, c] = await store.createWorkflow([
      { ref: "a", type: "f1", maxRetries: 0 },
      { ref: "b", type: "f1", dependsOn: ["a"] },
      { ref: "c", type: "f1", dependsOn: ["b"] },
    ]);
    await store.schedule(a!.id);
    const [claimed] = await store.claim({ workerId: "w", types: ["f1"] });
    const failed = await store.fail(a!.id, claimed!.leaseId, { message: "x" });
    assert.equal(failed.terminal, true);
    assert.equal((await store.get(b!.id)).statusReason, "dependency_failed");
    assert.equal((await store.get(c!.id)).statusReason, "dependency_failed");
    assert.equal((await store.get(c!.id)).status, "cancelled");
  });
});

Deno.test("workflows with a cycle, an unknown ref or another tenant's job are refused atomically", async () => {
  await withStore(async ({ store, db }) => {
    const { job: other } = await store.create("x", {}, { tenantId: "other" });
    const bad = [
      [{ ref: "a", type: "w", dependsOn: ["b"] }, { ref: "b", type: "w", dependsOn: ["a"] }],
      [{ ref: "a", type: "w", dependsOn: ["a"] }],
      [{ ref: "a", type: "w" }, { ref: "b", type: "w", dependsOn: ["nope"] }],
      [{ ref: "a", type: "w", dependsOn: [other.id] }],
    ];
    for (const jobs of bad) {
      await assert.rejects(
        () => store.createWorkflow(jobs),
        InvalidDependencyError,
        JSON.stringify(jobs),
      );
    }
    const count = await db.query<{ n: number }>("select count(*)::int as n from jobengine.jobs");
    assert.equal(count[0]!.n, 1);
  });
});

Deno.test("createWorkflowIds: the ids of the jobs created, in input order, refused atomically like createWorkflow", async () => {
  await withStore(async ({ store, db }) => {
    const ids = await store.createWorkflowIds(
      [
        { ref: "p", type: "bulk", payload: { n: 0 }, priority: 5 },
        { ref: "q", type: "bulk", payload: { n: 1 }, dependsOn: ["p"] },
        { ref: "r", type: "bulk", payload: { n: 2 } },
      ],
      { correlationId: "batch-1" },
    );
    assert.equal(ids.length, 3);
    const [p, q, r] = await Promise.all(ids.map((id) => store.get(id)));
    assert.deepEqual([p!.payload, q!.payload, r!.payload], [{ n: 0 }, { n: 1 }, { n: 2 }]);
    assert.equal(p!.priority, 5);
    assert.deepEqual(q!.dependsOn, [p!.id]);
    assert.equal(r!.correlationId, "batch-1");
    assert.deepEqual(await historyOf(db, r!.id), ["(new)->pending"]);

    await assert.rejects(
      () => store.createWorkflowIds([{ ref: "a", type: "bulk" }, { ref: "a", type: "bulk" }]),
      InvalidDependencyError,
    );
    const count = await db.query<{ n: number }>("select count(*)::int as n from jobengine.jobs");
    assert.equal(count[0]!.n, 3);
  });
});

/**
 * A workflow and a claim answer the same job as a read does, field for field and in the same
 * key order (a claim adds `leaseId`), also when the session's time zone is not UTC.
 */
async function sameJobEverywhere(store: JobStore): Promise<void> {
  const [root, child] = await store.createWorkflow(
    [
      {
        ref: "root",
        type: "shape",
        payload: { text: "naïve ✓", n: 12345678901234, list: [1, null] },
      },
      {
        ref: "child",
        type: "shape",
        dependsOn: ["root"],
        priority: -7,
        maxRetries: 5,
        retryPolicy: { backoff: "linear", initialDelayMs: 0, jitter: 0 },
        notBefore: "2026-01-02T03:04:05.678912Z",
        correlationId: "corr-1",
      },
    ],
    { correlationId: "wf-1", actor: "tester" },
  );
  for (const job of [root!, child!]) {
    const read = await store.get(job.id);
    assert.deepEqual(job, read);
    assert.deepEqual(Object.keys(job), Object.keys(read));
  }
  const { job } = await store.create("shape", { a: 1 }, {
    idempotencyKey: "shape-key",
    correlationId: "corr-2",
    retryPolicy: NO_WAIT,
  });
  await store.schedule(job.id, "alice");
  const [first] = await store.claim({ workerId: "w-shape", types: ["shape"], limit: 1 });
  assert.equal(first!.id, job.id);
  await store.fail(first!.id, first!.leaseId, { message: "once", code: "x" });
  assert.equal(await store.scheduleReady(), 1, "root is promoted, its child waits");
  const claimed = await store.claim({ workerId: "w-shape", types: ["shape"], limit: 10 });
  assert.deepEqual(claimed.map((c) => c.id).sort(), [root!.id, job.id].sort());
  for (const c of claimed) {
    const read = await store.get(c.id);
    assert.deepEqual(c, { ...read, leaseId: c.leaseId });
    assert.deepEqual(Object.keys(c), [...Object.keys(read), "leaseId"]);
    assert.match(c.leaseId, /^[0-9a-f-]{36}$/);
  }
  const again = claimed.find((c) => c.id === job.id)!;
  assert.equal(again.attempt, 2);
  assert.deepEqual(again.lastError, { message: "once", code: "x" });
  assert.equal(typeof again.failedAt, "string");
}

Deno.test("workflows and claims answer the same job as a read, on PostgreSQL in a non-UTC session time zone", async () => {
  await withStore(async ({ db, connect }) => {
    await db.query(
      `do $$ begin execute format('alter database %I set timezone = %L', current_database(), 'Asia/Kolkata'); end $$`,
    );
    const other = connect(1);
    const zone = await other.query<{ tz: string }>("select current_setting('TimeZone') as tz");
    assert.equal(zone[0]!.tz, "Asia/Kolkata");
    await sameJobEverywhere(new JobStore(other));
  });
});

Deno.test("workflows and claims answer the same job as a read, on PGlite", async () => {
  const db = await createPgliteDatabase();
  try {
    await migrate(db);
    await sameJobEverywhere(new JobStore(db));
  } finally {
    await db.close();
  }
});

Deno.test("sealed: requiresNetwork jobs stay pending with one job.blocked event until unsealed", async () => {
  await withStore(async ({ store, db }) => {
    await store.setSealed(true);
    assert.equal(await store.isSealed(), true);
    const { job: net } = await store.create("fetch", {}, { requiresNetwork: true });
    const { job: local } = await store.create("local");
    await assert.rejects(() => store.schedule(net.id), SealedModeError);
    assert.equal(await store.scheduleReady(), 1);
    assert.equal(await store.scheduleReady(), 0);
    const blocked = await store.get(net.id);
    assert.equal(blocked.status, "pending");
    assert.equal(blocked.blockedReason, "sealed_mode");
    const events = await db.query<{ n: number }>(
      `select count(*)::int as n from jobengine.timeline_events where type = 'job.blocked' and subject_id = $1`,
      [net.id],
    );
    assert.equal(events[0]!.n, 1);
    assert.equal((await store.get(local.id)).status, "scheduled");
    await store.setSealed(false);
    assert.equal(await store.scheduleReady(), 1);
    const released = await store.get(net.id);
    assert.equal(released.status, "scheduled");
    assert.equal(released.blockedReason, null);
  });
});

Deno.test("claim_jobs: 8 connections claiming from 5,000 jobs never claim one twice", async () => {
  await withStore(async ({ db, connect }) => {
    await db.query(
      `select jobengine.create_workflow((select jsonb_agg(jsonb_build_object('ref', 'r' || i, 'type', 'bulk'))
         from generate_series(1, 5000) i))`,
    );
    await new JobStore(db).scheduleReady(10_000);
    const claimers = Array.from(
      { length: 8 },
      (_, i) => ({ id: `w${i}`, store: new JobStore(connect(1)) }),
    );
    const claimedBy = new Map<string, string>();
    let duplicates = 0;
    await Promise.all(claimers.map(async ({ id, store }) => {
      while (true) {
        const jobs = await store.claim({ workerId: id, types: ["bulk"], limit: 25 });
        if (jobs.length === 0) break;
        for (const job of jobs) {
          if (claimedBy.has(job.id)) duplicates++;
          claimedBy.set(job.id, id);
        }
        await store.completeMany(jobs.map((job) => ({ id: job.id, leaseId: job.leaseId })));
      }
    }));
    assert.equal(duplicates, 0);
    assert.equal(claimedBy.size, 5000);
    assert.ok(new Set(claimedBy.values()).size > 1, "the work was shared");
    const history = await db.query<{ runs: number; jobs: number }>(
      `select runs, count(*)::int as jobs from (
         select job_id, count(*) filter (where to_status = 'running')::int as runs
           from jobengine.job_history group by job_id) s group by runs`,
    );
    assert.deepEqual(history, [{ runs: 1, jobs: 5000 }]);
  });
});

Deno.test("given a job as last read, schedule/cancel/retry/complete/fail refuse a move the state table does not allow before any round trip (JE001); given an id, the database decides", async () => {
  await withStore(async ({ db, store }) => {
    const completed = await jobIn(store, "completed");
    const pending = await jobIn(store, "pending");
    const running = await jobIn(store, "running") as ClaimedJob;
    let queries = 0;
    const counted = new JobStore({
      query: (text, params) => {
        queries++;
        return db.query(text, params);
      },
    });
    const refusals: Array<[string, () => Promise<unknown>, string, string]> = [
      ["schedule", () => counted.schedule(completed), "completed", "scheduled"],
      ["schedule", () => counted.schedule(running), "running", "scheduled"],
      ["cancel", () => counted.cancel(completed), "completed", "cancelled"],
      ["retry", () => counted.retry(pending), "pending", "scheduled"],
      ["retry", () => counted.retry(running), "running", "scheduled"],
      ["complete", () => counted.complete(pending, running.leaseId), "pending", "completed"],
      ["fail", () => counted.fail(completed, running.leaseId, {}), "completed", "failed"],
    ];
    for (const [name, call, from, to] of refusals) {
      await assert.rejects(call(), (error: unknown) => {
        assert.ok(error instanceof InvalidTransitionError, `${name}: ${error}`);
        assert.deepEqual(
          { code: error.code, sqlstate: error.sqlstate, from: error.from, to: error.to },
          { code: "invalid_transition", sqlstate: "JE001", from, to },
        );
        return true;
      });
    }
    assert.equal(queries, 0, "no statement was sent");
    // the same moves by id reach the database, which refuses them with the same error
    await assert.rejects(counted.cancel(completed.id), InvalidTransitionError);
    assert.equal(queries, 1);
    // allowed moves go through, and a stale status is the database's to correct
    assert.equal((await counted.complete(running, running.leaseId, { ok: 1 })).status, "completed");
    assert.equal((await counted.schedule(pending)).status, "scheduled");
    await assert.rejects(counted.schedule(pending), InvalidTransitionError); // stale: now scheduled
    assert.equal(queries, 4);
  });
});
