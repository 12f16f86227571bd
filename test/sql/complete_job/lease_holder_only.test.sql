-- complete_job: running -> completed for the lease holder, storing the result; a wrong or
-- expired lease raises JE002, a job that is not running JE001, an unknown id JE004; refusals
-- write nothing.
begin;
\ir ../_helpers.psql
select plan(13);

create temp table r as select * from jobengine_test.job_in('running');
create temp table done as select * from jobengine.complete_job((select id from r), (select lease_id from r), '{"rows": 12}');
select results_eq(
  $$ select status::text, result, terminal, completed_at = now(), lease_id, lease_owner, lease_expires_at from done $$,
  $$ values ('completed'::text, '{"rows": 12}'::jsonb, true, true, null::uuid, null::text, null::timestamptz) $$,
  'completed, terminal, result stored, lease released'
);
select results_eq(
  $$ select from_status::text, to_status::text, attempt, reason, actor from jobengine_test.last_history((select id from r)) $$,
  $$ values ('running'::text, 'completed'::text, 1, 'completed'::text, 'test-worker'::text) $$,
  'history: running -> completed, reason completed, by the lease holder'
);
select is(jobengine_test.event_types((select id from r)), 'job.created, job.scheduled, job.started, job.completed', 'one job.completed event');
create temp table r0 as select * from jobengine_test.job_in('running');
select results_eq(
  $$ select status::text, result from jobengine.complete_job((select id from r0), (select lease_id from r0), null) $$,
  $$ values ('completed'::text, null::jsonb) $$,
  'a null result is allowed'
);

create temp table r2 as select * from jobengine_test.job_in('running');
create temp table counts as select jobengine_test.table_counts() as c;
select throws_ok(format($$ select jobengine.complete_job(%L, %L, '{}') $$, (select id from r2), gen_random_uuid()),
  'JE002', null, 'a wrong lease raises JE002');
select throws_ok(format($$ select jobengine.complete_job(%L, %L, '{}') $$, (select id from r2), (select lease_id from r)),
  'JE002', null, 'another job''s (old) lease raises JE002');
select throws_ok(format($$ select jobengine.complete_job(%L, %L, '{}') $$, gen_random_uuid(), (select lease_id from r2)),
  'JE004', null, 'an unknown id raises JE004');
select throws_ok(format($$ select jobengine.complete_job(%L, %L, '{}') $$, (select id from r), (select lease_id from r)),
  'JE001', null, 'completing a completed job raises JE001');
select throws_ok(format($$ select jobengine.complete_job(%L, null, '{}') $$, (select id from jobengine_test.job_in('scheduled'))),
  'JE001', null, 'completing a scheduled job raises JE001');
create temp table counts2 as select jobengine_test.table_counts() as c;
select jobengine_test.expire_lease((select id from r2));
select throws_ok(format($$ select jobengine.complete_job(%L, %L, '{}') $$, (select id from r2), (select lease_id from r2)),
  'JE002', null, 'an expired lease raises JE002');
select is(jobengine_test.table_counts(), (select c from counts2), 'the refusals wrote nothing');
select is((select status::text from jobengine.jobs where id = (select id from r2)), 'running', 'the job with the expired lease is still running (for the reaper)');

create temp table c as select * from jobengine_test.job_in('running');
do $$ begin perform jobengine.cancel_job((select id from c)); end $$;
select throws_ok(format($$ select jobengine.complete_job(%L, %L, '{}') $$, (select id from c), (select lease_id from c)),
  'JE001', null, 'completing a job cancelled while running raises JE001');

select * from finish();
rollback;
