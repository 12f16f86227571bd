-- A failure that will be retried is not the end of a dependency: its dependents stay pending,
-- and are scheduled when the retried run completes.
begin;
\ir ../_helpers.psql
select plan(4);

create temp table dep as select * from jobengine_test.job_in('running', '{"retryPolicy": {"initialDelayMs": 0, "jitter": 0}}');
create temp table child as select * from jobengine_test.new_job(jsonb_build_object('dependsOn', jsonb_build_array((select id from dep))));

select is((select status::text from jobengine.fail_job((select id from dep), (select lease_id from dep), '{"code": "flaky"}')),
  'scheduled', 'the dependency failed and is scheduled for a retry');
select is((select status || '/' || pending_dependencies from jobengine.jobs where id = (select id from child)), 'pending/1',
  'the dependent stays pending');

create temp table again as select * from jobengine_test.claim((select id from dep));
select is((select status::text from jobengine.complete_job((select id from dep), (select lease_id from again), null)),
  'completed', 'the retried run completes');
select is((select status || '/' || pending_dependencies from jobengine.jobs where id = (select id from child)), 'scheduled/0',
  'the dependent is scheduled');

select * from finish();
rollback;
