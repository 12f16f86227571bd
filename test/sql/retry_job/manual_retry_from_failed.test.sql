-- retry_job: a terminally failed job goes back to scheduled, due now, terminal cleared, attempt
-- kept (the next claim makes it attempt + 1); reason manual_retry with the actor.
begin;
\ir ../_helpers.psql
select plan(4);

create temp table f as select * from jobengine_test.job_in('failed', '{"retryPolicy": {"initialDelayMs": 60000}}');
create temp table r as select * from jobengine.retry_job((select id from f), 'rita');

select results_eq(
  $$ select status::text, terminal, attempt, not_before = now(), status_reason, status_actor, last_error from r $$,
  $$ values ('scheduled'::text, false, 1, true, 'manual_retry'::text, 'rita'::text, '{"code": "test_setup"}'::jsonb) $$,
  'failed -> scheduled: not terminal, due now, attempt kept, reason manual_retry, last_error kept'
);
select results_eq(
  $$ select from_status::text, to_status::text, reason, actor from jobengine_test.last_history((select id from f)) $$,
  $$ values ('failed'::text, 'scheduled'::text, 'manual_retry'::text, 'rita'::text) $$,
  'history: failed -> scheduled (manual_retry, rita)'
);
select is(
  (select type from jobengine.timeline_events where subject_id = (select id from f) order by sequence desc limit 1),
  'job.retry_scheduled', 'event: job.retry_scheduled'
);
select is((select attempt from jobengine_test.claim((select id from f))), 2, 'the next claim is attempt 2');

select * from finish();
rollback;
