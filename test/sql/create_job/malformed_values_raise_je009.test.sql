-- create_job refuses malformed values with its own SQLSTATE (JE009, invalid argument), like
-- every other invalid option, instead of leaking a cast error (22P02 / 22007) that the API
-- layers would not map to a 400.
begin;
\ir ../_helpers.psql
select plan(3);

create temp table counts as select jobengine_test.table_counts() as c;

select throws_ok(
  $$ select jobengine.create_job('t', '{}', '{"dependsOn": ["not-a-uuid"]}') $$,
  'JE009', null, 'dependsOn with an element that is not a uuid raises JE009'
);
select throws_ok(
  $$ select jobengine.create_job('t', '{}', '{"notBefore": "not a timestamp"}') $$,
  'JE009', null, 'notBefore that is not a timestamp raises JE009'
);
select is(jobengine_test.table_counts(), (select c from counts), 'the refused calls wrote nothing');

select * from finish();
rollback;
