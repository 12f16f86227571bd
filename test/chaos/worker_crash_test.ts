/**
 * Chaos scenario 1, worker crash: 2,000 jobs on 4 worker processes; two are killed with SIGKILL
 * mid-run. Their leases (2 s) lapse, the reaper (a JobScheduler in this process) fails the
 * stranded jobs with `lease_expired` and retries them, and every job completes exactly once
 * (one `running -> completed` row per job in job_history).
 *
 * @module
 */
import assert from "node:assert/strict";
import { createPostgresDatabase } from "../../src/db/postgres.ts";
import { JobScheduler } from "../../src/scheduler/job_scheduler.ts";
import { freshDatabase } from "../_db.ts";
import {
  assertHistoryConsistent,
  assertStepExactlyOnce,
  assertTimelineMatchesHistory,
  type DenoChild,
  historySteps,
  report,
  spawnDeno,
  stopChildren,
  until,
} from "./_chaos.ts";

const JOBS = 2000;
const LEASE_SECONDS = 2;

Deno.test("worker crash: 2,000 jobs, 2 of 4 worker processes SIGKILLed, all complete exactly once", async () => {
  const fresh = await freshDatabase();
  const db = createPostgresDatabase(fresh.url, { max: 4, applicationName: "chaos-test" });
  const scheduler = new JobScheduler(db, { intervalMs: 200, leaseSeconds: 10 });
  const workers: DenoChild[] = [];
  const started = performance.now();
  try {
    for (let i = 1; i <= 4; i++) {
      workers.push(spawnDeno("./_worker_process.ts", {
        DATABASE_URL: fresh.url,
        CHAOS_WORKER_ID: `crash-${i}`,
        CHAOS_JOB_TYPE: "crash",
        CHAOS_HANDLER_MS: "30",
        CHAOS_LEASE_SECONDS: String(LEASE_SECONDS),
        CHAOS_CONCURRENCY: "8",
      }));
    }
    await Promise.all(workers.map((w) => w.waitForLine(/^ready /, 60_000)));
    await scheduler.start();
    const runStarted = performance.now();
    await db.query(
      `select count(*) from generate_series(1, $1::int) g,
         lateral jobengine.create_job(
           p_type => 'crash',
           p_payload => jsonb_build_object('n', g),
           p_options => '{"retryPolicy": {"maxRetries": 3, "initialDelayMs": 0, "jitter": 0}}'::jsonb) j`,
      [JOBS],
    );
    const completed = async () => {
      const [row] = await db.query<{ n: number }>(
        `select count(*)::int as n from jobengine.jobs where status = 'completed'`,
      );
      return row!.n;
    };
    await until(async () => await completed() >= JOBS / 5, 60_000, "a fifth of the jobs", 10);

    // SIGKILL two workers that hold leases right now, then see what they left running.
    const victims = [workers[0]!, workers[1]!];
    const victimIds = ["crash-1", "crash-2"];
    const doneAtKill = await completed();
    await Promise.all(victims.map((w) => w.kill("SIGKILL")));
    const killedAt = performance.now();
    const stranded = (await db.query<{ id: string }>(
      `select id from jobengine.jobs where status = 'running' and lease_owner = any ($1::text[])`,
      [victimIds],
    )).map((row) => row.id);
    assert.ok(doneAtKill < JOBS, "the workers were killed mid-run");
    assert.ok(stranded.length > 0, "the killed workers held leases when they died");

    await until(async () => await completed() === JOBS, 120_000, `${JOBS} completions`, 50);
    const recoveredMs = performance.now() - killedAt;
    report("worker crash", {
      jobs: JOBS,
      completedAtKill: doneAtKill,
      stranded: stranded.length,
      recoveryMs: Math.round(recoveredMs),
      runMs: Math.round(performance.now() - runStarted),
      totalMs: Math.round(performance.now() - started),
      reaped: scheduler.stats.reaped,
    });

    // every job completed, exactly once
    const [statuses] = await db.query<{ total: number; completed: number }>(
      `select count(*)::int as total, count(*) filter (where status = 'completed')::int as completed
         from jobengine.jobs`,
    );
    assert.deepEqual(statuses, { total: JOBS, completed: JOBS });
    await assertStepExactlyOnce(db, { from: "running", to: "completed" });

    // the stranded jobs were failed by the reaper (lease_expired), retried, and then completed
    const reaped = await db.query<{ id: string; attempts: number; retried: boolean }>(
      `select h.job_id as id, j.attempt as attempts,
              exists (select from jobengine.job_history r
                       where r.job_id = h.job_id and r.seq = h.seq + 1
                         and r.from_status = 'failed' and r.to_status = 'scheduled') as retried
         from jobengine.job_history h join jobengine.jobs j on j.id = h.job_id
        where h.from_status = 'running' and h.to_status = 'failed' and h.reason = 'lease_expired'`,
    );
    const reapedIds = new Set(reaped.map((row) => row.id));
    const missed = stranded.filter((id) => !reapedIds.has(id));
    assert.deepEqual(missed, [], "every job stranded by a killed worker was reaped");
    assert.ok(reaped.every((row) => row.retried && row.attempts >= 2), "reaped jobs were retried");
    const [owners] = await db.query<{ victims: number }>(
      `select count(*)::int as victims from jobengine.job_history
        where from_status = 'running' and to_status = 'failed' and reason = 'lease_expired'
          and details -> 'error' ->> 'leaseOwner' = any ($1::text[])`,
      [victimIds],
    );
    assert.ok(owners!.victims >= stranded.length, "the reaped leases were the killed workers'");

    // nothing else happened to the jobs: no terminal failure, no cancellation
    const steps = await historySteps(db);
    assert.equal(steps["null->pending"], JOBS);
    assert.equal(steps["pending->scheduled"], JOBS);
    assert.equal(steps["running->completed"], JOBS);
    assert.equal(steps["running->failed"], reaped.length);
    assert.equal(steps["failed->scheduled"], reaped.length);
    assert.equal(steps["scheduled->running"], JOBS + reaped.length);
    assert.equal(steps["running->cancelled"] ?? 0, 0);
    await assertHistoryConsistent(db);
    await assertTimelineMatchesHistory(db);
  } finally {
    await scheduler.stop();
    await stopChildren(workers);
    await db.close();
    await fresh.drop();
  }
});
