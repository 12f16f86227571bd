/**
 * Scenario `baseline`: the database's own limits on the same cluster, in the same run.
 *
 * - `pgbench -i -s N` then `pgbench -n -N -c 8 -j 2 -T 15`: simple-update transactions per second;
 * - the same transaction plus one `pg_notify` (what every engine transition sends), to show
 *   what NOTIFY costs on this disk: its commit lock is held through the WAL flush;
 * - a one-table queue (id, status, priority, created_at) worked by a pgbench script with one
 *   client per core: claim a batch of the worker runtime's claim size with `FOR UPDATE SKIP
 *   LOCKED` (one transaction), then complete it (a second transaction); jobs per second. The
 *   `processing` scenario runs the engine's own claim and completion the same way.
 *
 * @module
 */
import type { BenchDatabase } from "./_db.ts";
import { type ResultRow, type Scenario, SQL_CLIENTS } from "./_harness.ts";

/** pgbench's built-in `-N` transaction plus one `pg_notify`, as every engine transition sends. */
const NOTIFY_SCRIPT = `\\set aid random(1, 100000 * :scale)
\\set bid random(1, 1 * :scale)
\\set tid random(1, 10 * :scale)
\\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
SELECT pg_notify('bench_notify', :aid::text);
END;
`;

/** The queue script: claim a batch (SKIP LOCKED), then complete exactly those rows. */
function queueScript(batch: number): string {
  return [
    `with c as (select id from queue where status = 'scheduled' order by priority desc, created_at, id limit ${batch} for update skip locked), ` +
    `u as (update queue q set status = 'running', locked_by = 'pgbench', locked_at = now() from c where q.id = c.id returning q.id) ` +
    `select coalesce(string_agg(id::text, ','), '0') as ids from u \\gset`,
    `update queue set status = 'completed', completed_at = now() where id in (:ids) and status = 'running';`,
    "",
  ].join("\n");
}

/** The database's own limits. */
export const baseline: Scenario = {
  name: "baseline",
  description: "pgbench -N tps and a one-table SKIP LOCKED queue, same cluster",
  async run(ctx) {
    const { sizes } = ctx;
    const rows: ResultRow[] = [];

    // 1. pgbench -N
    const pg = await ctx.databases.create("pgbench");
    try {
      ctx.log(`pgbench -i -s ${sizes.pgbenchScale}`);
      await pg.pgbench(["-i", "-q", "-s", String(sizes.pgbenchScale)]);
      await pg.psql("checkpoint");
      ctx.log(`pgbench -n -N -c 8 -j 2 -T ${sizes.pgbenchSeconds}`);
      const before = await pg.counters();
      const run = await pg.pgbench([
        "-n",
        "-N",
        "-c",
        "8",
        "-j",
        "2",
        "-T",
        String(sizes.pgbenchSeconds),
      ]);
      await pg.waitIdle();
      const per = await pg.perJob(before, run.transactions);
      ctx.baseline.pgbenchTps = run.tps;
      rows.push({
        scenario: "baseline",
        name: "pgbench -N, 8 clients",
        value: run.tps,
        unit: "tps",
        count: run.transactions,
        seconds: sizes.pgbenchSeconds,
        commitsPerJob: per.commitsPerJob,
        walBytesPerJob: per.walBytesPerJob,
        walSyncsPerJob: per.walSyncsPerJob,
        note: `scale ${sizes.pgbenchScale}; latency avg ${run.latencyMs} ms`,
        details: { latencyMs: run.latencyMs },
      });

      // the same transaction with one pg_notify, as every engine transition sends: NOTIFY takes
      // a database-wide lock at commit and holds it through the WAL flush
      const seconds = sizes.notifySeconds;
      ctx.log(`pgbench -N + pg_notify, -c 8 -j 2 -T ${seconds}`);
      const beforeNotify = await pg.counters();
      const notify = await pg.pgbench(
        ["-n", "-c", "8", "-j", "2", "-T", String(seconds), "-D", `scale=${sizes.pgbenchScale}`],
        NOTIFY_SCRIPT,
      );
      await pg.waitIdle();
      const perNotify = await pg.perJob(beforeNotify, notify.transactions);
      rows.push({
        scenario: "baseline",
        name: "pgbench -N + pg_notify per tx, 8 clients",
        value: notify.tps,
        unit: "tps",
        count: notify.transactions,
        seconds,
        commitsPerJob: perNotify.commitsPerJob,
        walBytesPerJob: perNotify.walBytesPerJob,
        walSyncsPerJob: perNotify.walSyncsPerJob,
        ratio: { to: "pgbench -N tps", value: notify.tps / run.tps },
        note: `the -N transaction plus one pg_notify; latency avg ${notify.latencyMs} ms`,
        details: { script: NOTIFY_SCRIPT, latencyMs: notify.latencyMs },
      });
    } finally {
      await pg.drop();
    }

    // 2. the one-table SKIP LOCKED queue, claimed in the worker runtime's claim size by one
    // client per core (the engine's own SQL is measured the same way in `processing`)
    const q: BenchDatabase = await ctx.databases.create("queue");
    const batch = ctx.claimBatch;
    const clients = SQL_CLIENTS;
    try {
      await q.psql(`
        create table queue (
          id bigserial primary key,
          status text not null default 'scheduled',
          priority integer not null default 0,
          created_at timestamptz not null default now(),
          locked_by text,
          locked_at timestamptz,
          completed_at timestamptz
        );
        insert into queue (created_at)
          select now() + g * interval '1 microsecond' from generate_series(1, ${sizes.queueRows}) g;
        create index queue_claim_idx on queue (priority desc, created_at, id) where status = 'scheduled';`);
      await q.psql("vacuum analyze queue");
      await q.psql("checkpoint");
      ctx.log(
        `queue: pgbench -c ${clients} -j ${clients} -T ${sizes.queueSeconds}, batch ${batch}`,
      );
      const before = await q.counters();
      const run = await q.pgbench(
        ["-n", "-c", String(clients), "-j", String(clients), "-T", String(sizes.queueSeconds)],
        queueScript(batch),
      );
      await q.waitIdle();
      const completed = Number(
        await q.value(`select count(*) from queue where status = 'completed'`),
      );
      const per = await q.perJob(before, completed);
      const jobsPerSecond = run.tps * (completed / run.transactions);
      ctx.baseline.queueJobsPerSecond = jobsPerSecond;
      rows.push({
        scenario: "baseline",
        name: `SKIP LOCKED queue, batch ${batch}, ${clients} clients`,
        value: jobsPerSecond,
        unit: "jobs/s",
        count: completed,
        seconds: sizes.queueSeconds,
        commitsPerJob: per.commitsPerJob,
        walBytesPerJob: per.walBytesPerJob,
        walSyncsPerJob: per.walSyncsPerJob,
        note: completed >= sizes.queueRows
          ? "queue ran empty: figure is a lower bound"
          : `${sizes.queueRows.toLocaleString("en-US")} rows queued; claim tx + complete tx`,
        details: {
          script: queueScript(batch),
          transactions: run.transactions,
          tps: run.tps,
        },
      });
    } finally {
      await q.drop();
    }
    return rows;
  },
};
