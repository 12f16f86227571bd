-- record_egress_blocked writes one sealed.egress_blocked event with host, port and api: about the
-- job (its tenant and correlation id) when a job id is given, else about the system.
begin;
\ir ../_helpers.psql
select plan(5);

create temp table j as select * from jobengine_test.job_in('running', '{"tenantId": "acme", "correlationId": "corr-7"}');
create temp table e1 as select * from jobengine.record_egress_blocked('example.com', 443, 'fetch', (select id from j));
create temp table e2 as select * from jobengine.record_egress_blocked('10.0.0.1', 5432, 'Deno.connect', null, 'acme', 'guard-2');

select results_eq(
  $$ select type, subject_kind, subject_id, tenant_id, correlation_id, actor, data, schema_version from e1 $$,
  $$ select 'sealed.egress_blocked'::text, 'job'::text, id, 'acme'::text, 'corr-7'::text, 'network_guard'::text,
            '{"host": "example.com", "port": 443, "api": "fetch"}'::jsonb, 1 from j $$,
  'with a job: subject the job, its tenant and correlation id, actor network_guard, host/port/api'
);
select results_eq(
  $$ select type, subject_kind, subject_id, tenant_id, actor, data from e2 $$,
  $$ values ('sealed.egress_blocked'::text, 'system'::text, null::uuid, 'acme'::text, 'guard-2'::text,
             '{"host": "10.0.0.1", "port": 5432, "api": "Deno.connect"}'::jsonb) $$,
  'without a job: subject system, the given tenant and actor'
);
select is(
  (select count(*)::integer from jobengine.timeline_events where type = 'sealed.egress_blocked'), 2,
  'exactly one event per call'
);
select ok((select sequence from e2) > (select sequence from e1), 'events get increasing sequence numbers');
select is(
  (select tenant_id from jobengine.record_egress_blocked('h', 1, 'fetch')), 'default',
  'without job or tenant: the default tenant'
);

select * from finish();
rollback;
