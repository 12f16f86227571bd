import assert from "node:assert/strict";
import { JobScheduler } from "../../src/scheduler/job_scheduler.ts";
import { JobStore } from "../../src/job/job_store.ts";
import { withStore } from "../_store.ts";
import { until } from "../_wait.ts";

Deno.test("JobScheduler promotes a new job on NOTIFY, without waiting for its interval", async () => {
  await withStore(async ({ db, store }) => {
    const scheduler = new JobScheduler(db, { intervalMs: 60_000 });
    await scheduler.start();
    try {
      assert.equal(scheduler.isLeader, true);
      const { job } = await store.create("notify-me");
      await until(
        async () => (await store.get(job.id)).status === "scheduled",
        2000,
        "the job to be scheduled",
      );
      assert.equal((await store.get(job.id)).statusReason, "scheduler");
    } finally {
      await scheduler.stop();
    }
  });
});

Deno.test("JobScheduler reaps an expired lease when it lapses, via its timer", async () => {
  await withStore(async ({ db, store }) => {
    const { job } = await store.create("lapse", {}, { retryPolicy: { maxRetries: 0 } });
    await store.schedule(job.id);
    const [claimed] = await store.claim({ workerId: "gone", types: ["lapse"], leaseSeconds: 1 });
    assert.ok(claimed);
    const scheduler = new JobScheduler(db, { intervalMs: 60_000 });
    await scheduler.start();
    try {
      await until(
        async () => (await store.get(job.id)).status === "failed",
        3000,
        "the lease to be reaped",
      );
      const reaped = await store.get(job.id);
      assert.equal(reaped.lastError?.code, "lease_expired");
      assert.equal(reaped.terminal, true);
      // the reap is visible to other sessions as soon as it commits, a moment before the
      // scheduler has read its answer and counted it
      await until(() => scheduler.stats.reaped > 0, 1000, "the scheduler to count the reap");
      assert.equal(scheduler.stats.reaped, 1);
    } finally {
      await scheduler.stop();
    }
  });
});

Deno.test("JobScheduler: one leader per database; a standby takes over within the lease when the leader dies", async () => {
  await withStore(async ({ connect, store }) => {
    const first = new JobScheduler(connect(1), {
      intervalMs: 100,
      leaseSeconds: 1,
      instanceId: "first",
    });
    const second = new JobScheduler(connect(1), {
      intervalMs: 100,
      leaseSeconds: 1,
      instanceId: "second",
    });
    await first.start();
    await second.start();
    try {
      assert.equal(first.isLeader, true);
      assert.equal(second.isLeader, false);
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(second.isLeader, false, "the standby stays standing by while the leader renews");
      // the leader "dies": it stops ticking without releasing its lease
      await first.stopWithoutRelease();
      const waited = await until(
        () => Promise.resolve(second.isLeader),
        3000,
        "the standby to take over",
      );
      assert.ok(waited <= 1500, `took over in ${Math.round(waited)} ms (lease 1 s, tick 100 ms)`);
      const { job } = await store.create("after-failover");
      await until(
        async () => (await store.get(job.id)).status === "scheduled",
        2000,
        "the new leader to schedule",
      );
    } finally {
      await first.stop();
      await second.stop();
    }
  });
});

Deno.test("JobScheduler releases leadership on a clean stop", async () => {
  await withStore(async ({ connect }) => {
    const first = new JobScheduler(connect(1), {
      intervalMs: 50,
      leaseSeconds: 30,
      instanceId: "a",
    });
    const second = new JobScheduler(connect(1), {
      intervalMs: 50,
      leaseSeconds: 30,
      instanceId: "b",
    });
    await first.start();
    await second.start();
    try {
      assert.equal(first.isLeader, true);
      await first.stop();
      await until(() => Promise.resolve(second.isLeader), 1000, "b to lead after a's clean stop");
    } finally {
      await second.stop();
    }
  });
});

Deno.test("JobScheduler never promotes a job twice with two instances racing", async () => {
  await withStore(async ({ connect, db }) => {
    const store = new JobStore(db);
    const a = new JobScheduler(connect(1), { intervalMs: 20, leaseSeconds: 1, instanceId: "a" });
    const b = new JobScheduler(connect(1), { intervalMs: 20, leaseSeconds: 1, instanceId: "b" });
    await Promise.all([a.start(), b.start()]);
    try {
      for (let i = 0; i < 300; i++) await store.create("race");
      await until(
        async () => {
          const rows = await db.query<{ n: number }>(
            "select count(*)::int as n from jobengine.jobs where status = 'pending'",
          );
          return rows[0]!.n === 0;
        },
        5000,
        "all jobs scheduled",
      );
      const rows = await db.query<{ n: number }>(
        `select count(*)::int as n from jobengine.job_history where to_status = 'scheduled'`,
      );
      assert.equal(rows[0]!.n, 300);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});
