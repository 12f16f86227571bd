-- complete_jobs completes a batch in one statement and returns the completed rows; entries whose
-- lease does not hold (wrong, expired, not running) are left out untouched. Arrays of different
-- lengths raise JE009.
begin;
\ir ../_helpers.psql
select plan(8);

create temp table r1 as select * from jobengine_test.job_in('running');
create temp table r2 as select * from jobengine_test.job_in('running');
create temp table r3 as select * from jobengine_test.job_in('running');
create temp table r4 as select * from jobengine_test.job_in('running');
create temp table s as select * from jobengine_test.job_in('scheduled');
select jobengine_test.expire_lease((select id from r4));

create temp table out as select * from jobengine.complete_jobs(
  array[(select id from r1), (select id from r2), (select id from r3), (select id from r4), (select id from s)],
  array[(select lease_id from r1), (select lease_id from r2), gen_random_uuid(), (select lease_id from r4), gen_random_uuid()],
  array['{"n": 1}'::jsonb, '{"n": 2}', '{"n": 3}', '{"n": 4}', '{"n": 5}']);

select set_eq($$ select id, result from out $$,
  $$ select id, '{"n": 1}'::jsonb from r1 union all select id, '{"n": 2}' from r2 $$,
  'returns the two completed rows, each with its own result');
select results_eq(
  $$ select status::text, count(*)::integer from jobengine.jobs where id in (select id from r1 union all select id from r2) group by 1 $$,
  $$ values ('completed'::text, 2) $$, 'both are completed');
select results_eq(
  $$ select id, status::text, version from jobengine.jobs where id in (select id from r3 union all select id from r4 union all select id from s) order by id $$,
  $$ select id, status::text, version from (select * from r3 union all select * from r4 union all select * from s) x order by id $$,
  'wrong lease, expired lease and not running: left untouched');
select is(
  (select count(*)::integer from jobengine.job_history where to_status = 'completed'), 2,
  'two running -> completed history rows');
select results_eq(
  $$ select reason, actor from jobengine_test.last_history((select id from r1)) $$,
  $$ values ('completed'::text, 'test-worker'::text) $$, 'reason completed, by the lease holder');
select is(
  (select count(*)::integer from jobengine.timeline_events where type = 'job.completed'), 2, 'two job.completed events');

select throws_ok($$ select * from jobengine.complete_jobs(array[gen_random_uuid()], array[]::uuid[], array['{}'::jsonb]) $$,
  'JE009', null, 'arrays of different lengths raise JE009');
select is(
  (select count(*)::integer from jobengine.complete_jobs(array[]::uuid[], array[]::uuid[], array[]::jsonb[])), 0,
  'an empty batch completes nothing');

select * from finish();
rollback;
