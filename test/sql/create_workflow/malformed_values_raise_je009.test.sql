-- create_workflow refuses malformed per-job values with JE009 (invalid argument) rather than a
-- leaked cast error, and writes nothing.
begin;
\ir ../_helpers.psql
select plan(4);

create temp table counts as select jobengine_test.table_counts() as c;

select throws_ok($$ select jobengine.create_workflow('[{"ref": "a", "type": "t", "priority": 1.5}]') $$,
  'JE009', null, 'a priority that is not whole raises JE009');
select throws_ok($$ select jobengine.create_workflow('[{"ref": "a", "type": "t", "notBefore": "soon"}]') $$,
  'JE009', null, 'a notBefore that is not a timestamp raises JE009 (no dependencies)');
select throws_ok($$ select jobengine.create_workflow('[{"ref": "a", "type": "t"}, {"ref": "b", "type": "t", "dependsOn": ["a"], "notBefore": "soon"}]') $$,
  'JE009', null, 'a notBefore that is not a timestamp raises JE009 (with dependencies)');
select is(jobengine_test.table_counts(), (select c from counts), 'nothing was written');

select * from finish();
rollback;
