-- create_job: a pending job with the SPEC defaults, or with the options given.
begin;
\ir ../_helpers.psql
select plan(7);

create temp table d as select * from jobengine.create_job('report.build', '{"n": 1}', '{}');
select results_eq(
  $$ select status::text, tenant_id, type, payload, priority, attempt, max_retries, pending_dependencies,
            depends_on, requires_network, terminal, not_before = now(), idempotency_key, correlation_id
       from d $$,
  $$ values ('pending'::text, 'default'::text, 'report.build'::text, '{"n": 1}'::jsonb, 0, 0, 3, 0,
             '{}'::uuid[], false, false, true, null::text, null::text) $$,
  'defaults: pending, tenant default, priority 0, attempt 0, maxRetries 3, no deps, due now'
);
select is(
  (select retry_policy from d),
  '{"maxRetries": 3, "backoff": "exponential", "initialDelayMs": 1000, "maxDelayMs": 300000, "multiplier": 2, "jitter": 0.1}'::jsonb,
  'the default retry policy is stored normalized'
);

create temp table o as select * from jobengine.create_job('report.build', null, '{
  "tenantId": "acme", "priority": -7, "notBefore": "2031-01-02T03:04:05Z", "requiresNetwork": true,
  "correlationId": "c-9", "actor": "carol", "idempotencyKey": "k-1",
  "retryPolicy": {"maxRetries": 9, "backoff": "linear", "initialDelayMs": 250, "jitter": 0},
  "maxRetries": 5}');
select results_eq(
  $$ select tenant_id, priority, not_before, requires_network, correlation_id, idempotency_key, status_actor, payload
       from o $$,
  $$ values ('acme'::text, -7, '2031-01-02T03:04:05Z'::timestamptz, true, 'c-9'::text, 'k-1'::text, 'carol'::text, '{}'::jsonb) $$,
  'options are stored: tenant, priority, notBefore, requiresNetwork, correlationId, idempotencyKey, actor; null payload is {}'
);
select results_eq(
  $$ select max_retries, retry_policy from o $$,
  $$ values (5, '{"maxRetries": 5, "backoff": "linear", "initialDelayMs": 250, "maxDelayMs": 300000, "multiplier": 2, "jitter": 0}'::jsonb) $$,
  'the top-level maxRetries overrides retryPolicy.maxRetries; the rest of the policy is filled in'
);
select is(
  (select data ->> 'requiresNetwork' from jobengine.timeline_events where subject_id = (select id from o)),
  'true', 'job.created data says requiresNetwork'
);
select is(
  (select count(*)::integer from jobengine.job_history where job_id in (select id from d union all select id from o)),
  2, 'each creation writes exactly one history row'
);
select is(
  (select status::text from jobengine.create_job('x', '{}', '{"notBefore": null, "correlationId": null, "actor": null}')),
  'pending', 'null notBefore, correlationId and actor are accepted'
);

select * from finish();
rollback;
