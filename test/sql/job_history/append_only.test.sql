-- job_history is append-only: UPDATE, DELETE and TRUNCATE raise JE008, and rows are written only
-- by the jobs triggers (a direct INSERT raises JE008).
begin;
\ir ../_helpers.psql
select plan(8);

create temp table j as select * from jobengine_test.job_in('completed');
create temp table before as select * from jobengine.job_history where job_id = (select id from j);

select throws_ok(
  format($$ update jobengine.job_history set reason = 'rewritten' where job_id = %L $$, (select id from j)),
  'JE008', null, 'UPDATE on job_history raises JE008'
);
select throws_ok(
  $$ update jobengine.job_history set reason = 'rewritten' where false $$,
  'JE008', null, 'UPDATE on job_history raises JE008 even when it matches no row'
);
select throws_ok(
  format($$ delete from jobengine.job_history where job_id = %L $$, (select id from j)),
  'JE008', null, 'DELETE on job_history raises JE008'
);
select throws_ok(
  $$ truncate jobengine.job_history $$,
  'JE008', null, 'TRUNCATE on job_history raises JE008'
);
select throws_ok(
  format($$ insert into jobengine.job_history (job_id, seq, from_status, to_status, attempt)
            values (%L, 99, 'completed', 'scheduled', 1) $$, (select id from j)),
  'JE008', null, 'a direct INSERT into job_history raises JE008'
);
select throws_ok(
  format($$ insert into jobengine.job_history (job_id, seq, from_status, to_status, attempt)
            select %L, 99, null, 'pending', 0 $$, gen_random_uuid()),
  'JE008', null, 'a direct INSERT ... SELECT into job_history raises JE008'
);
select set_eq(
  format($$ select * from jobengine.job_history where job_id = %L $$, (select id from j)),
  $$ select * from before $$,
  'the refused statements left the job''s history as it was'
);
select is(jobengine_test.transitions((select id from j)),
  '(new)->pending, pending->scheduled, scheduled->running, running->completed',
  'the history still reads create, schedule, claim, complete');

select * from finish();
rollback;
