-- create_job with an idempotencyKey: the same tenant + key + request returns the existing job
-- (no new row, history or event); a different request under the same key raises JE006; keys
-- are per tenant.
begin;
\ir ../_helpers.psql
select plan(14);

create temp table first as select * from jobengine.create_job('mail', '{"to": "x"}',
  '{"idempotencyKey": "key-1", "priority": 3, "retryPolicy": {"maxRetries": 2}}');
create temp table counts as select jobengine_test.table_counts() as c;

select is(
  (select id from jobengine.create_job('mail', '{"to": "x"}', '{"idempotencyKey": "key-1", "priority": 3, "retryPolicy": {"maxRetries": 2}}')),
  (select id from first), 'a replay returns the same job'
);
select is(
  (select id from jobengine.create_job('mail', '{"to": "x"}',
    '{"idempotencyKey": "key-1", "priority": 3, "maxRetries": 2, "retryPolicy": {"backoff": "exponential", "jitter": 0.1}, "correlationId": "other", "actor": "someone"}')),
  (select id from first), 'a replay spelling out the defaults, with another correlationId and actor, returns the same job'
);
select is(jobengine_test.table_counts(), (select c from counts), 'replays write nothing');

-- a replay after the job moved on still returns it, as it is now
do $$ begin perform jobengine.schedule_job((select id from first)); end $$;
select results_eq(
  $$ select id, status::text from jobengine.create_job('mail', '{"to": "x"}', '{"idempotencyKey": "key-1", "priority": 3, "retryPolicy": {"maxRetries": 2}}') $$,
  $$ select id, 'scheduled'::text from first $$,
  'a replay after scheduling returns the job in its current state'
);

select throws_ok(
  $$ select jobengine.create_job('mail', '{"to": "y"}', '{"idempotencyKey": "key-1", "priority": 3, "retryPolicy": {"maxRetries": 2}}') $$,
  'JE006', null, 'same key, different payload: JE006'
);
select throws_ok(
  $$ select jobengine.create_job('sms', '{"to": "x"}', '{"idempotencyKey": "key-1", "priority": 3, "retryPolicy": {"maxRetries": 2}}') $$,
  'JE006', null, 'same key, different type: JE006'
);
select throws_ok(
  $$ select jobengine.create_job('mail', '{"to": "x"}', '{"idempotencyKey": "key-1", "priority": 4, "retryPolicy": {"maxRetries": 2}}') $$,
  'JE006', null, 'same key, different priority: JE006'
);

create temp table acme as select * from jobengine.create_job('mail', '{"to": "x"}',
  '{"idempotencyKey": "key-1", "tenantId": "acme", "priority": 3, "retryPolicy": {"maxRetries": 2}}');
select isnt((select id from acme), (select id from first), 'the same key in another tenant is another job');
select is(
  (select count(*)::integer from jobengine.jobs where idempotency_key = 'key-1'), 2,
  'one job per tenant and key'
);

-- notBefore is compared as the instant it names, however it is written
create temp table later as select * from jobengine.create_job('mail', '{}',
  '{"idempotencyKey": "key-nb", "notBefore": "2030-01-01T00:00:00Z"}');
select is(
  (select array_agg(id order by id) from (
     select (jobengine.create_job('mail', '{}', jsonb_build_object('idempotencyKey', 'key-nb', 'notBefore', t))).id
       from unnest(array['2030-01-01T00:00:00.000Z', '2030-01-01T00:00:00+00:00', '2030-01-01T01:00:00+01:00']) t) r),
  (select array_fill(id, array[3]) from later),
  'the same notBefore instant written three other ways is a replay'
);
select throws_ok(
  $$ select jobengine.create_job('mail', '{}', '{"idempotencyKey": "key-nb", "notBefore": "2030-01-01T00:00:01Z"}') $$,
  'JE006', null, 'same key, another notBefore instant: JE006'
);
select throws_ok(
  $$ select jobengine.create_job('mail', '{}', '{"idempotencyKey": "key-nb"}') $$,
  'JE006', null, 'same key, notBefore left out (now) against a future instant: JE006'
);

-- the priority is compared as the integer it is: 0, 0.0 and left out are one request
create temp table pr as select * from jobengine.create_job('mail', '{}', '{"idempotencyKey": "key-pr"}');
select is(
  (select array_agg((jobengine.create_job('mail', '{}', ('{"idempotencyKey": "key-pr", "priority": ' || p || '}')::jsonb)).id)
     from unnest(array['0', '0.0', '0e3']) p),
  (select array_fill(id, array[3]) from pr),
  'priority 0, 0.0 and 0e3 replay a job created without one'
);
select throws_ok(
  $$ select jobengine.create_job('mail', '{}', '{"idempotencyKey": "key-pr", "priority": 1.0}') $$,
  'JE006', null, 'same key, priority 1.0 against 0: JE006'
);

select * from finish();
rollback;
