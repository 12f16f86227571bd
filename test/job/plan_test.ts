/**
 * Plans that must not depend on when a session first ran them. PL/pgSQL keeps a statement's
 * generic plan for the session; `complete_jobs` forces one (docs/performance.md, finding 17), so
 * a worker that starts on an empty database must still get the primary-key plan.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { withStore } from "../_store.ts";

/**
 * One session (one plan cache) that collects its LOG notices; `explain()` turns `auto_explain`
 * on for every statement from then on, nested ones (the triggers') included.
 */
function explainedSession(url: string) {
  const plans: string[] = [];
  const sql = postgres(url, {
    max: 1,
    onnotice: (notice) => {
      if (notice.severity === "LOG") plans.push(String(notice.message));
    },
  });
  async function explain(): Promise<void> {
    await sql`load 'auto_explain'`;
    await sql`set auto_explain.log_min_duration = 0`;
    await sql`set auto_explain.log_nested_statements = on`;
    await sql`set client_min_messages = log`;
  }
  return { sql, plans, explain };
}

Deno.test("complete_jobs first called on an empty jobs table still finds its jobs by primary key once the table has grown", async () => {
  await withStore(async ({ url }) => {
    const sql = postgres(url, { max: 1, onnotice: () => {} }); // one session: one plan cache
    try {
      // no ANALYZE in between, which would make PostgreSQL plan again
      await sql`alter table jobengine.jobs set (autovacuum_enabled = false)`;
      await sql`select jobengine.complete_jobs('{}', '{}', '{}')`;
      const jobs = JSON.stringify(
        Array.from({ length: 2000 }, (_, i) => ({ ref: `j${i}`, type: "plan-probe" })),
      );
      await sql`select count(*) from jobengine.create_workflow(${jobs}::text::jsonb, '{}')`;
      await sql`select jobengine.schedule_ready(5000)`;
      const claimed = await sql`
        select id, lease_id from jobengine.claim_jobs('w', array['plan-probe'], 3, 60)`;
      const { scans, completed } = await sql.begin(async (tx) => {
        const before = await tx`
          select seq_scan from pg_stat_xact_user_tables
           where schemaname = 'jobengine' and relname = 'jobs'`;
        const done = await tx`
          select id from jobengine.complete_jobs(
            ${claimed.map((c) => c.id)}::uuid[], ${claimed.map((c) => c.lease_id)}::uuid[],
            array_fill('{}'::jsonb, array[${claimed.length}::int]))`;
        const after = await tx`
          select seq_scan from pg_stat_xact_user_tables
           where schemaname = 'jobengine' and relname = 'jobs'`;
        return {
          scans: Number(after[0]!.seq_scan) - Number(before[0]!.seq_scan),
          completed: done.length,
        };
      });
      assert.equal(completed, 3);
      assert.equal(scans, 0, "no sequential scan of jobs for a batch of 3");
    } finally {
      await sql.end();
    }
  });
});

Deno.test("the transition triggers join old and new rows without a nested loop, even after a session's first statement changed one row", async () => {
  await withStore(async ({ url }) => {
    const { sql, plans, explain } = explainedSession(url);
    try {
      // first transitions of the session, one row each: the triggers plan their statements now
      const [one] = await sql`select id from jobengine.create_job('plan-one', '{}', '{}')`;
      await sql`select jobengine.schedule_job(${one!.id})`;
      await sql`select jobengine.claim_jobs('w', array['plan-one'], 1, 60)`;
      // then one statement that changes many: a root whose completion schedules 300 dependents
      const jobs = JSON.stringify([
        { ref: "root", type: "plan-root" },
        ...Array.from({ length: 300 }, (_, i) => ({
          ref: `d${i}`,
          type: "plan-dep",
          dependsOn: ["root"],
        })),
      ]);
      await sql`select count(*) from jobengine.create_workflow(${jobs}::text::jsonb, '{}')`;
      await sql`select jobengine.schedule_ready(10)`;
      const [root] = await sql`
        select id, lease_id from jobengine.claim_jobs('w', array['plan-root'], 1, 60)`;
      await explain();
      await sql`select jobengine.complete_job(${root!.id}, ${root!.lease_id}, '{}')`;
      await sql`reset client_min_messages`;
      const [scheduled] = await sql`
        select count(*)::int as n from jobengine.jobs where type = 'plan-dep' and status = 'scheduled'`;
      assert.equal(scheduled!.n, 300);
      const joins = plans.filter((plan) => /join old_rows/i.test(plan));
      // the re-check and the history/event CTE for the completion and for the 300 schedules,
      // the dependency classification and the ready check
      assert.ok(joins.length >= 6, `${joins.length} plans join old_rows`);
      for (const plan of joins) {
        assert.doesNotMatch(plan, /Nested Loop/, plan);
      }
    } finally {
      await sql.end();
    }
  });
});

Deno.test("a cancellation cascade down a chain finds each next job through the index, not by hashing job_dependencies per step", async () => {
  await withStore(async ({ url }) => {
    const { sql, plans, explain } = explainedSession(url);
    try {
      const chain = JSON.stringify(
        Array.from({ length: 200 }, (_, i) => ({
          ref: `c${i}`,
          type: "plan-chain",
          dependsOn: i === 0 ? [] : [`c${i - 1}`],
        })),
      );
      const ids = await sql`
        select id from jobengine.create_workflow(${chain}::text::jsonb, '{}') order by id`;
      await explain();
      await sql`select jobengine.cancel_job(${ids[0]!.id})`;
      await sql`reset client_min_messages`;
      const [left] = await sql`
        select count(*)::int as n from jobengine.jobs
         where type = 'plan-chain' and status_reason = 'dependency_cancelled'`;
      assert.equal(left!.n, 199);
      const cascade = plans.filter((plan) => /with recursive downstream/i.test(plan));
      // the cascade, and again (finding nothing pending) for the jobs it cancelled
      assert.ok(cascade.length >= 1, "the cascade's plan was logged");
      for (const plan of cascade) {
        // each step probes the reverse index with the job just found
        assert.match(plan, /Index Cond: \(depends_on_id = downstream_\d+\.id\)/, plan);
      }
    } finally {
      await sql.end();
    }
  });
});
