-- schedule_job: pending -> scheduled (reason manual, with the actor); JE004 for an unknown id,
-- JE007 while dependencies are pending, JE003 for a network job while sealed, JE001 from any
-- status but pending. Refusals write nothing.
begin;
\ir ../_helpers.psql
select plan(15);

create temp table p as select * from jobengine_test.job_in('pending');
create temp table s as select * from jobengine.schedule_job((select id from p), 'sam');
select results_eq(
  $$ select status::text, status_reason, status_actor, scheduled_at = now(), blocked_reason from s $$,
  $$ values ('scheduled'::text, 'manual'::text, 'sam'::text, true, null::text) $$,
  'a pending job is scheduled (reason manual, actor sam)'
);
select is(jobengine_test.transitions((select id from p)), '(new)->pending, pending->scheduled', 'one history row');
select is(jobengine_test.event_types((select id from p)), 'job.created, job.scheduled', 'one job.scheduled event');
select is(
  (select actor from jobengine.timeline_events where subject_id = (select id from p) and type = 'job.scheduled'),
  'sam', 'the event names the actor'
);

create temp table dep as select * from jobengine_test.job_in('scheduled');
create temp table waiting as select * from jobengine_test.new_job(jsonb_build_object('dependsOn', jsonb_build_array((select id from dep))));
create temp table net as select * from jobengine_test.new_job('{"requiresNetwork": true}');
create temp table counts as select jobengine_test.table_counts() as c;

select throws_ok(format($$ select jobengine.schedule_job(%L) $$, gen_random_uuid()), 'JE004', null, 'an unknown id raises JE004');
select throws_ok(format($$ select jobengine.schedule_job(%L) $$, (select id from waiting)), 'JE007', null, 'pending dependencies raise JE007');
select lives_ok($$ select jobengine.set_sealed(true) $$, 'seal the engine');
select throws_ok(format($$ select jobengine.schedule_job(%L) $$, (select id from net)), 'JE003', null, 'a network job while sealed raises JE003');
select throws_ok(format($$ select jobengine.schedule_job(%L) $$, (select id from jobengine_test.job_in('running'))), 'JE001', null, 'from running: JE001');
select throws_ok(format($$ select jobengine.schedule_job(%L) $$, (select id from jobengine_test.job_in('completed'))), 'JE001', null, 'from completed: JE001');
select throws_ok(format($$ select jobengine.schedule_job(%L) $$, (select id from jobengine_test.job_in('failed'))), 'JE001', null, 'from failed: JE001 (retry_job is the way back)');
select throws_ok(format($$ select jobengine.schedule_job(%L) $$, (select id from jobengine_test.job_in('cancelled'))), 'JE001', null, 'from cancelled: JE001');
select throws_ok(format($$ select jobengine.schedule_job(%L) $$, (select id from s)), 'JE001', null, 'from scheduled: JE001');

select is(
  (select string_agg(id::text || ':' || status || ':' || version, ',' order by id) from jobengine.jobs where id in (select id from waiting union all select id from net)),
  (select string_agg(id::text || ':pending:1', ',' order by id) from (select id from waiting union all select id from net) x),
  'the refused jobs are still pending at version 1'
);
do $$ begin perform jobengine.set_sealed(false); end $$;
select is((select status::text from jobengine.schedule_job((select id from net))), 'scheduled', 'unsealed, the network job can be scheduled');

select * from finish();
rollback;
