-- A workflow whose jobs depend on nothing: all created at once, in input order, pending, with
-- each job's options and the workflow's tenant, correlation id and actor; one history row and one
-- job.created event each.
begin;
\ir ../_helpers.psql
select plan(6);

create temp table wf as
  select w.*, row_number() over () as ord from jobengine.create_workflow('[
    {"ref": "one", "type": "solo.one", "payload": {"n": 1}, "priority": 9},
    {"ref": "two", "type": "solo.two", "dependsOn": [], "notBefore": "2030-05-06T07:08:09Z", "requiresNetwork": true},
    {"ref": "three", "type": "solo.three", "correlationId": "own", "maxRetries": 0, "retryPolicy": {"backoff": "fixed"}}
  ]', '{"tenantId": "acme", "correlationId": "wf-c", "actor": "wendy"}') w;

select results_eq(
  $$ select type, status::text, tenant_id, payload, priority, requires_network, correlation_id, pending_dependencies, depends_on
       from wf order by ord $$,
  $$ values ('solo.one'::text, 'pending'::text, 'acme'::text, '{"n": 1}'::jsonb, 9, false, 'wf-c'::text, 0, '{}'::uuid[]),
            ('solo.two', 'pending', 'acme', '{}', 0, true, 'wf-c', 0, '{}'),
            ('solo.three', 'pending', 'acme', '{}', 0, false, 'own', 0, '{}') $$,
  'the jobs in input order, with their options, the workflow tenant and correlation id (a job''s own wins)'
);
select is((select not_before from wf where type = 'solo.two'), '2030-05-06T07:08:09Z'::timestamptz, 'notBefore is stored');
select results_eq(
  $$ select max_retries, retry_policy ->> 'backoff' from wf where type = 'solo.three' $$,
  $$ values (0, 'fixed'::text) $$,
  'maxRetries and retryPolicy are stored normalized'
);
select is(
  (select count(*)::integer from jobengine.job_history h join wf on wf.id = h.job_id where h.seq = 1 and h.to_status = 'pending' and h.actor = 'wendy'),
  3, 'one creation history row each, by the workflow actor'
);
select is(
  (select count(*)::integer from jobengine.timeline_events e join wf on wf.id = e.subject_id where e.type = 'job.created' and e.tenant_id = 'acme'),
  3, 'one job.created event each, in the workflow tenant'
);
select is(jobengine.schedule_ready(), 3, 'schedule_ready schedules all three');

select * from finish();
rollback;
