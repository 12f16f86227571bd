-- timeline_events is an append-only outbox: UPDATE, DELETE and TRUNCATE raise JE008.
begin;
\ir ../_helpers.psql
select plan(5);

create temp table j as select * from jobengine_test.job_in('scheduled');
create temp table before as select * from jobengine.timeline_events;

select throws_ok(
  format($$ update jobengine.timeline_events set type = 'job.completed' where subject_id = %L $$, (select id from j)),
  'JE008', null, 'UPDATE on timeline_events raises JE008'
);
select throws_ok(
  $$ update jobengine.timeline_events set actor = 'x' where false $$,
  'JE008', null, 'UPDATE on timeline_events raises JE008 even when it matches no row'
);
select throws_ok(
  format($$ delete from jobengine.timeline_events where subject_id = %L $$, (select id from j)),
  'JE008', null, 'DELETE on timeline_events raises JE008'
);
select throws_ok(
  $$ truncate jobengine.timeline_events $$,
  'JE008', null, 'TRUNCATE on timeline_events raises JE008'
);
select set_eq(
  $$ select * from jobengine.timeline_events $$,
  $$ select * from before $$,
  'the refused statements left every event as it was'
);

select * from finish();
rollback;
