-- The hot paths (claim_jobs_for, complete_job, complete_jobs) set the bookkeeping columns in
-- their own UPDATE and mark the statement bookkept (jobengine.bookkeeping = 'on'), so the
-- per-row BEFORE trigger stands aside. Whoever sets that setting by hand still cannot break a
-- rule: the AFTER statement trigger re-checks every pair (JE001), the version step (JE008) and
-- the dependency counter (JE007), and the identity columns stay protected (JE008). The rows the
-- bookkept paths write match what the row trigger would have written.
begin;
\ir ../_helpers.psql
select plan(25);

-- 1. a bookkept claim and completion write the same bookkeeping as the row trigger would
create temp table c as select * from jobengine_test.claim((jobengine_test.job_in('scheduled')).id, 'w-book', 30);
select is((select (version, attempt, status_reason, status_actor) from c), row(3, 1, 'claimed'::text, 'w-book'::text),
  'claim: version, attempt, reason and actor');
select ok((select started_at is not null and lease_expires_at > now() and blocked_reason is null from c),
  'claim: started_at, lease expiry, no blocked reason');
select is(current_setting('jobengine.bookkeeping', true), '', 'the bookkept mark is cleared after the claim');

create temp table d as
  select * from jobengine.complete_jobs(array[(select id from c)], array[(select lease_id from c)], array['{"ok":1}'::jsonb]);
select is((select (status, version, terminal, status_reason, status_actor) from d),
  row('completed'::jobengine.job_status, 4, true, 'completed'::text, 'w-book'::text),
  'complete_jobs: status, version, terminal, reason, actor (the lease holder)');
select ok((select completed_at is not null and lease_id is null and lease_owner is null and lease_expires_at is null from d),
  'complete_jobs: completed_at set, lease cleared');
select is(jobengine_test.transitions((select id from c)), '(new)->pending, pending->scheduled, scheduled->running, running->completed',
  'history: one row per transition, in order');
select is((select string_agg(seq::text, ',' order by seq) from jobengine.job_history where job_id = (select id from c)), '1,2,3,4',
  'history seq follows the version');

-- 2. lease ids differ between claims of the same job
create temp table again as select * from jobengine_test.job_in('running');
select jobengine.fail_job((select id from again), (select lease_id from again), '{"message":"x"}', true);
select jobengine_test.make_due((select id from again));
select isnt((select lease_id from jobengine_test.claim((select id from again))), (select lease_id from again),
  'a second claim of the same job gets another lease id');

-- 3. setting the mark by hand does not open a way around the rules
create temp table r as select * from jobengine_test.job_in('running');
-- (created first: create_job clears the mark, as every bookkept engine function does)
create temp table p as select * from jobengine_test.new_job();
create temp table child as
  select * from jobengine_test.new_job(jsonb_build_object('dependsOn', jsonb_build_array((select id from p))));
set local jobengine.bookkeeping = 'on';
select throws_ok(
  format($$ update jobengine.jobs set status = 'pending', version = version + 1,
              lease_id = null, lease_owner = null, lease_expires_at = null where id = %L $$, (select id from r)),
  'JE001', null, 'a refused pair is refused by the statement check (running -> pending)');
select throws_ok(
  format($$ update jobengine.jobs set status = 'running', version = version + 1 where id = %L $$, (select id from r)),
  'JE001', null, 'a self-pair is refused by the statement check');
select throws_ok(
  format($$ update jobengine.jobs set status = 'cancelled', cancelled_at = now(), terminal = true,
              lease_id = null, lease_owner = null, lease_expires_at = null, version = version + 2 where id = %L $$, (select id from r)),
  'JE008', null, 'a version jump of 2 is refused');
select throws_ok(
  format($$ update jobengine.jobs set tenant_id = 'other' where id = %L $$, (select id from r)),
  'JE008', null, 'identity columns stay protected');

select throws_ok(
  format($$ update jobengine.jobs set status = 'scheduled', scheduled_at = now(), version = version + 1 where id = %L $$,
    (select id from child)),
  'JE007', null, 'pending -> scheduled with a dependency left is refused');
select is((select status::text from jobengine.jobs where id = (select id from r)), 'running', 'the refused statements changed nothing');

-- a valid pair with hand-made bookkeeping is still recorded like any transition
select lives_ok(
  format($$ update jobengine.jobs set status = 'cancelled', cancelled_at = now(), terminal = true,
              lease_id = null, lease_owner = null, lease_expires_at = null, version = version + 1 where id = %L $$, (select id from r)),
  'a valid pair with its bookkeeping done by hand passes');
select is((jobengine_test.last_history((select id from r))).to_status::text, 'cancelled', 'and writes its history row');
set local jobengine.bookkeeping = '';

-- without the mark, writing version stays refused
create temp table s as select * from jobengine_test.job_in('scheduled');
select throws_ok(
  format($$ update jobengine.jobs set status = 'cancelled', version = version + 1 where id = %L $$, (select id from s)),
  'JE008', null, 'without the mark, a statement may not write version');

-- 4. a bookkept INSERT (create_workflow's plain path) writes what _100_check_insert would
create temp table w as
  select * from jobengine.create_workflow('[{"ref":"a","type":"wf.a"},{"ref":"b","type":"wf.b","payload":{"x":1}}]',
    '{"actor":"alice"}');
select is((select count(*) from w where status = 'pending' and version = 1 and attempt = 0 and not terminal
            and status_actor = 'alice' and status_reason is null and updated_at = created_at), 2::bigint,
  'workflow rows: pending, version 1, attempt 0, actor from the options');
select is((select string_agg(to_status::text || '/' || actor, ',') from jobengine.job_history where job_id in (select id from w)),
  'pending/alice,pending/alice', 'and their creation history rows');
select is(current_setting('jobengine.bookkeeping', true), '', 'the bookkept mark is cleared after the workflow');
set local jobengine.bookkeeping = 'on';
select throws_ok(
  $$ insert into jobengine.jobs (type, status, retry_policy, status_actor, version, attempt, terminal, created_at, updated_at,
       lease_id, lease_owner, lease_expires_at, started_at)
     values ('raw', 'running', '{}', 'x', 1, 0, false, now(), now(), gen_random_uuid(), 'x', now(), now()) $$,
  'JE001', null, 'with the mark set, an INSERT that is not a pending job is still refused');
select lives_ok(
  $$ insert into jobengine.jobs (type, retry_policy, version, attempt, terminal, created_at, updated_at)
     values ('raw.insert', '{}', 7, 0, false, now(), now()) $$,
  'an INSERT not in the bookkept shape goes through the trigger');
select is((select version from jobengine.jobs where type = 'raw.insert'), 1, 'which sets its version to 1');
set local jobengine.bookkeeping = '';

-- 5. event ids: well-formed version 8 UUIDs, unique, one per event
select is((select count(*) from jobengine.timeline_events
            where id::text !~ '^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'
              and type like 'job.%' and type <> 'job.blocked'), 0::bigint,
  'every transition event id is a version 8 UUID with the RFC variant');
select is((select count(distinct id) from jobengine.timeline_events), (select count(*) from jobengine.timeline_events),
  'event ids are unique');

select * from finish();
rollback;
