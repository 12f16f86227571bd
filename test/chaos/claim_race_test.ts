/**
 * Chaos scenario 3, claim race: 16 connections claim from the same 3,000 scheduled jobs at once,
 * all starting from the head of the same queue. `FOR UPDATE SKIP LOCKED` must hand every job to
 * exactly one of them: checked in memory (no id twice, each lease matches the database) and in
 * job_history (exactly one `scheduled -> running` per job).
 *
 * @module
 */
import assert from "node:assert/strict";
import { createPostgresDatabase } from "../../src/db/postgres.ts";
import type { Database } from "../../src/db/port.ts";
import { JobStore } from "../../src/job/job_store.ts";
import { freshDatabase } from "../_db.ts";
import {
  assertHistoryConsistent,
  assertStepExactlyOnce,
  assertTimelineMatchesHistory,
  report,
} from "./_chaos.ts";

const JOBS = 3000;
const CONNECTIONS = 16;

interface Claim {
  id: string;
  leaseId: string;
  connection: number;
}

Deno.test("claim race: 16 connections claiming concurrently never get the same job twice", async () => {
  const fresh = await freshDatabase();
  const admin = createPostgresDatabase(fresh.url, { max: 2, applicationName: "chaos-test" });
  const connections: Database[] = [];
  try {
    await admin.query(
      `select count(*) from generate_series(1, $1::int) g,
         lateral jobengine.create_job(p_type => 'race', p_payload => jsonb_build_object('n', g),
           p_options => jsonb_build_object('priority', g % 3)) j`,
      [JOBS],
    );
    assert.equal(await new JobStore(admin).scheduleReady(JOBS), JOBS);

    for (let i = 0; i < CONNECTIONS; i++) {
      connections.push(
        createPostgresDatabase(fresh.url, { max: 1, applicationName: `claimer-${i}` }),
      );
    }
    // open every connection first, so that the race starts together
    await Promise.all(connections.map((db) => db.query("select 1")));

    const claims: Claim[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    let calls = 0;
    const started = performance.now();
    await Promise.all(connections.map(async (db, connection) => {
      const store = new JobStore(db);
      let empty = 0;
      for (let round = 0; empty < 2; round++) {
        const limit = 1 + ((connection + round) % 4);
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        calls++;
        let got: { id: string; leaseId: string }[];
        try {
          // half the connections call the SQL API by name, half go through JobStore
          got = connection % 2 === 0
            ? (await db.query<{ id: string; lease_id: string }>(
              `select id, lease_id from jobengine.claim_jobs(
                 p_worker => $1::text, p_types => array['race'], p_limit => $2::int,
                 p_lease_seconds => 300)`,
              [`claimer-${connection}`, limit],
            )).map((row) => ({ id: row.id, leaseId: row.lease_id }))
            : await store.claim({
              workerId: `claimer-${connection}`,
              types: ["race"],
              limit,
              leaseSeconds: 300,
            });
        } finally {
          inFlight--;
        }
        assert.ok(got.length <= limit, "a claim never returns more than its limit");
        for (const job of got) claims.push({ id: job.id, leaseId: job.leaseId, connection });
        empty = got.length === 0 ? empty + 1 : 0;
      }
    }));
    const elapsed = performance.now() - started;

    // in memory: every job once, nothing left over
    const byId = new Map<string, Claim[]>();
    for (const claim of claims) byId.set(claim.id, [...(byId.get(claim.id) ?? []), claim]);
    const twice = [...byId.values()].filter((list) => list.length > 1);
    assert.deepEqual(twice, [], "no job was claimed twice");
    assert.equal(claims.length, JOBS, "every job was claimed");
    const perConnection = connections.map((_, i) =>
      claims.filter((c) => c.connection === i).length
    );
    assert.ok(perConnection.every((n) => n > 0), `every connection claimed: ${perConnection}`);
    assert.ok(maxInFlight >= CONNECTIONS / 2, `claims overlapped (${maxInFlight} at once)`);

    // in the database: each job running under the lease its claimer got back
    const rows = await admin.query<{ id: string; lease_id: string; lease_owner: string }>(
      `select id, lease_id, lease_owner from jobengine.jobs where status = 'running'`,
    );
    assert.equal(rows.length, JOBS);
    const mismatched = rows.filter((row) => {
      const claim = byId.get(row.id)?.[0];
      return !claim || claim.leaseId !== row.lease_id ||
        row.lease_owner !== `claimer-${claim.connection}`;
    });
    assert.deepEqual(mismatched, [], "each lease in the database is the one its claimer holds");

    // in history: exactly one scheduled -> running per job, attempt 1
    await assertStepExactlyOnce(admin, { from: "scheduled", to: "running" });
    const [attempts] = await admin.query<{ wrong: number }>(
      `select count(*)::int as wrong from jobengine.job_history
        where to_status = 'running' and attempt <> 1`,
    );
    assert.equal(attempts!.wrong, 0);
    await assertHistoryConsistent(admin);
    await assertTimelineMatchesHistory(admin);

    report("claim race", {
      jobs: JOBS,
      connections: CONNECTIONS,
      claimCalls: calls,
      maxInFlight,
      perConnection: perConnection.join("/"),
      ms: Math.round(elapsed),
    });
  } finally {
    for (const db of connections) await db.close();
    await admin.close();
    await fresh.drop();
  }
});

Deno.test("claim race: a claim skips a job another transaction has locked instead of waiting", async () => {
  const fresh = await freshDatabase();
  const holder = createPostgresDatabase(fresh.url, { max: 1, applicationName: "lock-holder" });
  const claimer = createPostgresDatabase(fresh.url, { max: 1, applicationName: "claimer" });
  try {
    const store = new JobStore(claimer);
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const { job } = await store.create("skip", { n: i }, { priority: 10 - i });
      await store.schedule(job.id);
      ids.push(job.id);
    }
    let release!: () => void;
    const released = new Promise<void>((resolve) => release = resolve);
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => locked = resolve);
    // lock the head of the queue (the higher priority job) and keep the transaction open
    const holding = holder.transaction(async (tx) => {
      await tx.query(`select id from jobengine.jobs where id = $1::uuid for update`, [ids[0]]);
      locked();
      await released;
    });
    await isLocked;
    const started = performance.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let claimed;
    try {
      claimed = await Promise.race([
        store.claim({ workerId: "skipper", types: ["skip"], limit: 2 }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("claim blocked on a locked row")), 5000);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      release();
      await holding;
    }
    const waited = performance.now() - started;
    assert.deepEqual(claimed.map((job) => job.id), [ids[1]], "the locked head was skipped");
    assert.ok(waited < 5000);
    const [next] = await store.claim({ workerId: "skipper", types: ["skip"], limit: 2 });
    assert.equal(next?.id, ids[0], "once unlocked, the head is claimable");
  } finally {
    await claimer.close();
    await holder.close();
    await fresh.drop();
  }
});
