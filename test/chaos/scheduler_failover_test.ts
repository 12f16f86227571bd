/**
 * Chaos scenario 4, scheduler failover: two JobScheduler processes on one database while jobs
 * keep arriving. Exactly one leads; SIGKILL it; the other takes over within one lease period
 * (plus one tick) of the kill, and no job is promoted twice (exactly one `pending -> scheduled`
 * per job in job_history), nor left behind.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createPostgresDatabase } from "../../src/db/postgres.ts";
import { freshDatabase } from "../_db.ts";
import {
  assertHistoryConsistent,
  assertStepExactlyOnce,
  assertTimelineMatchesHistory,
  delay,
  type DenoChild,
  historySteps,
  report,
  spawnDeno,
  stopChildren,
  until,
} from "./_chaos.ts";

const LEASE_SECONDS = 3;
const INTERVAL_MS = 250;
/** Headroom for a loaded machine (two shared cores) on top of lease + tick. */
const SLACK_MS = 1500;

Deno.test("scheduler failover: SIGKILL the leader; the standby takes over within one lease, no double promotion", async () => {
  const fresh = await freshDatabase();
  const db = createPostgresDatabase(fresh.url, { max: 3, applicationName: "chaos-test" });
  const env = {
    DATABASE_URL: fresh.url,
    CHAOS_LEASE_SECONDS: String(LEASE_SECONDS),
    CHAOS_INTERVAL_MS: String(INTERVAL_MS),
  };
  const schedulers = new Map<string, DenoChild>();
  let producing = true;
  let producer: Promise<void> = Promise.resolve();
  try {
    // both start at once and race for leadership
    for (const id of ["engine-a", "engine-b"]) {
      schedulers.set(id, spawnDeno("./_scheduler_process.ts", { ...env, CHAOS_INSTANCE_ID: id }));
    }
    await Promise.all([...schedulers.values()].map((s) => s.waitForLine(/^ready /, 60_000)));
    const holder = async () => {
      const [row] = await db.query<{ holder: string; expires_at: Date }>(
        `select holder, expires_at from jobengine.leaders where name = 'scheduler'`,
      );
      return row;
    };
    const first = await holder();
    assert.ok(first && schedulers.has(first.holder), "one of the two leads");
    const leaderId = first.holder;
    const standbyId = leaderId === "engine-a" ? "engine-b" : "engine-a";
    const leader = schedulers.get(leaderId)!;
    const standby = schedulers.get(standbyId)!;
    await leader.waitForLine(/^leader /, 10_000);
    assert.ok(!standby.lines.some((line) => line.startsWith("leader ")), "only one leads");

    // jobs keep arriving: 10 every 40 ms
    let created = 0;
    producer = (async () => {
      while (producing) {
        await db.query(
          `select count(*) from generate_series(1, 10) g,
             lateral jobengine.create_job(p_type => 'failover', p_payload => jsonb_build_object('n', g)) j`,
        );
        created += 10;
        await delay(40);
      }
    })();
    const scheduled = async () => {
      const [row] = await db.query<{ n: number }>(
        `select count(*)::int as n from jobengine.jobs where status = 'scheduled'`,
      );
      return row!.n;
    };
    await until(async () => await scheduled() >= 200, 30_000, "the leader to promote jobs", 20);

    // kill the leader; its lease stays until it lapses
    const lease = await holder();
    await leader.kill("SIGKILL");
    const killedAt = Date.now();
    assert.equal(lease?.holder, leaderId);
    const line = await standby.waitForLine(
      /^leader /,
      LEASE_SECONDS * 1000 + INTERVAL_MS + SLACK_MS + 10_000,
    );
    const tookOverAt = Number(line.split(" ")[2]);
    const takeoverMs = tookOverAt - killedAt;
    const afterExpiryMs = tookOverAt - lease!.expires_at.getTime();
    assert.equal((await holder())?.holder, standbyId);
    assert.ok(
      tookOverAt >= lease!.expires_at.getTime() - 50,
      `the standby waited for the lease to lapse (took over ${afterExpiryMs} ms after expiry)`,
    );
    assert.ok(
      takeoverMs <= LEASE_SECONDS * 1000 + INTERVAL_MS + SLACK_MS,
      `takeover ${takeoverMs} ms after the kill exceeds one lease (${LEASE_SECONDS} s) + one tick`,
    );

    // the new leader keeps promoting what arrives; then everything drains
    const atTakeover = await scheduled();
    await until(async () => await scheduled() > atTakeover + 50, 30_000, "promotions", 20);
    producing = false;
    await producer;
    await until(async () => await scheduled() === created, 30_000, "all jobs scheduled", 20);

    const steps = await historySteps(db);
    assert.deepEqual(steps, { "null->pending": created, "pending->scheduled": created });
    await assertStepExactlyOnce(db, { from: "pending", to: "scheduled" });
    await assertHistoryConsistent(db);
    await assertTimelineMatchesHistory(db);
    report("scheduler failover", {
      jobs: created,
      leaseSeconds: LEASE_SECONDS,
      takeoverMsAfterKill: takeoverMs,
      takeoverMsAfterLeaseExpiry: afterExpiryMs,
    });
  } finally {
    producing = false;
    await producer.catch(() => {});
    await stopChildren([...schedulers.values()]);
    await db.close();
    await fresh.drop();
  }
});
