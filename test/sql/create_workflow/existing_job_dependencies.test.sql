-- Workflow jobs may also depend on existing jobs of the tenant (by id): completed ones do not
-- count as pending, unfinished ones do, and an already cancelled or terminally failed one cancels
-- its dependent at creation, with the cascade running through the workflow.
begin;
\ir ../_helpers.psql
select plan(8);

create temp table done as select * from jobengine_test.job_in('completed');
create temp table open as select * from jobengine_test.job_in('scheduled');
create temp table dead as select * from jobengine_test.job_in('failed');

create temp table wf as select * from jobengine.create_workflow(jsonb_build_array(
  jsonb_build_object('ref', 'on-done', 'type', 'x.on_done', 'dependsOn', jsonb_build_array((select id from done))),
  jsonb_build_object('ref', 'on-open', 'type', 'x.on_open', 'dependsOn', jsonb_build_array((select id from open), 'on-done')),
  jsonb_build_object('ref', 'on-dead', 'type', 'x.on_dead', 'dependsOn', jsonb_build_array((select id from dead))),
  jsonb_build_object('ref', 'after-dead', 'type', 'x.after_dead', 'dependsOn', jsonb_build_array('on-dead')),
  jsonb_build_object('ref', 'after-after', 'type', 'x.after_after', 'dependsOn', jsonb_build_array('after-dead'))
), '{"tenantId": "default"}');

select results_eq(
  $$ select type, pending_dependencies from wf where type in ('x.on_done', 'x.on_open') order by type $$,
  $$ values ('x.on_done'::text, 0), ('x.on_open', 2) $$,
  'a completed existing dependency does not count; a scheduled one and a workflow ref do'
);
select results_eq(
  $$ select type, status::text, status_reason from wf where type in ('x.on_dead', 'x.after_dead', 'x.after_after') order by type $$,
  $$ values ('x.after_after'::text, 'cancelled'::text, 'dependency_failed'::text),
            ('x.after_dead', 'cancelled', 'dependency_failed'),
            ('x.on_dead', 'cancelled', 'dependency_failed') $$,
  'a terminally failed existing dependency cancels the dependent and everything downstream (dependency_failed)'
);
select results_eq(
  $$ select status::text from wf where type in ('x.on_done', 'x.on_open') order by type $$,
  $$ values ('pending'::text), ('pending') $$,
  'the unrelated branch stays pending'
);
select is(
  jobengine_test.transitions((select id from wf where type = 'x.after_after')),
  '(new)->pending, pending->cancelled', 'a cancelled workflow job has exactly two history rows'
);
select is(
  (select count(*)::integer from jobengine.job_dependencies where job_id in (select id from wf)),
  6, 'six dependency rows (workflow refs and existing ids alike)'
);

-- the existing scheduled dependency completes: on-open still waits for on-done
do $$
declare v jobengine.jobs := jobengine_test.claim((select id from open));
begin perform jobengine.complete_job(v.id, v.lease_id, null); end $$;
select is(
  (select status || '/' || pending_dependencies from jobengine.jobs where type = 'x.on_open'),
  'pending/1', 'an existing dependency completing counts down a workflow job'
);
do $$
declare v jobengine.jobs;
begin
  perform jobengine.schedule_job((select id from wf where type = 'x.on_done'));
  v := jobengine_test.claim((select id from wf where type = 'x.on_done'));
  perform jobengine.complete_job(v.id, v.lease_id, null);
end $$;
select is(
  (select status || '/' || pending_dependencies from jobengine.jobs where type = 'x.on_open'),
  'scheduled/0', 'and the last one schedules it'
);
select is(
  (select count(*)::integer from jobengine.create_workflow(
     '[{"ref": "x", "type": "t"}, {"ref": "y", "type": "t", "dependsOn": ["x", "x"]}]') w where w.pending_dependencies = 1),
  1, 'a ref listed twice counts once'
);

select * from finish();
rollback;
