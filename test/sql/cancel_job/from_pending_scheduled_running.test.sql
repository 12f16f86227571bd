-- cancel_job: pending, scheduled and running jobs move to cancelled with the reason and actor
-- given (default reason 'cancelled'); a running job loses its lease. Completed, failed and
-- cancelled jobs raise JE001; an unknown id JE004.
begin;
\ir ../_helpers.psql
select plan(13);

create temp table p as select * from jobengine_test.job_in('pending');
create temp table s as select * from jobengine_test.job_in('scheduled');
create temp table r as select * from jobengine_test.job_in('running');

create temp table cp as select * from jobengine.cancel_job((select id from p), 'not_needed', 'ops');
create temp table cs as select * from jobengine.cancel_job((select id from s));
create temp table cr as select * from jobengine.cancel_job((select id from r), 'shutdown', 'ops');

select results_eq(
  $$ select status::text, terminal, status_reason, status_actor, cancelled_at = now() from cp $$,
  $$ values ('cancelled'::text, true, 'not_needed'::text, 'ops'::text, true) $$,
  'pending -> cancelled, terminal, with reason and actor'
);
select results_eq(
  $$ select status::text, status_reason, status_actor from cs $$,
  $$ values ('cancelled'::text, 'cancelled'::text, session_user::text collate "default") $$,
  'scheduled -> cancelled; default reason "cancelled", the database user as actor'
);
select results_eq(
  $$ select status::text, lease_id, lease_owner, lease_expires_at, attempt from cr $$,
  $$ values ('cancelled'::text, null::uuid, null::text, null::timestamptz, 1) $$,
  'running -> cancelled releases the lease'
);
select results_eq(
  $$ select from_status::text, to_status::text, reason, actor from jobengine_test.last_history((select id from r)) $$,
  $$ values ('running'::text, 'cancelled'::text, 'shutdown'::text, 'ops'::text) $$,
  'history: running -> cancelled with reason and actor'
);
select is(
  (select count(*)::integer from jobengine.timeline_events where type = 'job.cancelled' and subject_id in (select id from p union all select id from s union all select id from r)),
  3, 'one job.cancelled event each'
);
select is(
  (select data ->> 'reason' from jobengine.timeline_events where type = 'job.cancelled' and subject_id = (select id from p)),
  'not_needed', 'the event carries the reason'
);
select is(
  (select count(*)::integer from jobengine.claim_jobs('w', null, 10, 30)), 0,
  'a cancelled job is not claimed'
);

create temp table counts as select jobengine_test.table_counts() as c;
select throws_ok(format($$ select jobengine.cancel_job(%L) $$, (select id from jobengine_test.job_in('completed'))), 'JE001', null, 'completed: JE001');
select throws_ok(format($$ select jobengine.cancel_job(%L) $$, (select id from jobengine_test.job_in('failed'))), 'JE001', null, 'terminally failed: JE001');
select throws_ok(format($$ select jobengine.cancel_job(%L) $$, (select id from cp)), 'JE001', null, 'already cancelled: JE001');
select throws_ok(format($$ select jobengine.cancel_job(%L) $$, gen_random_uuid()), 'JE004', null, 'unknown id: JE004');
select is(
  (select count(*)::integer from jobengine.job_history where to_status = 'cancelled'), 3,
  'the refusals wrote no cancelled history row'
);
select is(jobengine_test.transitions((select id from cp)), '(new)->pending, pending->cancelled', 'the cancelled job''s history is unchanged');

select * from finish();
rollback;
