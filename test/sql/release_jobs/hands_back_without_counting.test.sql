-- release_jobs hands claimed jobs back (a worker's shutdown): running -> failed (reason
-- released, last_error code worker_shutdown) -> scheduled, due at once, never terminal on
-- account of the release, even on the job's last attempt. Lease holders only.
begin;
\ir ../_helpers.psql
select plan(9);

create temp table last as select * from jobengine_test.job_in('running', '{"maxRetries": 0}');
create temp table other as select * from jobengine_test.job_in('running');

select is(
  (select array_agg(r) from jobengine.release_jobs(array[(select id from last), (select id from other)],
     array[(select lease_id from last), gen_random_uuid()]) r),
  array[(select id from last)], 'only the job whose lease holds is released');
select results_eq(
  $$ select status::text, terminal, attempt, lease_id, not_before <= now(), last_error ->> 'code'
       from jobengine.jobs where id = (select id from last) $$,
  $$ values ('scheduled'::text, false, 1, null::uuid, true, 'worker_shutdown'::text) $$,
  'its last attempt: scheduled again, due now, not terminal');
select results_eq(
  $$ select from_status::text, to_status::text, reason, actor from jobengine.job_history
      where job_id = (select id from last) and seq > 3 order by seq $$,
  $$ values ('running'::text, 'failed'::text, 'released'::text, 'test-worker'::text),
            ('failed', 'scheduled', 'released', 'scheduler') $$,
  'history: running -> failed -> scheduled, reason released');
select is(jobengine_test.event_types((select id from last)),
  'job.created, job.scheduled, job.started, job.failed, job.retry_scheduled', 'one event per transition');
select is((select status::text from jobengine.jobs where id = (select id from other)), 'running',
  'a lease that does not hold: untouched');

-- claimed again, it runs: its next failure is judged by its attempt (2 > maxRetries 0)
select jobengine_test.make_due((select id from last));
create temp table again as select * from jobengine_test.claim((select id from last));
select is((select attempt from again), 2, 'the next claim is attempt 2');
select is((jobengine.fail_job((select id from again), (select lease_id from again), '{"code":"boom"}')).terminal, true,
  'and a real failure then is terminal');

-- the release rule is the function's alone: fail_job on a last attempt stays terminal
create temp table plain as select * from jobengine_test.job_in('running', '{"maxRetries": 0}');
select is((jobengine.fail_job((select id from plain), (select lease_id from plain), '{"code":"released"}')).terminal, true,
  'fail_job with an error code named released is still terminal');
select throws_ok($$ select jobengine.release_jobs(array[gen_random_uuid()], array[]::uuid[]) $$, 'JE009', null,
  'ids and leases must pair up');

select * from finish();
rollback;
