-- fail_job with p_retryable = false is terminal at once, whatever retries remain; the terminal
-- failure cancels pending dependents (dependency_failed). Errors are stored in last_error; a
-- non-object error is wrapped as {message}. maxRetries 0 is terminal on the first failure.
begin;
\ir ../_helpers.psql
select plan(9);

create temp table j as select * from jobengine_test.job_in('running', '{"maxRetries": 5}');
create temp table dependent as select * from jobengine_test.new_job(jsonb_build_object('dependsOn', jsonb_build_array((select id from j))));
create temp table f as select * from jobengine.fail_job((select id from j), (select lease_id from j),
  '{"code": "egress_denied", "message": "no network"}', false);

select results_eq(
  $$ select status::text, terminal, attempt, last_error from f $$,
  $$ values ('failed'::text, true, 1, '{"code": "egress_denied", "message": "no network"}'::jsonb) $$,
  'not retryable: failed and terminal on attempt 1 of 6'
);
select is(
  jobengine_test.transitions((select id from j)),
  '(new)->pending, pending->scheduled, scheduled->running, running->failed',
  'no failed -> scheduled row'
);
select results_eq(
  $$ select reason, (details ->> 'terminal')::boolean, details -> 'error' ->> 'code' from jobengine_test.last_history((select id from j)) $$,
  $$ values ('egress_denied'::text, true, 'egress_denied'::text) $$,
  'the history row: reason = error code, terminal, with the error'
);
select results_eq(
  $$ select status::text, status_reason, status_actor from jobengine.jobs where id = (select id from dependent) $$,
  $$ values ('cancelled'::text, 'dependency_failed'::text, 'scheduler'::text) $$,
  'the pending dependent is cancelled: dependency_failed'
);

create temp table z as select * from jobengine_test.job_in('running', '{"maxRetries": 0}');
select results_eq(
  $$ select status::text, terminal from jobengine.fail_job((select id from z), (select lease_id from z), '"plain text"') $$,
  $$ values ('failed'::text, true) $$,
  'maxRetries 0: the first failure is terminal'
);
select is((select last_error from jobengine.jobs where id = (select id from z)), '{"message": "plain text"}'::jsonb,
  'a string error is stored as {"message": ...}');
select is((select reason from jobengine_test.last_history((select id from z))), 'error', 'without a code the reason is "error"');

create temp table n as select * from jobengine_test.job_in('running');
select results_eq(
  $$ select status::text, terminal from jobengine.fail_job((select id from n), (select lease_id from n), null, null) $$,
  $$ values ('scheduled'::text, false) $$,
  'p_retryable null counts as retryable'
);
select is((select last_error from jobengine.jobs where id = (select id from n)), '{}'::jsonb, 'a null error is stored as {}');

select * from finish();
rollback;
