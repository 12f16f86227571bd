-- Sealed: schedule_ready leaves requiresNetwork jobs pending with blocked_reason 'sealed_mode'
-- and exactly one job.blocked event, however often it runs; other jobs are scheduled as usual.
-- After set_sealed(false) the blocked jobs are scheduled and blocked_reason is cleared.
begin;
\ir ../_helpers.psql
select plan(14);

create temp table net as select * from jobengine_test.new_job('{"requiresNetwork": true, "correlationId": "c-net"}');
create temp table net_waiting_dep as select * from jobengine_test.job_in('running');
create temp table net_waiting as select * from jobengine_test.new_job(
  jsonb_build_object('requiresNetwork', true, 'dependsOn', jsonb_build_array((select id from net_waiting_dep))));
create temp table local as select * from jobengine_test.new_job();

do $$ begin perform jobengine.set_sealed(true); end $$;
select ok(jobengine.is_sealed(), 'the engine is sealed');

select is(jobengine.schedule_ready(), 1, 'schedule_ready schedules only the local job');
select is(jobengine.schedule_ready(), 0, 'a second call schedules nothing');
select is(jobengine.schedule_ready(), 0, 'a third call schedules nothing');
select results_eq(
  $$ select status::text, blocked_reason, version from jobengine.jobs where id = (select id from net) $$,
  $$ values ('pending'::text, 'sealed_mode'::text, 1) $$,
  'the network job stays pending (no transition) with blocked_reason sealed_mode'
);
select results_eq(
  $$ select type, data ->> 'reason', correlation_id, tenant_id from jobengine.timeline_events where subject_id = (select id from net) and type <> 'job.created' $$,
  $$ values ('job.blocked'::text, 'sealed_mode'::text, 'c-net'::text, 'default'::text) $$,
  'exactly one job.blocked event (reason sealed_mode) after three calls'
);
select is(jobengine_test.transitions((select id from net)), '(new)->pending', 'blocking writes no history row');
select is((select blocked_reason from jobengine.jobs where id = (select id from net_waiting)), null,
  'a network job still waiting for a dependency is not blocked yet');

-- its dependency completes while sealed: blocked then, once
do $$ begin perform jobengine.complete_job((select id from net_waiting_dep), (select lease_id from net_waiting_dep), null); end $$;
select results_eq(
  $$ select status::text, pending_dependencies, blocked_reason from jobengine.jobs where id = (select id from net_waiting) $$,
  $$ values ('pending'::text, 0, 'sealed_mode'::text) $$,
  'when its last dependency completes while sealed, it is blocked instead of scheduled'
);
do $$ begin perform jobengine.schedule_ready(); perform jobengine.schedule_ready(); end $$;
select is(
  (select count(*)::integer from jobengine.timeline_events where subject_id = (select id from net_waiting) and type = 'job.blocked'),
  1, 'and gets exactly one job.blocked event'
);

do $$ begin perform jobengine.set_sealed(false); end $$;
select is(jobengine.schedule_ready(), 2, 'unsealed: schedule_ready schedules both network jobs');
select results_eq(
  $$ select status::text, blocked_reason from jobengine.jobs where id in (select id from net union all select id from net_waiting) $$,
  $$ values ('scheduled'::text, null::text), ('scheduled', null) $$,
  'they are scheduled and blocked_reason is cleared'
);
select is(jobengine_test.event_types((select id from net)), 'job.created, job.blocked, job.scheduled', 'events: created, blocked, scheduled');
select is(jobengine_test.transitions((select id from net)), '(new)->pending, pending->scheduled', 'history: created, scheduled');

select * from finish();
rollback;
