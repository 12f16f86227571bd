/**
 * Chaos scenario 6, direct SQL abuse: raw UPDATE / DELETE / INSERT / TRUNCATE statements that
 * would break a rule, sent through the real `psql` binary to a fresh database, are refused with
 * the right SQLSTATE, and leave every table exactly as it was.
 *
 * The session is an ordinary psql session of the database owner. (A superuser can always switch
 * triggers off, e.g. `session_replication_role = replica`; that is outside what a database can
 * refuse, see docs/reliability.md.)
 *
 * @module
 */
import assert from "node:assert/strict";
import { findPgBin } from "../../scripts/pg_cluster.ts";
import type { Queryable } from "../../src/db/port.ts";
import type { ClaimedJob, Job } from "../../src/job/job.ts";
import { jobIn, withStore } from "../_store.ts";
import { report } from "./_chaos.ts";

/** The psql binary: `$JOBENGINE_PG_BIN/psql`, else the server binaries' own. */
function psqlPath(): string {
  return `${Deno.env.get("JOBENGINE_PG_BIN") ?? findPgBin()}/psql`;
}

interface PsqlResult {
  ok: boolean;
  /** The SQLSTATE of the first error, when psql reported one. */
  sqlstate: string | null;
  stdout: string;
  stderr: string;
}

/** Runs `script` through psql (`ON_ERROR_STOP`, verbose errors) against `url`. */
async function psql(url: string, script: string): Promise<PsqlResult> {
  const child = new Deno.Command(psqlPath(), {
    args: ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { PGCONNECT_TIMEOUT: "10" },
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(`\\set VERBOSITY verbose\n${script}\n`));
  await writer.close();
  const out = await child.output();
  const stderr = new TextDecoder().decode(out.stderr);
  return {
    ok: out.success,
    sqlstate: /ERROR:\s+([0-9A-Z]{5}):/.exec(stderr)?.[1] ?? null,
    stdout: new TextDecoder().decode(out.stdout),
    stderr,
  };
}

/** A digest of every table the rules protect: equal digests, equal contents. */
async function snapshot(db: Queryable): Promise<Record<string, string>> {
  const tables = ["jobs", "job_history", "timeline_events", "job_dependencies", "job_transitions"];
  const parts = tables.map((table) =>
    `(select count(*) || ':' || coalesce(md5(string_agg(t::text, '|' order by t::text)), '')
        from jobengine.${table} t) as ${table}`
  );
  const [row] = await db.query<Record<string, string>>(`select ${parts.join(", ")}`);
  return row!;
}

/** Jobs in every state, and a pending job waiting on a pending dependency. */
interface Fixture {
  pending: Job;
  scheduled: Job;
  running: ClaimedJob;
  completed: Job;
  failed: Job;
  cancelled: Job;
  dependency: Job;
  dependent: Job;
  networked: Job;
}

async function fixture(store: Parameters<typeof jobIn>[0]): Promise<Fixture> {
  const dependency = await jobIn(store, "pending");
  const { job: dependent } = await store.create("abuse", {}, { dependsOn: [dependency.id] });
  const { job: networked } = await store.create("abuse", {}, { requiresNetwork: true });
  return {
    pending: await jobIn(store, "pending"),
    scheduled: await jobIn(store, "scheduled"),
    running: await jobIn(store, "running") as ClaimedJob,
    completed: await jobIn(store, "completed"),
    failed: await jobIn(store, "failed"),
    cancelled: await jobIn(store, "cancelled"),
    dependency,
    dependent,
    networked,
  };
}

interface AbuseCase {
  name: string;
  sql: (f: Fixture) => string;
  /** The SQLSTATE the database must raise. */
  sqlstate: string;
}

const FAKE_LEASE = `lease_id = gen_random_uuid(), lease_owner = 'psql', ` +
  `lease_expires_at = now() + interval '1 hour', started_at = now()`;

/** What SPEC sections 1 and 4 require the database itself to refuse. */
const CASES: AbuseCase[] = [
  // skipping states, resurrecting, self-transitions (the BEFORE UPDATE trigger: JE001)
  {
    name: "skip a state: pending -> completed",
    sql: (f) =>
      `update jobengine.jobs set status = 'completed', completed_at = now(), terminal = true
        where id = '${f.pending.id}'`,
    sqlstate: "JE001",
  },
  {
    name: "skip a state: pending -> running (with a forged lease)",
    sql: (f) =>
      `update jobengine.jobs set status = 'running', ${FAKE_LEASE} where id = '${f.pending.id}'`,
    sqlstate: "JE001",
  },
  {
    name: "skip a state: scheduled -> completed",
    sql: (f) =>
      `update jobengine.jobs set status = 'completed', completed_at = now(), terminal = true
        where id = '${f.scheduled.id}'`,
    sqlstate: "JE001",
  },
  {
    name: "resurrect: completed -> running",
    sql: (f) =>
      `update jobengine.jobs set status = 'running', terminal = false, completed_at = null,
        ${FAKE_LEASE} where id = '${f.completed.id}'`,
    sqlstate: "JE001",
  },
  {
    name: "resurrect: cancelled -> scheduled",
    sql: (f) =>
      `update jobengine.jobs set status = 'scheduled', terminal = false, cancelled_at = null
        where id = '${f.cancelled.id}'`,
    sqlstate: "JE001",
  },
  {
    name: "go back: running -> pending",
    sql: (f) =>
      `update jobengine.jobs set status = 'pending', lease_id = null, lease_owner = null,
        lease_expires_at = null where id = '${f.running.id}'`,
    sqlstate: "JE001",
  },
  {
    name: "self-transition: set status = status",
    sql: (f) => `update jobengine.jobs set status = status where id = '${f.running.id}'`,
    sqlstate: "JE001",
  },
  {
    name: "bulk: every job to completed (the valid running -> completed is rolled back too)",
    sql: () =>
      `update jobengine.jobs set status = 'completed', completed_at = coalesce(completed_at, now()),
        terminal = true, lease_id = null, lease_owner = null, lease_expires_at = null`,
    sqlstate: "JE001",
  },
  // creating a job anywhere but pending
  {
    name: "insert a job already running",
    sql: () =>
      `insert into jobengine.jobs (type, status, retry_policy, lease_id, lease_owner,
         lease_expires_at, started_at, attempt)
       values ('forged', 'running', '{}', gen_random_uuid(), 'psql', now() + interval '1 hour',
         now(), 1)`,
    sqlstate: "JE001",
  },
  {
    name: "insert a job already completed",
    sql: () =>
      `insert into jobengine.jobs (type, status, retry_policy, terminal, completed_at, result)
       values ('forged', 'completed', '{}', true, now(), '{"forged": true}')`,
    sqlstate: "JE001",
  },
  // rules that hold on the way into scheduled
  {
    name: "schedule a job whose dependency is not completed",
    sql: (f) => `update jobengine.jobs set status = 'scheduled' where id = '${f.dependent.id}'`,
    sqlstate: "JE007",
  },
  {
    name: "schedule a network job while sealed",
    sql: (f) =>
      `begin;
       select jobengine.set_sealed(true);
       update jobengine.jobs set status = 'scheduled' where id = '${f.networked.id}';
       commit;`,
    sqlstate: "JE003",
  },
  // dependency edges: written by create_job and create_workflow only, never changed (JE008)
  {
    name: "drop a dependency edge (the dependent would wait for good)",
    sql: (f) => `delete from jobengine.job_dependencies where job_id = '${f.dependent.id}'`,
    sqlstate: "JE008",
  },
  {
    name: "repoint a dependency edge",
    sql: (f) =>
      `update jobengine.job_dependencies set depends_on_id = '${f.completed.id}'
        where job_id = '${f.dependent.id}'`,
    sqlstate: "JE008",
  },
  {
    name: "forge a dependency edge (a cycle)",
    sql: (f) =>
      `insert into jobengine.job_dependencies (job_id, depends_on_id)
       select depends_on_id, job_id from jobengine.job_dependencies where job_id = '${f.dependent.id}'`,
    sqlstate: "JE008",
  },
  {
    name: "truncate job_dependencies",
    sql: () => `truncate jobengine.job_dependencies`,
    sqlstate: "JE008",
  },
  // history: append-only (JE008)
  {
    name: "rewrite history: update job_history",
    sql: (f) =>
      `update jobengine.job_history set to_status = 'completed', reason = 'forged'
        where job_id = '${f.failed.id}'`,
    sqlstate: "JE008",
  },
  {
    name: "delete history",
    sql: (f) => `delete from jobengine.job_history where job_id = '${f.completed.id}'`,
    sqlstate: "JE008",
  },
  {
    name: "truncate job_history",
    sql: () => `truncate jobengine.job_history`,
    sqlstate: "JE008",
  },
  {
    name: "forge a history row",
    sql: (f) =>
      `insert into jobengine.job_history (job_id, seq, from_status, to_status, attempt, reason)
       values ('${f.pending.id}', 2, 'pending', 'completed', 0, 'forged')`,
    sqlstate: "JE008",
  },
  // jobs with history are never deleted
  {
    name: "delete a job with history",
    sql: (f) => `delete from jobengine.jobs where id = '${f.completed.id}'`,
    sqlstate: "JE008",
  },
  {
    name: "delete every job",
    sql: () => `delete from jobengine.jobs`,
    sqlstate: "JE008",
  },
  {
    name: "truncate jobs (cascade)",
    sql: () => `truncate jobengine.jobs cascade`,
    sqlstate: "JE008",
  },
  // the event outbox: append-only
  {
    name: "rewrite an event",
    sql: (f) =>
      `update jobengine.timeline_events set type = 'job.completed'
        where subject_id = '${f.pending.id}'`,
    sqlstate: "JE008",
  },
  {
    name: "delete events",
    sql: () => `delete from jobengine.timeline_events`,
    sqlstate: "JE008",
  },
  {
    name: "truncate timeline_events",
    sql: () => `truncate jobengine.timeline_events`,
    sqlstate: "JE008",
  },
  {
    name: "forge an event",
    sql: (f) =>
      `insert into jobengine.timeline_events (type, tenant_id, subject_id, data)
       values ('job.completed', 'default', '${f.running.id}', '{"forged": true}')`,
    sqlstate: "JE008",
  },
  {
    name: "forge an event into a partition, reusing a sequence",
    sql: () =>
      `insert into jobengine.timeline_events_work (sequence, type, tenant_id, data)
       select sequence, 'job.completed', 'default', '{}' from jobengine.timeline_events limit 1`,
    sqlstate: "JE008",
  },
  // terminal moves with the status only (trigger _160_terminal_with_status, before the CHECK
  // constraints that would refuse a non-terminal completed job with 23514)
  {
    name: "un-terminate a completed job",
    sql: (f) => `update jobengine.jobs set terminal = false where id = '${f.completed.id}'`,
    sqlstate: "JE008",
  },
  {
    name: "drop the lease of a running job",
    sql: (f) =>
      `update jobengine.jobs set lease_id = null, lease_owner = null where id = '${f.running.id}'`,
    sqlstate: "23514",
  },
  // the SQL API from psql: the same rules
  {
    name: "complete_job with a forged lease",
    sql: (f) => `select jobengine.complete_job('${f.running.id}', gen_random_uuid(), '{}')`,
    sqlstate: "JE002",
  },
  {
    name: "complete_job of a pending job",
    sql: (f) => `select jobengine.complete_job('${f.pending.id}', gen_random_uuid(), '{}')`,
    sqlstate: "JE001",
  },
  {
    name: "schedule_job of an unknown job",
    sql: () => `select jobengine.schedule_job(gen_random_uuid())`,
    sqlstate: "JE004",
  },
  {
    name: "cancel_job of a completed job",
    sql: (f) => `select jobengine.cancel_job('${f.completed.id}')`,
    sqlstate: "JE001",
  },
];

Deno.test("SQL abuse from psql: rule-breaking UPDATE/DELETE/INSERT/TRUNCATE refused with the right SQLSTATE", async () => {
  await withStore(async ({ db, store, url }) => {
    const f = await fixture(store);
    const before = await snapshot(db);
    const failures: string[] = [];
    const started = performance.now();
    for (const abuse of CASES) {
      const result = await psql(url, `${abuse.sql(f)};`);
      if (result.ok) {
        failures.push(`${abuse.name}: accepted, expected ${abuse.sqlstate}`);
      } else if (result.sqlstate !== abuse.sqlstate) {
        failures.push(
          `${abuse.name}: SQLSTATE ${result.sqlstate}, expected ${abuse.sqlstate}: ` +
            result.stderr.split("\n")[0],
        );
      }
      const after = await snapshot(db);
      for (const table of Object.keys(before)) {
        if (after[table] !== before[table]) failures.push(`${abuse.name}: changed ${table}`);
      }
    }
    report("sql abuse", {
      statements: CASES.length,
      ms: Math.round(performance.now() - started),
    });
    assert.deepEqual(failures, [], `psql abuse not refused as specified:\n${failures.join("\n")}`);
    // and the rules still work for the lawful path afterwards
    const done = await store.complete(f.running.id, f.running.leaseId, { ok: true });
    assert.equal(done.status, "completed");
  });
});

Deno.test("SQL abuse from psql: a raw schedule cannot forge pending_dependencies to skip a pending dependency", async () => {
  await withStore(async ({ db, store, url }) => {
    const f = await fixture(store);
    const before = await snapshot(db);
    const result = await psql(
      url,
      `update jobengine.jobs set status = 'scheduled', pending_dependencies = 0
        where id = '${f.dependent.id}';`,
    );
    const [row] = await db.query<{ status: string }>(
      `select status from jobengine.jobs where id = $1::uuid`,
      [f.dependent.id],
    );
    assert.equal(
      row!.status,
      "pending",
      `a job whose dependency ${f.dependency.id} is still pending was scheduled by a raw UPDATE ` +
        `that also set pending_dependencies = 0 (psql: ${result.ok ? "UPDATE 1" : result.stderr})`,
    );
    assert.equal(result.sqlstate, "JE007");
    assert.deepEqual(await snapshot(db), before);
  });
});

Deno.test("SQL abuse from psql: a raw UPDATE of pending_dependencies cannot make schedule_ready promote early", async () => {
  await withStore(async ({ db, store, url }) => {
    const f = await fixture(store);
    const result = await psql(
      url,
      `update jobengine.jobs set pending_dependencies = 0 where id = '${f.dependent.id}';`,
    );
    // whatever psql got, the scheduler must go on promoting other jobs, and never this one
    const free = await jobIn(store, "pending");
    let promoted: number | string;
    try {
      promoted = await store.scheduleReady();
    } catch (error) {
      promoted = `schedule_ready failed: ${error instanceof Error ? error.message : error}`;
    }
    const rows = await db.query<{ id: string; status: string }>(
      `select id, status from jobengine.jobs where id = any ($1::uuid[])`,
      [[f.dependent.id, free.id]],
    );
    const status = Object.fromEntries(rows.map((row) => [row.id, row.status]));
    assert.deepEqual(
      { dependent: status[f.dependent.id], free: status[free.id] },
      { dependent: "pending", free: "scheduled" },
      `after a raw UPDATE set pending_dependencies = 0 on a job whose dependency ` +
        `${f.dependency.id} is still pending (psql: ${result.ok ? "accepted" : result.stderr}), ` +
        `schedule_ready returned ${promoted}`,
    );
  });
});

Deno.test("SQL abuse from psql: the transition table cannot be rewritten to allow pending -> completed", async () => {
  await withStore(async ({ db, store, url }) => {
    const f = await fixture(store);
    const [{ pairs }] = await db.query<{ pairs: number }>(
      `select count(*)::int as pairs from jobengine.job_transitions`,
    ) as [{ pairs: number }];
    const result = await psql(
      url,
      `insert into jobengine.job_transitions (from_status, to_status) values ('pending', 'completed');
       update jobengine.jobs set status = 'completed', completed_at = now(), terminal = true
        where id = '${f.pending.id}';`,
    );
    const [row] = await db.query<{ status: string; pairs: number }>(
      `select (select status::text from jobengine.jobs where id = $1::uuid) as status,
              (select count(*)::int from jobengine.job_transitions) as pairs`,
      [f.pending.id],
    );
    assert.deepEqual(
      row,
      { status: "pending", pairs },
      `INSERT INTO jobengine.job_transitions was accepted and then allowed pending -> completed ` +
        `(psql: ${result.ok ? "accepted" : result.stderr})`,
    );
  });
});

Deno.test("SQL abuse from psql: raw UPDATEs of attempt and version (history bookkeeping) are refused", async () => {
  await withStore(async ({ db, store, url }) => {
    const f = await fixture(store);
    const before = await snapshot(db);
    const outcomes: string[] = [];
    for (
      const sql of [
        `update jobengine.jobs set attempt = 0 where id = '${f.running.id}'`,
        `update jobengine.jobs set version = 1 where id = '${f.running.id}'`,
      ]
    ) {
      const result = await psql(url, `${sql};`);
      if (result.ok) outcomes.push(`accepted: ${sql.replace(/\s+/g, " ")}`);
    }
    assert.deepEqual(
      outcomes,
      [],
      "attempt counts entries into running and version is the seq of the latest history row; " +
        "a raw UPDATE of either falsifies the record (a rewritten version makes the next " +
        "transition fail with 23505 on job_history_pkey)",
    );
    assert.deepEqual(await snapshot(db), before);
  });
});
