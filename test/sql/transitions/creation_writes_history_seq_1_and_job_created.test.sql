-- Creating a job is the (new) -> pending transition: history seq 1 with from_status null and a
-- job.created event. A job can only be born pending: a raw INSERT with another status is JE001.
begin;
\ir ../_helpers.psql
select plan(12);

create temp table j as
  select * from jobengine.create_job('email.send', '{"to": "a@example.com"}',
    '{"tenantId": "acme", "correlationId": "corr-1", "actor": "alice", "priority": 5}');

select results_eq(
  $$ select seq, from_status::text, to_status::text, attempt, actor from jobengine.job_history where job_id = (select id from j) $$,
  $$ values (1, null::text, 'pending', 0, 'alice') $$,
  'create_job writes history seq 1: (null) -> pending, attempt 0, with the actor'
);
select is((select version from jobengine.jobs where id = (select id from j)), 1, 'the new job is at version 1 (= latest history seq)');
select results_eq(
  $$ select type, tenant_id, subject_kind, correlation_id, actor, schema_version, data ->> 'to', data ->> 'type'
       from jobengine.timeline_events where subject_id = (select id from j) $$,
  $$ values ('job.created', 'acme', 'job', 'corr-1', 'alice', 1, 'pending', 'email.send') $$,
  'create_job writes one job.created event with tenant, correlation id, actor and data'
);

-- a raw INSERT: pending is fine and recorded like any creation
insert into jobengine.jobs (type, retry_policy) values ('raw.insert', jobengine.normalize_retry_policy(null));
select is(
  jobengine_test.transitions((select id from jobengine.jobs where type = 'raw.insert')),
  '(new)->pending', 'a raw INSERT of a pending job writes history seq 1'
);
select is(
  jobengine_test.event_types((select id from jobengine.jobs where type = 'raw.insert')),
  'job.created', 'a raw INSERT of a pending job writes job.created'
);
select is(
  (select status_actor from jobengine.jobs where type = 'raw.insert'), session_user::text collate "default",
  'a raw INSERT records the database user as actor'
);

select throws_ok(
  $$ insert into jobengine.jobs (type, status, retry_policy, lease_id, lease_owner, lease_expires_at, started_at)
     values ('raw.running', 'running', '{}', gen_random_uuid(), 'w', now() + interval '1 minute', now()) $$,
  'JE001', null, 'a raw INSERT with status running raises JE001'
);
select throws_ok(
  $$ insert into jobengine.jobs (type, status, retry_policy) values ('raw.scheduled', 'scheduled', '{}') $$,
  'JE001', null, 'a raw INSERT with status scheduled raises JE001'
);
select throws_ok(
  $$ insert into jobengine.jobs (type, status, retry_policy, completed_at, terminal) values ('raw.completed', 'completed', '{}', now(), true) $$,
  'JE001', null, 'a raw INSERT with status completed raises JE001'
);
select is_empty(
  $$ select 1 from jobengine.jobs where type like 'raw.%' and type <> 'raw.insert' $$,
  'the refused INSERTs left no job'
);

-- the insert trigger owns the bookkeeping: attempt, terminal and version cannot be forged
insert into jobengine.jobs (type, retry_policy, attempt, terminal, version)
values ('raw.forged', '{}', 7, false, 42);
select results_eq(
  $$ select attempt, version from jobengine.jobs where type = 'raw.forged' $$,
  $$ values (0, 1) $$,
  'a raw INSERT cannot forge attempt or version'
);
select results_eq(
  $$ select seq from jobengine.job_history where job_id = (select id from jobengine.jobs where type = 'raw.forged') $$,
  $$ values (1) $$,
  'the forged INSERT is still recorded as seq 1'
);

select * from finish();
rollback;
