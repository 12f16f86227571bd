-- create_job validates its arguments: every invalid option raises JE009 and writes nothing.
begin;
\ir ../_helpers.psql
select plan(19);

create temp table counts as select jobengine_test.table_counts() as c;

select throws_ok($$ select jobengine.create_job(null, '{}', '{}') $$, 'JE009', null, 'type null');
select throws_ok($$ select jobengine.create_job('', '{}', '{}') $$, 'JE009', null, 'type empty');
select throws_ok($$ select jobengine.create_job(repeat('t', 201), '{}', '{}') $$, 'JE009', null, 'type longer than 200');
select throws_ok($$ select jobengine.create_job('t', '{}', '[]') $$, 'JE009', null, 'options not an object');
select throws_ok($$ select jobengine.create_job('t', '{}', '{"tenant": "acme"}') $$, 'JE009', null, 'unknown option');
select throws_ok($$ select jobengine.create_job('t', '{}', '{"tenantId": ""}') $$, 'JE009', null, 'tenantId empty');
select throws_ok($$ select jobengine.create_job('t', '{}', '{"tenantId": 7}') $$, 'JE009', null, 'tenantId not a string');
select throws_ok($$ select jobengine.create_job('t', '{}', '{"priority": 1.5}') $$, 'JE009', null, 'priority not whole');
select throws_ok($$ select jobengine.create_job('t', '{}', '{"priority": "5"}') $$, 'JE009', null, 'priority a string');
select throws_ok($$ select jobengine.create_job('t', '{}', '{"priority": 1000001}') $$, 'JE009', null, 'priority out of range');
select throws_ok($$ select jobengine.create_job('t', '{}', '{"dependsOn": "x"}') $$, 'JE009', null, 'dependsOn not an array');
select throws_ok($$ select jobengine.create_job('t', '{}', '{"notBefore": 5}') $$, 'JE009', null, 'notBefore not a string');
select throws_ok($$ select jobengine.create_job('t', '{}', '{"requiresNetwork": "yes"}') $$, 'JE009', null, 'requiresNetwork not a boolean');
select throws_ok($$ select jobengine.create_job('t', '{}', '{"idempotencyKey": ""}') $$, 'JE009', null, 'idempotencyKey empty');
select throws_ok($$ select jobengine.create_job('t', '{}', '{"correlationId": 1}') $$, 'JE009', null, 'correlationId not a string');
select throws_ok($$ select jobengine.create_job('t', '{}', '{"maxRetries": 101}') $$, 'JE009', null, 'maxRetries above 100');
select throws_ok($$ select jobengine.create_job('t', '{}', '{"retryPolicy": {"backoff": "random"}}') $$, 'JE009', null, 'retryPolicy.backoff unknown');
select throws_ok($$ select jobengine.create_job('t', '{}', '{"retryPolicy": {"delay": 5}}') $$, 'JE009', null, 'retryPolicy with an unknown field');

select is(jobengine_test.table_counts(), (select c from counts), 'the refused calls wrote nothing');

select * from finish();
rollback;
