/**
 * Group intake (`JobStore` option `groupCreates`): concurrent plain creates share one statement
 * and one commit, and each caller still gets exactly what `create_job` would have given it.
 */
import assert from "node:assert/strict";
import {
  DatabaseUnavailableError,
  InvalidArgumentError,
  type JobEngineError,
} from "../../src/errors.ts";
import { migrate } from "../../src/db/migrate.ts";
import { createPgliteDatabase } from "../../src/db/pglite.ts";
import type { Database } from "../../src/db/port.ts";
import { JobStore } from "../../src/job/job_store.ts";
import { CreateGroup } from "../../src/job/_create_group.ts";
import type { Job } from "../../src/job/job.ts";
import { withStore } from "../_store.ts";

/** Distinct commits among `jobs`: jobs created by one statement share its transaction's now(). */
function statementsOf(jobs: readonly Job[]): number {
  return new Set(jobs.map((j) => j.createdAt)).size;
}

/** Everything the engine wrote for a job, without what differs by construction. */
async function recordOf(db: Database, id: string): Promise<unknown> {
  const [job] = await db.query(
    `select type, status, payload, priority, attempt, max_retries, retry_policy, depends_on,
            pending_dependencies, requires_network, terminal, blocked_reason, lease_id, idempotency_key,
            request_hash, correlation_id, status_reason, status_actor, version, tenant_id,
            not_before = created_at as due_at_creation, updated_at = created_at as untouched
       from jobengine.jobs where id = $1`,
    [id],
  );
  const history = await db.query(
    `select seq, from_status, to_status, attempt, reason, actor, details
       from jobengine.job_history where job_id = $1 order by seq`,
    [id],
  );
  const events = await db.query(
    `select type, schema_version, tenant_id, subject_kind, correlation_id, actor,
            data - 'notBefore' as data, data ? 'notBefore' as has_not_before
       from jobengine.timeline_events where subject_id = $1 order by sequence`,
    [id],
  );
  return { job, history, events };
}

Deno.test("group intake: concurrent creates go as one statement, each job as create_job makes it", async () => {
  await withStore(async ({ db }) => {
    const grouped = new JobStore(db, { groupCreates: true });
    const options = { tenantId: "acme", actor: "alice", priority: 3, correlationId: "c-1" };
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => grouped.create("mail", { i }, options)),
    );
    const jobs = results.map((r) => r.job);
    assert.ok(results.every((r) => r.created));
    assert.equal(new Set(jobs.map((j) => j.id)).size, 20);
    assert.deepEqual(jobs.map((j) => (j.payload as { i: number }).i), [...Array(20).keys()]);
    // the first call finds the slot free and goes alone; the other 19 queue and go together
    assert.equal(statementsOf(jobs), 2);

    const alone = await new JobStore(db).create("mail", { i: 0 }, options);
    const reference = await recordOf(db, alone.job.id);
    for (const job of jobs) {
      const record = await recordOf(db, job.id) as { job: { payload: unknown } };
      record.job.payload = { i: 0 };
      assert.deepEqual(record, reference);
    }
  });
});

Deno.test("group intake: each group holds one tenant and actor; every option reaches its own job", async () => {
  await withStore(async ({ db }) => {
    const grouped = new JobStore(db, { groupCreates: true });
    const calls = Array.from({ length: 12 }, (_, i) => ({
      tenantId: i % 2 === 0 ? "even" : "odd",
      actor: i % 3 === 0 ? "carol" : undefined,
      priority: i,
      maxRetries: i % 4,
      notBefore: i === 5 ? "2031-01-01T00:00:00Z" : undefined,
      requiresNetwork: i === 7,
      correlationId: `c-${i}`,
    }));
    const jobs = (await Promise.all(calls.map((o, i) => grouped.create(`t${i}`, { i }, o))))
      .map((r) => r.job);
    jobs.forEach((job, i) => {
      const o = calls[i]!;
      assert.equal(job.type, `t${i}`);
      assert.equal(job.tenantId, o.tenantId);
      assert.equal(job.priority, i);
      assert.equal(job.maxRetries, i % 4);
      assert.equal(job.requiresNetwork, i === 7);
      assert.equal(job.correlationId, `c-${i}`);
      if (i === 5) assert.equal(job.notBefore, "2031-01-01T00:00:00.000Z");
    });
    const actors = await db.query<{ id: string; status_actor: string; actor: string }>(
      `select j.id, j.status_actor, h.actor from jobengine.jobs j
         join jobengine.job_history h on h.job_id = j.id and h.seq = 1
        where j.id = any ($1::uuid[])`,
      [jobs.map((j) => j.id)],
    );
    const user = (await db.query<{ user: string }>(`select session_user as user`))[0]!.user;
    for (const row of actors) {
      const i = jobs.findIndex((j) => j.id === row.id);
      const expected = calls[i]!.actor ?? user;
      assert.equal(row.status_actor, expected);
      assert.equal(row.actor, expected);
    }
  });
});

Deno.test("group intake: a bad create in a group fails alone with create_job's error; the others are created", async () => {
  await withStore(async ({ db }) => {
    const grouped = new JobStore(db, { groupCreates: true });
    const bad = { priority: "high" as unknown as number };
    // what create_job says about it, alone
    const expected = await new JobStore(db).create("x", {}, bad).then(
      () => assert.fail("create_job accepted a text priority"),
      (error: unknown) => error as JobEngineError,
    );
    assert.ok(expected instanceof InvalidArgumentError);

    const before = await countJobs(db);
    const settled = await Promise.allSettled([
      grouped.create("ok", { i: 0 }),
      grouped.create("ok", { i: 1 }),
      grouped.create("bad", {}, bad),
      grouped.create("ok", { i: 2 }),
      grouped.create("ok", { i: 3 }),
    ]);
    assert.deepEqual(settled.map((s) => s.status), [
      "fulfilled",
      "fulfilled",
      "rejected",
      "fulfilled",
      "fulfilled",
    ]);
    const error = (settled[2] as PromiseRejectedResult).reason;
    assert.ok(error instanceof InvalidArgumentError);
    assert.equal(error.message, expected.message);
    assert.deepEqual(error.details, expected.details);
    assert.equal(await countJobs(db), before + 4);
    assert.equal((await db.query(`select 1 from jobengine.jobs where type = 'bad'`)).length, 0);
  });
});

Deno.test("group intake: creates with an idempotency key or dependencies go alone, through create_job", async () => {
  await withStore(async ({ db }) => {
    const grouped = new JobStore(db, { groupCreates: true });
    const { job: parent } = await grouped.create("parent", {});
    const results = await Promise.all([
      grouped.create("k", { a: 1 }, { idempotencyKey: "key-1" }),
      grouped.create("k", { a: 1 }, { idempotencyKey: "key-1" }),
      grouped.create("k", { a: 1 }, { idempotencyKey: "key-1" }),
      grouped.create("child", {}, { dependsOn: [parent.id] }),
      grouped.create("child", {}, { dependsOn: [parent.id] }),
    ]);
    const keyed = results.slice(0, 3);
    assert.equal(new Set(keyed.map((r) => r.job.id)).size, 1);
    assert.deepEqual(keyed.map((r) => r.created).sort(), [false, false, true]);
    for (const { job } of results.slice(3)) assert.deepEqual(job.dependsOn, [parent.id]);
    const [counts] = await db.query<{ n: number; waiting: number }>(
      `select count(*)::int as n, sum(j.pending_dependencies)::int as waiting
         from jobengine.job_dependencies d join jobengine.jobs j on j.id = d.job_id
        where d.depends_on_id = $1`,
      [parent.id],
    );
    assert.deepEqual(counts, { n: 2, waiting: 2 });
  });
});

Deno.test("group intake: when the database cannot be reached, every caller of the group gets that error", async () => {
  await withStore(async ({ connect }) => {
    const pool = connect(2);
    const grouped = new JobStore(pool, { groupCreates: true });
    await grouped.create("warm", {});
    await pool.close();
    const settled = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) => grouped.create("x", { i })),
    );
    for (const s of settled) {
      assert.equal(s.status, "rejected");
      assert.ok((s as PromiseRejectedResult).reason instanceof DatabaseUnavailableError);
    }
  });
});

Deno.test("group intake on PGlite (the embedded default): the same grouping, the same jobs", async () => {
  const db = await createPgliteDatabase();
  try {
    await migrate(db);
    const grouped = new JobStore(db, { groupCreates: true });
    const settled = await Promise.allSettled([
      ...Array.from({ length: 9 }, (_, i) => grouped.create("p", { i }, { priority: i })),
      grouped.create("p", {}, { tenantId: "other", maxRetries: 1000 }),
    ]);
    const jobs = settled.slice(0, 9).map((s) =>
      (s as PromiseFulfilledResult<{ job: Job }>).value.job
    );
    assert.deepEqual(jobs.map((j) => j.priority), [...Array(9).keys()]);
    assert.equal(statementsOf(jobs), 2);
    assert.equal(settled[9]!.status, "rejected");
    assert.ok((settled[9] as PromiseRejectedResult).reason instanceof InvalidArgumentError);
    const [events] = await db.query<{ n: number }>(
      `select count(*)::int as n from jobengine.timeline_events where type = 'job.created'`,
    );
    assert.equal(events!.n, 9);
  } finally {
    await db.close();
  }
});

Deno.test("group intake runs creates again alone only when the server refused the group", async () => {
  // The queueing policy alone, with stand-ins for create_job and create_workflow: which
  // failures of the group's statement may be retried one by one without creating twice.
  for (
    const [failure, retried] of [
      [Object.assign(new Error("duplicate key"), { code: "23505" }), true],
      [new InvalidArgumentError("bad option"), true],
      [new DatabaseUnavailableError("connection lost"), false],
      [new TypeError("cannot read the answer"), false],
    ] as const
  ) {
    const alone: string[] = [];
    let release!: () => void;
    const firstDone = new Promise<void>((resolve) => release = resolve);
    const group = new CreateGroup(
      async (type) => {
        alone.push(type);
        if (type === "first") await firstDone;
        return { job: { id: type } as Job, created: true };
      },
      () => Promise.reject(failure),
    );
    const first = group.create("first", {}, {});
    const rest = ["a", "b", "c"].map((type) => group.create(type, {}, {}));
    release();
    await first;
    const settled = await Promise.allSettled(rest);
    if (retried) {
      assert.deepEqual(alone, ["first", "a", "b", "c"], String(failure));
      assert.ok(settled.every((s) => s.status === "fulfilled"));
    } else {
      assert.deepEqual(alone, ["first"], String(failure));
      assert.ok(settled.every((s) => s.status === "rejected" && s.reason === failure));
    }
  }
});

async function countJobs(db: Database): Promise<number> {
  const rows = await db.query<{ n: number }>(`select count(*)::int as n from jobengine.jobs`);
  return rows[0]!.n;
}
