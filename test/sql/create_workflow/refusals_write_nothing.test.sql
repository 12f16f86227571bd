-- create_workflow is atomic: a cycle, an unknown reference, a duplicate ref or another tenant's
-- job raises JE005; a malformed workflow raises JE009; in every case nothing is written.
begin;
\ir ../_helpers.psql
select plan(16);

create temp table existing as select * from jobengine_test.job_in('completed');
create temp table other as select * from jobengine_test.new_job('{"tenantId": "other"}');
create temp table counts as select jobengine_test.table_counts() as c;

select throws_ok($$ select jobengine.create_workflow('[
    {"ref": "a", "type": "t", "dependsOn": ["b"]},
    {"ref": "b", "type": "t", "dependsOn": ["a"]}]') $$,
  'JE005', null, 'a two-node cycle raises JE005');
select throws_ok($$ select jobengine.create_workflow('[{"ref": "a", "type": "t", "dependsOn": ["a"]}]') $$,
  'JE005', null, 'a job depending on itself raises JE005');
select throws_ok($$ select jobengine.create_workflow('[
    {"ref": "root", "type": "t"},
    {"ref": "x", "type": "t", "dependsOn": ["root", "z"]},
    {"ref": "y", "type": "t", "dependsOn": ["x"]},
    {"ref": "z", "type": "t", "dependsOn": ["y"]},
    {"ref": "tail", "type": "t", "dependsOn": ["z"]}]') $$,
  'JE005', null, 'a three-node cycle behind a valid root raises JE005');
select throws_ok(format($$ select jobengine.create_workflow('[
    {"ref": "a", "type": "t"},
    {"ref": "b", "type": "t", "dependsOn": ["a", %s]}]') $$, to_json(gen_random_uuid())),
  'JE005', null, 'an unknown job id raises JE005');
select throws_ok($$ select jobengine.create_workflow('[
    {"ref": "a", "type": "t"},
    {"ref": "a", "type": "u"}]') $$,
  'JE005', null, 'a duplicate ref raises JE005');
select throws_ok(format($$ select jobengine.create_workflow('[{"ref": "a", "type": "t", "dependsOn": [%s]}]') $$,
    to_json((select id from other))),
  'JE005', null, 'another tenant''s job raises JE005');
select throws_ok(format($$ select jobengine.create_workflow('[{"ref": "a", "type": "t", "dependsOn": [%s]}]', '{"tenantId": "acme"}') $$,
    to_json((select id from existing))),
  'JE005', null, 'a default-tenant job in an acme workflow raises JE005');
select is(jobengine_test.table_counts(), (select c from counts), 'the JE005 refusals wrote nothing');

select throws_ok($$ select jobengine.create_workflow('[]') $$, 'JE009', null, 'an empty workflow raises JE009');
select throws_ok($$ select jobengine.create_workflow('{"ref": "a"}') $$, 'JE009', null, 'a workflow that is not an array raises JE009');
select throws_ok($$ select jobengine.create_workflow('[{"ref": "a"}]') $$, 'JE009', null, 'a job without type raises JE009');
select throws_ok($$ select jobengine.create_workflow('[{"type": "t"}]') $$, 'JE009', null, 'a job without ref raises JE009');
select throws_ok($$ select jobengine.create_workflow('[{"ref": "a", "type": "t", "tenantId": "x"}]') $$, 'JE009', null, 'a per-job tenantId raises JE009');
select throws_ok($$ select jobengine.create_workflow('[{"ref": "a", "type": "t", "retryPolicy": {"jitter": 2}}]') $$, 'JE009', null, 'an invalid retry policy raises JE009');
select throws_ok($$ select jobengine.create_workflow('[{"ref": "a", "type": "t"}]', '{"priority": 1}') $$, 'JE009', null, 'an unknown workflow option raises JE009');
select is(jobengine_test.table_counts(), (select c from counts), 'the JE009 refusals wrote nothing');

select * from finish();
rollback;
