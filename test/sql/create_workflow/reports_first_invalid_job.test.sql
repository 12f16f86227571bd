-- create_workflow checks plain jobs ({ ref, type, payload }) in one set-based pass and the
-- others one by one; either way the error names the first invalid job in array order, and a
-- refused workflow writes nothing.
begin;
\ir ../_helpers.psql
select plan(7);

create temp table before as select jobengine_test.table_counts() as counts;

select throws_ok(
  $$ select jobengine.create_workflow('[{"ref":"a","type":"t"},{"ref":"b","type":"t","color":"red"},{"ref":"c","type":7}]') $$,
  'JE009', 'Invalid argument "color": is not a known option', 'an unknown key in jobs[1] is reported before jobs[2]');
select throws_ok(
  $$ select jobengine.create_workflow('[{"ref":"a","type":"t"},{"ref":"b","type":"t"},{"ref":"c","type":7}]') $$,
  'JE009', 'Invalid argument "jobs[2].type": must be a string of 1 to 200 characters', 'a number as type (jobs[2])');
select throws_ok(
  $$ select jobengine.create_workflow('[{"ref":"a","type":"t"},[1,2],{"ref":"c","type":"t"}]') $$,
  'JE009', 'Invalid argument "jobs[1]": must be an object', 'an array as a job (jobs[1])');
select throws_ok(
  $$ select jobengine.create_workflow('[{"ref":"a","type":"t"},"x"]') $$,
  'JE009', 'Invalid argument "jobs[1]": must be an object', 'a string as a job (jobs[1])');
select throws_ok(
  $$ select jobengine.create_workflow(jsonb_build_array(jsonb_build_object('ref', repeat('r', 201), 'type', 't'))) $$,
  'JE009', 'Invalid argument "jobs[0].ref": must be a string of 1 to 200 characters', 'a ref of 201 characters');
select is((select counts from before), jobengine_test.table_counts(), 'the refused workflows wrote nothing');

select is((select count(*) from jobengine.create_workflow(
  '[{"ref":"a","type":"t"},{"ref":"b","type":"t","priority":5,"payload":{"k":1}},{"ref":"c","type":"t","payload":null}]')),
  3::bigint, 'plain and optioned jobs side by side are created');

select * from finish();
rollback;
