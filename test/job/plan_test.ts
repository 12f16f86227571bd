/**
 * Plans that must not depend on when a session first ran them. PL/pgSQL keeps a statement's
 * generic plan for the session; `complete_jobs` forces one (docs/performance.md, finding 17), so
 * a worker that starts on an empty database must still get the primary-key plan.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { withStore } from "../_store.ts";

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
