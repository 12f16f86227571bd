-- A job's full lifecycle through the functions: every transition writes one history row whose
-- seq follows the row's version, with the reason, actor, attempt and details of that transition,
-- and one event of the matching type; the row's timestamps and lease follow the status.
begin;
\ir ../_helpers.psql
select plan(12);

create temp table j as select * from jobengine_test.new_job('{"actor": "alice"}', 'lifecycle.full');
do $$ begin perform jobengine.schedule_job((select id from j), 'bob'); end $$;
create temp table claimed as select * from jobengine.claim_jobs('worker-1', array['lifecycle.full'], 1, 30);
do $$ begin perform jobengine.complete_job((select id from j), (select lease_id from claimed), '{"answer": 42}'); end $$;

select results_eq(
  $$ select seq, from_status::text, to_status::text, attempt, reason, actor
       from jobengine.job_history where job_id = (select id from j) order by seq $$,
  $$ values (1, null::text, 'pending'::text, 0, null::text, 'alice'::text),
            (2, 'pending', 'scheduled', 0, 'manual', 'bob'),
            (3, 'scheduled', 'running', 1, 'claimed', 'worker-1'),
            (4, 'running', 'completed', 1, 'completed', 'worker-1') $$,
  'history: create (alice), schedule (manual, bob), claim (worker-1, attempt 1), complete (the lease holder)'
);
select is(
  jobengine_test.event_types((select id from j)),
  'job.created, job.scheduled, job.started, job.completed',
  'one event per transition, of the matching type'
);
select is((select version from jobengine.jobs where id = (select id from j)), 4, 'version = latest history seq');
select is(
  (select details ->> 'leaseOwner' from jobengine.job_history where job_id = (select id from j) and seq = 3),
  'worker-1', 'the running history row names the lease owner in details'
);
select results_eq(
  $$ select data ->> 'from', data ->> 'to', (data ->> 'attempt')::integer, data ->> 'leaseOwner', actor
       from jobengine.timeline_events where subject_id = (select id from j) and type = 'job.started' $$,
  $$ values ('scheduled'::text, 'running'::text, 1, 'worker-1'::text, 'worker-1'::text) $$,
  'job.started data carries from, to, attempt and leaseOwner'
);
select results_eq(
  $$ select data ->> 'from', data ->> 'to', (data ->> 'terminal')::boolean
       from jobengine.timeline_events where subject_id = (select id from j) and type = 'job.completed' $$,
  $$ values ('running'::text, 'completed'::text, true) $$,
  'job.completed data carries from, to and terminal'
);
select ok(
  (select bool_and(e.occurred_at is not null and e.schema_version = 1 and e.subject_kind = 'job' and e.tenant_id = 'default')
     from jobengine.timeline_events e where e.subject_id = (select id from j)),
  'every event is an envelope: schemaVersion 1, subject kind job, tenant, occurredAt'
);

create temp table done as select * from jobengine.jobs where id = (select id from j);
select results_eq(
  $$ select status::text, terminal, result, lease_id, lease_owner, lease_expires_at from done $$,
  $$ values ('completed'::text, true, '{"answer": 42}'::jsonb, null::uuid, null::text, null::timestamptz) $$,
  'the completed job is terminal, holds its result and no lease'
);
select ok(
  (select scheduled_at is not null and started_at is not null and completed_at is not null
          and cancelled_at is null and failed_at is null from done),
  'scheduled_at, started_at and completed_at are set; cancelled_at and failed_at are not'
);
select is((select status_reason from done), 'completed', 'the row keeps the latest reason');
select is((select status_actor from done), 'worker-1', 'the row keeps the latest actor');

-- the context is cleared after each function: a later raw UPDATE records no reason and the database user
create temp table raw as select * from jobengine_test.job_in('pending');
update jobengine.jobs set status = 'scheduled' where id = (select id from raw);
select is(
  (select coalesce(h.reason, '(none)') || ' by ' || h.actor from jobengine.job_history h where h.job_id = (select id from raw) and h.seq = 2),
  '(none) by ' || session_user,
  'a raw UPDATE after the functions records no reason and the database user (context cleared)'
);

select * from finish();
rollback;
