-- cancel_job refuses the reasons the cascade writes (dependency_failed, dependency_cancelled):
-- a job cancelled "with dependency_failed" by hand would pass dependency_failed on to its
-- dependents although nothing upstream failed. Refused with JE009; nothing changes.
begin;
\ir ../_helpers.psql
select plan(5);

create temp table p as select * from jobengine_test.job_in('pending');
create temp table d as
  select * from jobengine.create_job('child', '{}', jsonb_build_object('dependsOn', jsonb_build_array((select id from p))));

select throws_ok(
  format('select jobengine.cancel_job(%L, %L)', (select id from p), 'dependency_failed'),
  'JE009', null, 'dependency_failed is refused as an operator''s reason'
);
select throws_ok(
  format('select jobengine.cancel_job(%L, %L)', (select id from p), 'dependency_cancelled'),
  'JE009', null, 'dependency_cancelled is refused as an operator''s reason'
);
select is((select status::text from jobengine.jobs where id = (select id from p)), 'pending',
  'the job is unchanged');

-- any other reason: the dependent is cancelled as dependency_cancelled
select lives_ok(
  format('select jobengine.cancel_job(%L, %L)', (select id from p), 'not_needed'),
  'another reason is taken'
);
select results_eq(
  format('select status::text, status_reason from jobengine.jobs where id = %L', (select id from d)),
  $$ values ('cancelled'::text, 'dependency_cancelled'::text) $$,
  'the dependent is cancelled with dependency_cancelled'
);

select * from finish();
rollback;
