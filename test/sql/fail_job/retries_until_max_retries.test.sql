-- The seed's retry rule: maxRetries = 3 and a job that fails every time. The job re-enters
-- scheduled after failures 1, 2 and 3 (not_before = now() + backoff, 1 s here: fixed, jitter 0),
-- and the 4th failure is terminal. attempt = 4.
begin;
\ir ../_helpers.psql
select plan(15);

create temp table j as select * from jobengine_test.job_in('scheduled',
  '{"maxRetries": 3, "retryPolicy": {"backoff": "fixed", "initialDelayMs": 1000, "jitter": 0}}');
create temp table after_fail (n integer, job jobengine.jobs);

do $$
declare
  v jobengine.jobs;
  i integer;
begin
  for i in 1 .. 4 loop
    if i > 1 then
      perform jobengine_test.make_due((select id from j));
    end if;
    v := jobengine_test.claim((select id from j));
    v := jobengine.fail_job(v.id, v.lease_id, jsonb_build_object('code', 'boom', 'message', 'failure ' || i));
    insert into after_fail values (i, v);
  end loop;
end $$;

select results_eq(
  $$ select n, (job).status::text, (job).terminal, (job).attempt from after_fail order by n $$,
  $$ values (1, 'scheduled'::text, false, 1), (2, 'scheduled', false, 2), (3, 'scheduled', false, 3), (4, 'failed', true, 4) $$,
  'failures 1-3 return the job scheduled again; the 4th returns it failed and terminal'
);
select results_eq(
  $$ select n, (job).not_before - now() from after_fail where n <= 3 order by n $$,
  $$ values (1, interval '1 second'), (2, interval '1 second'), (3, interval '1 second') $$,
  'each retry is due now() + 1 s (fixed backoff, jitter 0)'
);

select is(
  (select string_agg(h.from_status || '->' || h.to_status, ', ' order by h.seq)
     from jobengine.job_history h where h.job_id = (select id from j) and h.from_status in ('running', 'failed')),
  'running->failed, failed->scheduled, running->failed, failed->scheduled, running->failed, failed->scheduled, running->failed',
  'history: running->failed, failed->scheduled three times, then a fourth running->failed'
);
select is(
  jobengine_test.transitions((select id from j)),
  '(new)->pending, pending->scheduled, '
  || 'scheduled->running, running->failed, failed->scheduled, '
  || 'scheduled->running, running->failed, failed->scheduled, '
  || 'scheduled->running, running->failed, failed->scheduled, '
  || 'scheduled->running, running->failed',
  'the complete history, 13 rows'
);
select results_eq(
  $$ select seq, attempt, reason, actor, (details ->> 'terminal')::boolean
       from jobengine.job_history where job_id = (select id from j) and to_status = 'failed' order by seq $$,
  $$ values (4, 1, 'boom'::text, 'test-worker'::text, false), (7, 2, 'boom', 'test-worker', false),
            (10, 3, 'boom', 'test-worker', false), (13, 4, 'boom', 'test-worker', true) $$,
  'the failed rows: attempts 1-4, reason = error code, by the lease holder, only the last terminal'
);
select results_eq(
  $$ select seq, attempt, reason, actor, (details ->> 'notBefore')::timestamptz - now()
       from jobengine.job_history where job_id = (select id from j) and from_status = 'failed' order by seq $$,
  $$ values (5, 1, 'retry'::text, 'scheduler'::text, interval '1 second'), (8, 2, 'retry', 'scheduler', interval '1 second'),
            (11, 3, 'retry', 'scheduler', interval '1 second') $$,
  'the retry rows: reason retry, by the scheduler, notBefore in the details'
);

create temp table final as select * from jobengine.jobs where id = (select id from j);
select results_eq(
  $$ select status::text, terminal, attempt, version, failed_at = now(), lease_id from final $$,
  $$ values ('failed'::text, true, 4, 13, true, null::uuid) $$,
  'final: failed, terminal, attempt 4, version 13, lease released'
);
select is((select last_error from final), '{"code": "boom", "message": "failure 4"}'::jsonb, 'last_error holds the last error');
select is(
  (select count(*)::integer from jobengine.timeline_events where subject_id = (select id from j) and type = 'job.retry_scheduled'),
  3, 'three job.retry_scheduled events'
);
select is(
  (select count(*)::integer from jobengine.timeline_events where subject_id = (select id from j) and type = 'job.failed'),
  4, 'four job.failed events'
);
select results_eq(
  $$ select (data ->> 'terminal')::boolean, data -> 'error' ->> 'message' from jobengine.timeline_events
      where subject_id = (select id from j) and type = 'job.failed' order by sequence $$,
  $$ values (false, 'failure 1'::text), (false, 'failure 2'), (false, 'failure 3'), (true, 'failure 4') $$,
  'job.failed events carry the error and whether it was terminal'
);
select is(
  (select count(*)::integer from jobengine.timeline_events where subject_id = (select id from j)),
  (select count(*)::integer from jobengine.job_history where job_id = (select id from j)),
  'one event per history row'
);
select is(
  (select count(*)::integer from jobengine.claim_jobs('w', array[(select type from j)], 10, 60)), 0,
  'a terminally failed job is not claimed again'
);

-- not_before honours the backoff: not claimable until due
create temp table k as select * from jobengine_test.job_in('running', '{"retryPolicy": {"backoff": "fixed", "initialDelayMs": 60000, "jitter": 0}}');
do $$ begin perform jobengine.fail_job((select id from k), (select lease_id from k), '{}'); end $$;
select is(
  (select count(*)::integer from jobengine.claim_jobs('w', array[(select type from k)], 10, 60)), 0,
  'a retried job is not claimed before its not_before'
);
select is((select last_error from jobengine.jobs where id = (select id from k)), '{}'::jsonb, 'an empty error is stored as {}');

select * from finish();
rollback;
