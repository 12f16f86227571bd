-- A job with history is never deleted: DELETE and TRUNCATE on jobs raise JE008.
begin;
\ir ../_helpers.psql
select plan(4);

create temp table j as select * from jobengine_test.job_in('completed');

select throws_ok(
  format($$ delete from jobengine.jobs where id = %L $$, (select id from j)),
  'JE008', null, 'DELETE on jobs raises JE008'
);
select throws_ok(
  $$ delete from jobengine.jobs where false $$,
  'JE008', null, 'DELETE on jobs raises JE008 even when it matches no row'
);
select throws_ok(
  $$ truncate jobengine.jobs $$,
  'JE008', null, 'TRUNCATE on jobs raises JE008'
);
select is((select status::text from jobengine.jobs where id = (select id from j)), 'completed', 'the job is still there');

select * from finish();
rollback;
