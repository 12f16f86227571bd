-- notBefore must be a real point in time: 'infinity' / '-infinity' parse as timestamptz but make
-- a job that never comes due (or is always due) and a next_wakeup() of infinity, which the
-- scheduler's timer cannot represent (Invalid Date). They raise JE009 like any other invalid
-- notBefore, in create_job and in create_workflow.
begin;
\ir ../_helpers.psql
select plan(4);

create temp table counts as select jobengine_test.table_counts() as c;

select throws_ok($$ select jobengine.create_job('t', '{}', '{"notBefore": "infinity"}') $$,
  'JE009', null, 'create_job: notBefore "infinity" raises JE009');
select throws_ok($$ select jobengine.create_job('t', '{}', '{"notBefore": "-infinity"}') $$,
  'JE009', null, 'create_job: notBefore "-infinity" raises JE009');
select throws_ok($$ select jobengine.create_workflow('[{"ref": "a", "type": "t", "notBefore": "infinity"}]') $$,
  'JE009', null, 'create_workflow: notBefore "infinity" raises JE009');
select is(jobengine_test.table_counts(), (select c from counts), 'nothing was written');

select * from finish();
rollback;
