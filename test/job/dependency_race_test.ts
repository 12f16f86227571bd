/**
 * A job created while one of its dependencies is ending in another transaction: two sessions,
 * both orders. Before the dependencies were locked (`create_job`, `create_workflow`: FOR SHARE
 * until commit), a dependent created beside its dependency's completion stayed `pending` for
 * good with `pending_dependencies = 1`.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { withStore } from "../_store.ts";

type Sql = postgres.Sql;

/** A claimed job of a type nothing else claims: its id and lease. */
async function claimed(sql: Sql): Promise<{ id: string; lease: string }> {
  const type = `race-${crypto.randomUUID()}`;
  const [job] = await sql`select id from jobengine.create_job(${type}, '{}', '{}')`;
  await sql`select jobengine.schedule_job(${job!.id})`;
  const [claim] = await sql`
    select id, lease_id from jobengine.claim_jobs('w', ${[type]}, 1, 60)`;
  return { id: claim!.id, lease: claim!.lease_id };
}

/** Resolves to whether `promise` settled within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  promise.then(() => settled = true, () => settled = true);
  await new Promise((resolve) => setTimeout(resolve, ms));
  return settled;
}

/**
 * Two sessions on `url`; `race` gets them, a claimed job on `a`, and `hold`: runs a statement in
 * a transaction on a session and keeps it open until `commit()`.
 */
async function withRace(
  race: (fixture: {
    a: Sql;
    b: Sql;
    parent: { id: string; lease: string };
    hold: <T>(sql: Sql, statement: (tx: postgres.TransactionSql) => Promise<T>) => Promise<{
      result: T;
      commit(): Promise<void>;
    }>;
  }) => Promise<void>,
): Promise<void> {
  await withStore(async ({ url }) => {
    const open = () => postgres(url, { max: 1, onnotice: () => {} });
    const [a, b] = [open(), open()];
    const releases: Array<() => void> = [];
    const hold = async <T>(sql: Sql, statement: (tx: postgres.TransactionSql) => Promise<T>) => {
      let release!: () => void;
      const held = new Promise<void>((resolve) => release = resolve);
      releases.push(release);
      let ran!: (value: T) => void;
      const result = new Promise<T>((resolve) => ran = resolve);
      const transaction = sql.begin(async (tx) => {
        ran(await statement(tx));
        await held;
      });
      return {
        result: await Promise.race([result, transaction.then(() => result)]),
        async commit() {
          release();
          await transaction;
        },
      };
    };
    try {
      await race({ a, b, parent: await claimed(a), hold });
    } finally {
      for (const release of releases) release();
      await a.end();
      await b.end();
    }
  });
}

const dependsOn = (id: string) => JSON.stringify({ dependsOn: [id] });

Deno.test("a dependent created while its dependency's completion is uncommitted waits for it, then counts it completed", async () => {
  await withRace(async ({ a, b, parent, hold }) => {
    const completing = await hold(
      a,
      (tx) => tx`select jobengine.complete_job(${parent.id}, ${parent.lease}, '{}')`,
    );
    const creating = b`
      select id from jobengine.create_job('child', '{}', ${dependsOn(parent.id)}::text::jsonb)`;
    assert.equal(await settlesWithin(creating, 300), false, "the create waits for the completion");
    await completing.commit();
    const [child] = await creating;
    const [row] = await a`
      select status::text, pending_dependencies from jobengine.jobs where id = ${child!.id}`;
    assert.deepEqual({ ...row }, { status: "pending", pending_dependencies: 0 });
    // eligible: the scheduler's promotion takes it
    const [promoted] = await a`select jobengine.schedule_ready(100) as n`;
    assert.ok(Number(promoted!.n) >= 1);
    const [after] = await a`select status::text from jobengine.jobs where id = ${child!.id}`;
    assert.equal(after!.status, "scheduled");
  });
});

Deno.test("a dependency completing while a dependent's creation is uncommitted waits for it, then schedules the dependent", async () => {
  await withRace(async ({ a, b, parent, hold }) => {
    const creating = await hold(
      b,
      (tx) =>
        tx`select id from jobengine.create_job('child', '{}', ${
          dependsOn(parent.id)
        }::text::jsonb)`,
    );
    const completing = a`select jobengine.complete_job(${parent.id}, ${parent.lease}, '{}')`;
    assert.equal(
      await settlesWithin(completing, 300),
      false,
      "the completion waits for the create",
    );
    await creating.commit();
    await completing;
    const [row] = await a`
      select status::text, pending_dependencies from jobengine.jobs where id = ${
      creating.result[0]!.id
    }`;
    assert.deepEqual({ ...row }, { status: "scheduled", pending_dependencies: 0 });
  });
});

Deno.test("a workflow naming an existing job whose cancellation is uncommitted is created cancelled after it", async () => {
  await withRace(async ({ a, b, parent, hold }) => {
    const cancelling = await hold(
      a,
      (tx) => tx`select jobengine.cancel_job(${parent.id}, 'operator')`,
    );
    const workflow = JSON.stringify([{ ref: "x", type: "child", dependsOn: [parent.id] }]);
    const creating = b`select id from jobengine.create_workflow(${workflow}::text::jsonb, '{}')`;
    assert.equal(await settlesWithin(creating, 300), false, "the workflow waits for the cancel");
    await cancelling.commit();
    const [child] = await creating;
    const [row] = await a`
      select status::text, status_reason from jobengine.jobs where id = ${child!.id}`;
    assert.deepEqual({ ...row }, { status: "cancelled", status_reason: "dependency_cancelled" });
  });
});

Deno.test("a completion batch takes its jobs in id order, so a create that depends on two of them cannot deadlock with it", async () => {
  await withRace(async ({ a, b, parent }) => {
    const [low, high] = [parent, await claimed(a)].sort((x, y) => x.id < y.id ? -1 : 1);
    // a heartbeat writes a new version of `low` after `high`'s: a scan in table order meets
    // `high` first
    await a`select jobengine.heartbeat_job(${low!.id}, ${low!.lease}, 60)`;
    let completing!: Promise<unknown[]>;
    await b.begin(async (tx) => {
      // create_job's first step for dependsOn [low, high]: the lower id FOR SHARE
      await tx`select from jobengine.jobs where id = ${low!.id} for share`;
      // the batch names them highest first; it must still wait on `low` before touching `high`
      completing = a`
        select id from jobengine.complete_jobs(
          ${[high!.id, low!.id]}::uuid[], ${[high!.lease, low!.lease]}::uuid[],
          array['{}', '{}']::jsonb[])`.then((rows) => [...rows]);
      while (
        !(await tx`
          select pg_stat_clear_snapshot(), exists (select from pg_stat_activity
            where datname = current_database() and wait_event_type = 'Lock') as waiting`)[0]!
          .waiting
      ) await new Promise((resolve) => setTimeout(resolve, 10));
      // create_job's second step: had the batch taken `high` first, this would deadlock
      await tx`select from jobengine.jobs where id = ${high!.id} for share`;
    });
    assert.equal((await completing).length, 2, "both complete once the create commits");
    const rows = await a`
      select status::text from jobengine.jobs where id in (${low!.id}, ${high!.id})`;
    assert.deepEqual(rows.map((r) => r.status), ["completed", "completed"]);
  });
});

Deno.test("the jobs of a fan-in ending at once (completed, or failed for good), each in its own session: every ending is written, their shared dependents are taken in one order (no deadlock)", async () => {
  await withStore(async ({ url }) => {
    const roots = 30;
    const joins = 200;
    const setup = postgres(url, { max: 1, onnotice: () => {} });
    const sessions = Array.from(
      { length: roots },
      () => postgres(url, { max: 1, onnotice: () => {} }),
    );
    try {
      await Promise.all(sessions.map((sql) => sql`select 1`)); // every session connected
      // Fan-ins one after the other, their roots completed (the dependents counted down) or
      // failed for good (the dependents cancelled): the sessions' orders differ once rows have
      // moved (a deadlock needs two transactions whose snapshots see the dependents in
      // different places), which the old trigger ran into in most rounds, not all.
      const rounds = ["complete", "complete", "complete", "fail", "fail"] as const;
      for (const [round, end] of rounds.entries()) {
        const type = `fanin-${crypto.randomUUID()}`;
        const spec = [
          ...Array.from({ length: roots }, (_, i) => ({ ref: `r${i}`, type })),
          ...Array.from({ length: joins }, (_, i) => ({
            ref: `j${i}`,
            type: `${type}-join`,
            dependsOn: Array.from({ length: roots }, (_, k) => `r${k}`),
          })),
        ];
        await setup`select count(*) from jobengine.create_workflow(${setup.json(spec)}, '{}')`;
        await setup`select jobengine.schedule_job(id) from jobengine.jobs where type = ${type}`;
        const leases = await setup`
          select id, lease_id from jobengine.claim_jobs('w', ${[type]}, ${roots}, 600)`;
        assert.equal(leases.length, roots);
        // one start for all: each session sleeps until the same instant, then completes its
        // root in the same simple-query message (no round trip between the two)
        const [start] = await setup`select (clock_timestamp() + interval '300 ms')::text as at`;
        const outcomes = await Promise.allSettled(leases.map((lease, i) =>
          sessions[i]!.unsafe(
            `select pg_sleep_until('${start!.at}'); ` +
              (end === "complete"
                ? `select jobengine.complete_job('${lease.id}', '${lease.lease_id}', '{}')`
                : `select jobengine.fail_job('${lease.id}', '${lease.lease_id}', '{}', false)`),
          )
        ));
        const refused = outcomes.filter((o) => o.status === "rejected")
          .map((o) => String((o as PromiseRejectedResult).reason));
        assert.deepEqual({ round, refused }, { round, refused: [] });
        const [joined] = await setup`
          select count(*) filter (where status = 'scheduled' and pending_dependencies = 0)::int
                   as scheduled,
                 count(*) filter (where status = 'cancelled'
                                    and status_reason = 'dependency_failed')::int as cancelled
            from jobengine.jobs where type = ${`${type}-join`}`;
        assert.deepEqual(
          { round, ...joined },
          end === "complete"
            ? { round, scheduled: joins, cancelled: 0 }
            : { round, scheduled: 0, cancelled: joins },
        );
      }
    } finally {
      await Promise.all([setup, ...sessions].map((sql) => sql.end()));
    }
  });
});
