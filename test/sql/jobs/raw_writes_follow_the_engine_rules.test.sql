-- Plain INSERTs and UPDATEs from psql get the rules the lifecycle functions apply:
-- * a job failed by a raw UPDATE is terminal (nothing would ever reschedule it: it used to stay
--   non-terminal `failed` for good, its dependents `pending` for good), with an error that says
--   how it failed, and its dependents are cancelled (dependency_failed); retry_job runs it again;
-- * a raw transition is recorded with the database user as actor, not the lease holder;
-- * a raw INSERT cannot bring dependencies (JE008: only create_job / create_workflow write the
--   edges with the job) nor an invalid retry policy (JE009);
-- * an UPDATE of retry_policy or max_retries must leave a policy create_job would take (JE009:
--   one unreadable policy stopped reap_expired_leases for every job), and keeps the two in step.
begin;
\ir ../_helpers.psql
select plan(32);

-- 1. raw UPDATE running -> failed, retries left
create temp table up as select * from jobengine_test.job_in('running', '{"maxRetries": 3}');
create temp table down as
  select * from jobengine_test.new_job(jsonb_build_object('dependsOn', jsonb_build_array((select id from up))));
update jobengine.jobs set status = 'failed' where id = (select id from up);
select is((select (status, terminal) from jobengine.jobs where id = (select id from up)),
  row('failed'::jobengine.job_status, true), 'a raw failure is terminal, retries left or not');
select is((select last_error ->> 'code' from jobengine.jobs where id = (select id from up)), 'failed_by_update',
  'and says how it failed');
select is((jobengine_test.last_history((select id from up))).actor, session_user::text,
  'the actor is the database user, not the lease holder');
select is((select (status, status_reason) from jobengine.jobs where id = (select id from down)),
  row('cancelled'::jobengine.job_status, 'dependency_failed'::text), 'its pending dependent is cancelled');
select is(jobengine_test.transitions((select id from up)),
  '(new)->pending, pending->scheduled, scheduled->running, running->failed', 'one history row for the failure');
select is((jobengine.retry_job((select id from up), 'ops')).status, 'scheduled'::jobengine.job_status,
  'retry_job runs it again');

-- an error given with the raw UPDATE is kept
create temp table given as select * from jobengine_test.job_in('running');
update jobengine.jobs set status = 'failed', last_error = '{"code": "ops_stop"}' where id = (select id from given);
select is((select last_error from jobengine.jobs where id = (select id from given)), '{"code": "ops_stop"}'::jsonb,
  'an error written with the raw UPDATE is kept');

-- fail_job keeps its rules: a retryable failure with retries left is rescheduled, by the lease holder
create temp table viafn as select * from jobengine_test.job_in('running', '{"maxRetries": 3}');
select is((jobengine.fail_job((select id from viafn), (select lease_id from viafn), '{"code": "boom"}', true)).status,
  'scheduled'::jobengine.job_status, 'fail_job with retries left still reschedules');
select is((select actor from jobengine.job_history where job_id = (select id from viafn) and to_status = 'failed'),
  'test-worker', 'fail_job still records the lease holder');

-- 2. raw UPDATE running -> completed: the database user
create temp table done as select * from jobengine_test.job_in('running');
update jobengine.jobs set status = 'completed' where id = (select id from done);
select is((jobengine_test.last_history((select id from done))).actor, session_user::text,
  'a raw completion is recorded with the database user as actor');

-- 3. raw INSERTs
select throws_ok(
  format($$ insert into jobengine.jobs (type, retry_policy, depends_on) values ('raw', '{}', array[%L]::uuid[]) $$,
    (select id from up)),
  'JE008', null, 'a raw INSERT with depends_on is refused');
select throws_ok(
  $$ insert into jobengine.jobs (type, retry_policy, pending_dependencies) values ('raw', '{}', 5) $$,
  'JE008', null, 'a raw INSERT with pending_dependencies is refused');
select throws_ok(
  $$ insert into jobengine.jobs (type, retry_policy) values ('raw', '"junk"') $$,
  'JE009', null, 'a raw INSERT with an invalid retry policy is refused');
select throws_ok(
  $$ insert into jobengine.jobs (type, retry_policy, max_retries) values ('raw', '{"maxRetries": 5}', 2) $$,
  'JE009', null, 'max_retries and retry_policy.maxRetries must agree');
insert into jobengine.jobs (type, retry_policy, max_retries) values ('raw.policy', '{"backoff": "fixed"}', 7);
select is((select retry_policy from jobengine.jobs where type = 'raw.policy'),
  '{"maxRetries": 7, "backoff": "fixed", "initialDelayMs": 1000, "maxDelayMs": 300000, "multiplier": 2, "jitter": 0.1}'::jsonb,
  'a raw INSERT gets the normalised policy, max_retries as its maxRetries');

-- a policy that names maxRetries, with max_retries left at its default: the policy's count
insert into jobengine.jobs (type, retry_policy) values ('raw.count', '{"maxRetries": 5}');
select is((select (max_retries, (retry_policy ->> 'maxRetries')::integer) from jobengine.jobs where type = 'raw.count'),
  row(5, 5), 'a raw INSERT whose policy names maxRetries takes it when max_retries is left at its default');
select throws_ok($$ insert into jobengine.jobs (type, retry_policy, max_retries) values ('raw', '{}', null) $$,
  'JE009', null, 'max_retries null is refused, not defaulted');

-- 4. UPDATEs of the policy
create temp table pol as select * from jobengine_test.job_in('running');
select throws_ok(
  format($$ update jobengine.jobs set retry_policy = '{"backoff": "bogus"}' where id = %L $$, (select id from pol)),
  'JE009', null, 'an invalid policy is refused');
select throws_ok(
  format($$ update jobengine.jobs set max_retries = 101 where id = %L $$, (select id from pol)),
  'JE009', null, 'max_retries out of range is refused');
update jobengine.jobs set max_retries = 6 where id = (select id from pol);
select is((select (max_retries, (retry_policy ->> 'maxRetries')::integer) from jobengine.jobs where id = (select id from pol)),
  row(6, 6), 'max_retries carries the policy''s maxRetries with it');
update jobengine.jobs set retry_policy = '{"maxRetries": 9, "backoff": "linear"}' where id = (select id from pol);
select is((select (max_retries, retry_policy ->> 'backoff', (retry_policy ->> 'initialDelayMs')::integer)
             from jobengine.jobs where id = (select id from pol)),
  row(9, 'linear'::text, 1000), 'a policy naming maxRetries sets max_retries, and is normalised');
update jobengine.jobs set retry_policy = '{"backoff": "fixed"}' where id = (select id from pol);
select is((select (max_retries, (retry_policy ->> 'maxRetries')::integer) from jobengine.jobs where id = (select id from pol)),
  row(9, 9), 'a policy without maxRetries keeps max_retries');

select throws_ok(format($$ update jobengine.jobs set max_retries = null where id = %L $$, (select id from pol)),
  'JE009', null, 'max_retries set to null is refused');
select throws_ok(format($$ update jobengine.jobs set retry_policy = null where id = %L $$, (select id from pol)),
  'JE009', null, 'retry_policy set to null is refused');
select is((jobengine.create_job('raw.whole', '{}', '{"maxRetries": 3.0}')).max_retries, 3,
  'maxRetries 3.0 is the whole number 3 (it was 22P02)');

-- fail_job with an empty error code is the lease holder's retryable failure, not a raw UPDATE's
create temp table empty as select * from jobengine_test.job_in('running', '{"maxRetries": 3}');
select is((jobengine.fail_job((select id from empty), (select lease_id from empty), '{"message": "boom", "code": ""}')).status,
  'scheduled'::jobengine.job_status, 'fail_job with code "" retries');

-- terminal moves with the status only: a failed job made non-terminal by hand would hold the
-- jobs that depend on it pending for ever (it is neither retried nor a dead dependency)
create temp table dead as select * from jobengine_test.job_in('failed');
select throws_ok(format($$ update jobengine.jobs set terminal = false where id = %L $$, (select id from dead)),
  'JE008', null, 'a terminal failed job cannot be made non-terminal by a raw UPDATE');
select is((select terminal from jobengine.jobs where id = (select id from dead)), true, 'and it stays terminal');
select is((jobengine.create_job('raw.after_dead', '{}', jsonb_build_object('dependsOn', jsonb_build_array((select id from dead))))).status,
  'cancelled'::jobengine.job_status, 'so a job that depends on it is cancelled at once');
select lives_ok(format($$ update jobengine.jobs set terminal = true, priority = 5 where id = %L $$, (select id from dead)),
  'an UPDATE that leaves terminal as it is goes through');

-- the reaper works on: every policy it reads is valid
select jobengine_test.expire_lease((select id from pol));
select is(jobengine.reap_expired_leases() >= 1, true, 'the reaper runs');
select is((select status from jobengine.jobs where id = (select id from pol)), 'scheduled'::jobengine.job_status,
  'and reschedules per the updated policy');

select * from finish();
rollback;
