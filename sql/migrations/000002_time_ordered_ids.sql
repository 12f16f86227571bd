-- jobengine schema, version 2: time-ordered job ids (UUID version 7).
--
-- Random (version 4) ids scatter every write to the jobs primary key, job_history's primary key
-- and timeline_events' subject index over the whole of each index: with a large backlog each
-- transition touches cold leaf pages (and, after a checkpoint, logs them whole). Ids that grow
-- with creation time keep the jobs that are being worked on, and their history, on a few hot
-- pages. The first 48 bits are the Unix time in milliseconds, then the version (7), the variant
-- and random bits, as RFC 9562 lays out; PostgreSQL 18's uuidv7() makes the same shape.

create function jobengine.uuid_v7()
returns uuid
language sql
volatile
as $$
  select pg_catalog.encode(
    pg_catalog.set_bit(pg_catalog.set_bit(
      overlay(pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
        placing substring(pg_catalog.int8send(
          pg_catalog.floor(extract(epoch from pg_catalog.clock_timestamp()) * 1000)::bigint) from 3)
        from 1 for 6),
      52, 1), 53, 1),
    'hex')::uuid;
$$;

alter table jobengine.jobs alter column id set default jobengine.uuid_v7();
