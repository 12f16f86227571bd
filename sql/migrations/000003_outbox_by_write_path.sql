-- jobengine schema, version 3: the outbox split by write path.
--
-- timeline_events becomes a table list-partitioned by event type, in two partitions:
--   timeline_events_intake  job.created, job.scheduled, job.blocked (creating and promoting jobs)
--   timeline_events_work    everything else (claims, outcomes, cancels, retries, egress refusals)
-- The table, its columns, the global sequence and every query stay as they were.
--
-- Why: PostgreSQL records a page's leftover space in the free space map when a row does not fit,
-- and event rows differ in size (job.created about 296 bytes, job.started 236). After a bulk load
-- (a million jobs created and scheduled), every page of the outbox kept a gap smaller than one
-- intake event but large enough for a work event, and the first tens of thousands of claims and
-- completions filled those gaps one cold page (and one full-page WAL image) at a time: the first
-- 10,000 jobs off a 1M backlog took 2.2 s against 0.8 s later (docs/performance.md, finding 10).
-- Apart, work events only ever meet gaps left by work events, which they do not fit either.
--
-- A partitioned table cannot have an identity column before PostgreSQL 17, so `sequence` takes
-- its value from the same-named sequence as a default (the triggers always pass nextval()
-- explicitly). Its primary key includes the partition key; the sequence keeps it unique.
-- Existing events are copied once, in order.

alter table jobengine.timeline_events rename to timeline_events_v2;
alter index jobengine.timeline_events_pkey rename to timeline_events_v2_pkey;
alter index jobengine.timeline_events_subject_idx rename to timeline_events_v2_subject_idx;

-- the identity's sequence goes with the identity; a plain sequence continues where it stopped
create temporary table _je_outbox_sequence on commit drop as
  select last_value, is_called from jobengine.timeline_events_sequence_seq;
alter table jobengine.timeline_events_v2 alter column sequence drop identity;
create sequence jobengine.timeline_events_sequence_seq as bigint;
select pg_catalog.setval('jobengine.timeline_events_sequence_seq', s.last_value, s.is_called)
  from _je_outbox_sequence s;

create table jobengine.timeline_events (
  sequence bigint not null default pg_catalog.nextval('jobengine.timeline_events_sequence_seq'),
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
  constraint timeline_events_pkey primary key (sequence, type),
  constraint event_type check (type in (
    'job.created', 'job.scheduled', 'job.started', 'job.completed', 'job.failed',
    'job.retry_scheduled', 'job.cancelled', 'job.blocked', 'sealed.egress_blocked'
  ))
) partition by list (type);

alter sequence jobengine.timeline_events_sequence_seq owned by jobengine.timeline_events.sequence;

create table jobengine.timeline_events_intake partition of jobengine.timeline_events
  for values in ('job.created', 'job.scheduled', 'job.blocked');
create table jobengine.timeline_events_work partition of jobengine.timeline_events
  for values in ('job.started', 'job.completed', 'job.failed', 'job.retry_scheduled', 'job.cancelled',
                 'sealed.egress_blocked');

create index timeline_events_subject_idx on jobengine.timeline_events (subject_id, sequence);

insert into jobengine.timeline_events
  select * from jobengine.timeline_events_v2 order by sequence;

-- record_egress_blocked returns the table's row type; the repeatable file that defines it
-- creates it again below
drop function if exists jobengine.record_egress_blocked(text, integer, text, uuid, text, text);
drop table jobengine.timeline_events_v2;

-- the repeatable files (functions, triggers) apply again after this file, onto the new table
delete from jobengine.schema_migrations where kind = 'repeatable';
