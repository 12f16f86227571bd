-- create_job with dependsOn: dependencies must exist for the same tenant (JE005); completed ones
-- do not count as pending; a dependency already cancelled or terminally failed cancels the new
-- job at once; the last completion schedules the dependent in the same transaction.
begin;
\ir ../_helpers.psql
select plan(16);

create temp table done as select * from jobengine_test.job_in('completed');
create temp table open1 as select * from jobengine_test.job_in('pending');
create temp table open2 as select * from jobengine_test.job_in('running');
create temp table other as select * from jobengine_test.new_job('{"tenantId": "other"}');
create temp table counts as select jobengine_test.table_counts() as c;

select throws_ok(
  format($$ select jobengine.create_job('t', '{}', '{"dependsOn": [%s]}') $$, to_json(gen_random_uuid())),
  'JE005', null, 'an unknown dependency raises JE005'
);
select throws_ok(
  format($$ select jobengine.create_job('t', '{}', '{"dependsOn": [%s, %s]}') $$, to_json((select id from done)), to_json(gen_random_uuid())),
  'JE005', null, 'one unknown dependency among known ones raises JE005'
);
select throws_ok(
  format($$ select jobengine.create_job('t', '{}', '{"dependsOn": [%s]}') $$, to_json((select id from other))),
  'JE005', null, 'another tenant''s job as dependency raises JE005'
);
select throws_ok(
  format($$ select jobengine.create_job('t', '{}', '{"tenantId": "other", "dependsOn": [%s]}') $$, to_json((select id from done))),
  'JE005', null, 'a default-tenant job as dependency of an "other" job raises JE005'
);
select is(jobengine_test.table_counts(), (select c from counts), 'the refused calls wrote nothing');

create temp table c1 as select * from jobengine.create_job('t', '{}',
  jsonb_build_object('dependsOn', jsonb_build_array((select id from done), (select id from done))));
select results_eq(
  $$ select status::text, pending_dependencies, depends_on from c1 $$,
  $$ values ('pending'::text, 0, array[(select id from done)]) $$,
  'only completed dependencies (listed twice): pending, pending_dependencies 0, deduplicated'
);

create temp table c2 as select * from jobengine.create_job('t.dep', '{}',
  jsonb_build_object('dependsOn', jsonb_build_array((select id from open1), (select id from done), (select id from open2))));
select is((select pending_dependencies from c2), 2, 'pending_dependencies counts the dependencies not yet completed');
select set_eq(
  format($$ select depends_on_id from jobengine.job_dependencies where job_id = %L $$, (select id from c2)),
  $$ select id from open1 union all select id from done union all select id from open2 $$,
  'one job_dependencies row per dependency'
);
select is(
  (select depends_on from c2),
  (select array_agg(x order by x) from (select id from open1 union all select id from done union all select id from open2) s(x)),
  'depends_on holds the dependency ids (sorted)'
);
select throws_ok(
  format($$ select jobengine.schedule_job(%L) $$, (select id from c2)),
  'JE007', null, 'an explicit schedule before the dependencies completed raises JE007'
);

-- complete the running dependency: one left
do $$ begin perform jobengine.complete_job((select id from open2), (select lease_id from open2), null); end $$;
select results_eq(
  format($$ select status::text, pending_dependencies from jobengine.jobs where id = %L $$, (select id from c2)),
  $$ values ('pending'::text, 1) $$,
  'a completed dependency counts down; the dependent stays pending'
);
-- the last one: scheduled in the same transaction, without schedule_ready
do $$
declare v jobengine.jobs;
begin
  perform jobengine.schedule_job((select id from open1));
  v := jobengine_test.claim((select id from open1));
  perform jobengine.complete_job(v.id, v.lease_id, null);
end $$;
select results_eq(
  format($$ select status::text, pending_dependencies, status_reason, status_actor from jobengine.jobs where id = %L $$, (select id from c2)),
  $$ values ('scheduled'::text, 0, 'dependencies_completed'::text, 'scheduler'::text) $$,
  'the last completion schedules the dependent at once (reason dependencies_completed)'
);

-- dead dependencies at creation
create temp table cancelled as select * from jobengine_test.job_in('cancelled');
create temp table failed as select * from jobengine_test.job_in('failed');
select results_eq(
  $$ select status::text, status_reason from jobengine.create_job('t', '{}',
       jsonb_build_object('dependsOn', jsonb_build_array((select id from cancelled)))) $$,
  $$ values ('cancelled'::text, 'dependency_cancelled'::text) $$,
  'a dependency already cancelled cancels the new job (dependency_cancelled)'
);
select results_eq(
  $$ select status::text, status_reason from jobengine.create_job('t', '{}',
       jsonb_build_object('dependsOn', jsonb_build_array((select id from failed), (select id from done)))) $$,
  $$ values ('cancelled'::text, 'dependency_failed'::text) $$,
  'a dependency already terminally failed cancels the new job (dependency_failed)'
);
select is(
  jobengine_test.transitions((select id from jobengine.jobs where status_reason = 'dependency_failed')),
  '(new)->pending, pending->cancelled', 'it is created, then cancelled: two history rows'
);
select results_eq(
  $$ select status::text, pending_dependencies from jobengine.create_job('t', '{}',
       jsonb_build_object('tenantId', 'other', 'dependsOn', jsonb_build_array((select id from other)))) $$,
  $$ values ('pending'::text, 1) $$,
  'a dependency of the same (non-default) tenant is accepted'
);

select * from finish();
rollback;
