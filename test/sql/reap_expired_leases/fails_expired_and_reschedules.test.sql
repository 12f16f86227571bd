-- reap_expired_leases fails every running job whose lease expired (reason lease_expired, actor
-- reaper, last_error code lease_expired); those with retries left are rescheduled per their
-- policy, the others stay failed and terminal (cancelling pending dependents); unexpired leases
-- are untouched. Returns how many it reaped.
begin;
\ir ../_helpers.psql
select plan(16);

create temp table retry as select * from jobengine_test.job_in('running',
  '{"maxRetries": 2, "retryPolicy": {"backoff": "fixed", "initialDelayMs": 5000, "jitter": 0}}');
create temp table last as select * from jobengine_test.job_in('running', '{"maxRetries": 0}');
create temp table dependent as select * from jobengine_test.new_job(jsonb_build_object('dependsOn', jsonb_build_array((select id from last))));
create temp table live as select * from jobengine_test.job_in('running');
select jobengine_test.expire_lease((select id from retry));
select jobengine_test.expire_lease((select id from last));

select is(jobengine.reap_expired_leases(), 2, 'two expired leases reaped');

select results_eq(
  $$ select status::text, terminal, attempt, not_before - now(), lease_id from jobengine.jobs where id = (select id from retry) $$,
  $$ values ('scheduled'::text, false, 1, interval '5 seconds', null::uuid) $$,
  'retries left: rescheduled, due after its backoff (5 s)'
);
select results_eq(
  $$ select from_status::text, to_status::text, reason, actor from jobengine.job_history
      where job_id = (select id from retry) and seq > 3 order by seq $$,
  $$ values ('running'::text, 'failed'::text, 'lease_expired'::text, 'reaper'::text),
            ('failed', 'scheduled', 'retry', 'reaper') $$,
  'history: running -> failed (lease_expired, reaper), failed -> scheduled (retry)'
);
select results_eq(
  $$ select last_error ->> 'code', last_error ->> 'leaseOwner' from jobengine.jobs where id = (select id from retry) $$,
  $$ values ('lease_expired'::text, 'test-worker'::text) $$,
  'last_error: code lease_expired, the lease owner'
);
select is(
  (select string_agg(type, ', ' order by sequence) from jobengine.timeline_events where subject_id = (select id from retry) and sequence >
     (select max(sequence) from jobengine.timeline_events where subject_id = (select id from retry) and type = 'job.started')),
  'job.failed, job.retry_scheduled', 'events: job.failed, job.retry_scheduled'
);

select results_eq(
  $$ select status::text, terminal, status_reason, last_error ->> 'code' from jobengine.jobs where id = (select id from last) $$,
  $$ values ('failed'::text, true, 'lease_expired'::text, 'lease_expired'::text) $$,
  'no retries left: failed and terminal'
);
select results_eq(
  $$ select status::text, status_reason from jobengine.jobs where id = (select id from dependent) $$,
  $$ values ('cancelled'::text, 'dependency_failed'::text) $$,
  'its pending dependent is cancelled (dependency_failed)'
);
select results_eq(
  $$ select status::text, lease_id, version from jobengine.jobs where id = (select id from live) $$,
  $$ select 'running'::text, lease_id, version from live $$,
  'an unexpired lease is untouched'
);
select is(jobengine.reap_expired_leases(), 0, 'a second run reaps nothing');

-- the old lease holder can no longer act
select throws_ok(format($$ select jobengine.heartbeat_job(%L, %L, 60) $$, (select id from retry), (select lease_id from retry)),
  'JE002', null, 'the reaped worker''s heartbeat raises JE002');
-- and its completion or failure says the same (its lease expired), whether the reaper came
-- first or not: JE002, not JE001 for the state the reaper left
select throws_ok(format($$ select jobengine.complete_job(%L, %L, '{}') $$, (select id from retry), (select lease_id from retry)),
  'JE002', null, 'the reaped worker''s completion raises JE002 (the job is scheduled again)');
select throws_ok(format($$ select jobengine.fail_job(%L, %L, '{}') $$, (select id from retry), (select lease_id from retry)),
  'JE002', null, 'its failure too');
select throws_ok(format($$ select jobengine.complete_job(%L, %L, '{}') $$, (select id from last), (select lease_id from last)),
  'JE002', null, 'and for a job the reaper left terminally failed');
-- a job that ended otherwise still answers with the transition it refuses
create temp table finished as select * from jobengine_test.job_in('completed');
select throws_ok(format($$ select jobengine.complete_job(%L, %L, '{}') $$, (select id from finished), gen_random_uuid()),
  'JE001', null, 'completing a completed job is an invalid transition (JE001)');

-- the retried job runs again: attempt 2, and a second expiry fails it once more
do $$ begin perform jobengine_test.make_due((select id from retry)); end $$;
create temp table again as select * from jobengine_test.claim((select id from retry));
select jobengine_test.expire_lease((select id from retry));
select is(jobengine.reap_expired_leases(), 1, 'the second expiry is reaped');
select results_eq(
  $$ select status::text, attempt from jobengine.jobs where id = (select id from retry) $$,
  $$ values ('scheduled'::text, 2) $$,
  'attempt 2 of 3 (maxRetries 2): rescheduled again'
);

select * from finish();
rollback;
