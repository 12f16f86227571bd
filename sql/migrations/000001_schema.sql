-- jobengine schema, version 1: types, tables, constraints and indexes.
-- Numbered migrations are never edited once applied; functions and triggers live in
-- sql/repeatable/ and are re-applied when they change.

create schema if not exists jobengine;

create type jobengine.job_status as enum (
  'pending', 'scheduled', 'running', 'completed', 'failed', 'cancelled'
);

-- The allowed (from, to) pairs: the SQL twin of TRANSITIONS in src/job/state_machine.ts.
-- Filled by sql/repeatable/010_job_transitions.sql (generated, DO NOT EDIT).
create table jobengine.job_transitions (
  from_status jobengine.job_status not null,
  to_status jobengine.job_status not null,
  primary key (from_status, to_status)
);

create table jobengine.settings (
  key text primary key,
  value jsonb not null,
  updated_at timestamptz not null default now()
);

insert into jobengine.settings (key, value) values ('sealed', 'false');

create table jobengine.jobs (
  id uuid primary key default gen_random_uuid(),
  tenant_id text not null default 'default',
  type text not null,
  status jobengine.job_status not null default 'pending',
  payload jsonb not null default '{}',
  priority integer not null default 0,
  attempt integer not null default 0,
  max_retries integer not null default 3,
  retry_policy jsonb not null,
  depends_on uuid[] not null default '{}',
  -- dependencies not yet completed; the job is eligible for scheduling at 0
  pending_dependencies integer not null default 0,
  not_before timestamptz not null default now(),
  requires_network boolean not null default false,
  terminal boolean not null default false,
  -- why the job is held back without a transition (e.g. 'sealed_mode'); cleared when it moves
  blocked_reason text,
  lease_id uuid,
  lease_owner text,
  lease_expires_at timestamptz,
  last_error jsonb,
  result jsonb,
  idempotency_key text,
  request_hash text,
  correlation_id text,
  -- reason and actor of the latest transition (also in job_history)
  status_reason text,
  status_actor text,
  -- number of transitions so far, creation included: the seq of the latest job_history row
  version integer not null default 1,
  created_at timestamptz not null default now(),
  scheduled_at timestamptz,
  started_at timestamptz,
  completed_at timestamptz,
  failed_at timestamptz,
  cancelled_at timestamptz,
  updated_at timestamptz not null default now(),
  constraint type_length check (char_length(type) between 1 and 200),
  constraint tenant_length check (char_length(tenant_id) between 1 and 200),
  constraint idempotency_key_length check (char_length(idempotency_key) between 1 and 200),
  constraint max_retries_range check (max_retries between 0 and 100),
  constraint attempt_range check (attempt >= 0),
  constraint pending_dependencies_range check (pending_dependencies >= 0),
  constraint running_has_lease check (
    (status = 'running') = (lease_id is not null and lease_owner is not null and lease_expires_at is not null)
  ),
  constraint running_has_started_at check (status <> 'running' or started_at is not null),
  constraint completed_has_completed_at check ((status = 'completed') = (completed_at is not null)),
  constraint cancelled_has_cancelled_at check ((status = 'cancelled') = (cancelled_at is not null)),
  constraint terminal_status check (
    (status in ('completed', 'cancelled') and terminal)
    or (status = 'failed')
    or (status in ('pending', 'scheduled', 'running') and not terminal)
  )
);

-- claim: the ready set, in claim order
create index jobs_claim_idx on jobengine.jobs (priority desc, created_at, id)
  where status = 'scheduled';
-- schedule_ready: pending jobs whose dependencies are all completed
create index jobs_ready_idx on jobengine.jobs (created_at, id)
  where status = 'pending' and pending_dependencies = 0;
-- the scheduler's timer: the next delayed job to come due (jobs due at creation are left out)
create index jobs_delayed_idx on jobengine.jobs (not_before)
  where status = 'scheduled' and not_before > created_at;
-- reap_expired_leases
create index jobs_lease_idx on jobengine.jobs (lease_expires_at)
  where status = 'running';
-- idempotent create
create unique index jobs_idempotency_idx on jobengine.jobs (tenant_id, idempotency_key)
  where idempotency_key is not null;
-- listing with a stable cursor
create index jobs_list_idx on jobengine.jobs (tenant_id, created_at, id);

create table jobengine.job_dependencies (
  job_id uuid not null,
  depends_on_id uuid not null,
  primary key (job_id, depends_on_id),
  constraint no_self_dependency check (job_id <> depends_on_id)
);

create index job_dependencies_reverse_idx on jobengine.job_dependencies (depends_on_id, job_id);

-- append-only: one row per transition, creation included
create table jobengine.job_history (
  job_id uuid not null,
  seq integer not null,
  from_status jobengine.job_status,
  to_status jobengine.job_status not null,
  attempt integer not null,
  reason text,
  actor text,
  details jsonb not null default '{}',
  occurred_at timestamptz not null default now(),
  primary key (job_id, seq)
);

-- append-only outbox of EventEnvelopes; sequence is global and strictly increasing
create table jobengine.timeline_events (
  sequence bigint generated always as identity primary key,
  id uuid not null default gen_random_uuid(),
  type text not null,
  schema_version integer not null default 1,
  tenant_id text not null,
  subject_kind text not null default 'job',
  subject_id uuid,
  occurred_at timestamptz not null default now(),
  correlation_id text,
  actor text,
  data jsonb not null default '{}',
  constraint event_type check (type in (
    'job.created', 'job.scheduled', 'job.started', 'job.completed', 'job.failed',
    'job.retry_scheduled', 'job.cancelled', 'job.blocked', 'sealed.egress_blocked'
  ))
);

create index timeline_events_subject_idx on jobengine.timeline_events (subject_id, sequence);

-- leadership leases: one JobScheduler per database acts at a time
create table jobengine.leaders (
  name text primary key,
  holder text not null,
  acquired_at timestamptz not null default now(),
  expires_at timestamptz not null
);
