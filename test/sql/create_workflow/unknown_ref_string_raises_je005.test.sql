-- A dependsOn entry that is neither a ref of the workflow nor a job id (here a mistyped ref) is
-- an unknown reference: SPEC section 3 wants JE005 (HTTP 400), and nothing written.
begin;
\ir ../_helpers.psql
select plan(3);

create temp table counts as select jobengine_test.table_counts() as c;

select throws_ok($$ select jobengine.create_workflow('[
    {"ref": "extract", "type": "t"},
    {"ref": "load", "type": "t", "dependsOn": ["extrakt"]}]') $$,
  'JE005', null, 'a mistyped ref raises JE005');
select throws_ok($$ select jobengine.create_workflow('[{"ref": "a", "type": "t", "dependsOn": ["missing"]}]') $$,
  'JE005', null, 'an unknown ref raises JE005');
select is(jobengine_test.table_counts(), (select c from counts), 'nothing was written');

select * from finish();
rollback;
