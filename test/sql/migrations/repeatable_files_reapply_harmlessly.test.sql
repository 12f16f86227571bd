-- The template database is built by the migration runner (scripts/migrate.ts), which records
-- every file in jobengine.schema_migrations. Re-running the repeatable files (all `create or
-- replace`, the transition rows replaced) is harmless: same functions, same triggers, same
-- pairs, same behaviour (one history row per transition, not two).
begin;
\ir ../_helpers.psql
select plan(11);

select ok(
  exists (select from jobengine.schema_migrations where version = '000001' and kind = 'versioned'
           and name = '000001_schema.sql' and checksum ~ '^[0-9a-f]{64}$'),
  'schema_migrations records the versioned migration 000001 with a SHA-256 checksum'
);
select ok(
  (select count(*) = 5 from jobengine.schema_migrations
    where kind = 'repeatable' and version in ('R__000_core', 'R__010_job_transitions', 'R__020_triggers', 'R__030_lifecycle', 'R__900_record_versioned_files')),
  'schema_migrations records each repeatable file'
);

create temp table functions_before as
  select p.oid, pg_catalog.pg_get_functiondef(p.oid) as def
    from pg_catalog.pg_proc p where p.pronamespace = 'jobengine'::regnamespace;
create temp table triggers_before as
  select t.tgrelid::regclass::text as tbl, t.tgname, pg_catalog.pg_get_triggerdef(t.oid) as def
    from pg_catalog.pg_trigger t join pg_catalog.pg_class c on c.oid = t.tgrelid
   where c.relnamespace = 'jobengine'::regnamespace and not t.tgisinternal;
create temp table pairs_before as select * from jobengine.job_transitions;
create temp table bookkeeping_before as select * from jobengine.schema_migrations;

-- apply every repeatable file again, twice, in order (paths relative to this file)
\ir ../../../sql/repeatable/000_core.sql
\ir ../../../sql/repeatable/010_job_transitions.sql
\ir ../../../sql/repeatable/020_triggers.sql
\ir ../../../sql/repeatable/030_lifecycle.sql
\ir ../../../sql/repeatable/900_record_versioned_files.sql
\ir ../../../sql/repeatable/000_core.sql
\ir ../../../sql/repeatable/010_job_transitions.sql
\ir ../../../sql/repeatable/020_triggers.sql
\ir ../../../sql/repeatable/030_lifecycle.sql
\ir ../../../sql/repeatable/900_record_versioned_files.sql

select set_eq(
  $$ select p.oid, pg_catalog.pg_get_functiondef(p.oid) from pg_catalog.pg_proc p where p.pronamespace = 'jobengine'::regnamespace $$,
  $$ select oid, def from functions_before $$,
  'the same functions, replaced in place (same oids, same definitions)'
);
select set_eq(
  $$ select t.tgrelid::regclass::text, t.tgname, pg_catalog.pg_get_triggerdef(t.oid)
       from pg_catalog.pg_trigger t join pg_catalog.pg_class c on c.oid = t.tgrelid
      where c.relnamespace = 'jobengine'::regnamespace and not t.tgisinternal $$,
  $$ select tbl, tgname, def from triggers_before $$,
  'the same triggers, none duplicated'
);
select set_eq(
  $$ select from_status, to_status from jobengine.job_transitions $$,
  $$ select from_status, to_status from pairs_before $$,
  'the same transition pairs'
);
select is((select count(*)::integer from jobengine.job_transitions), 8, 'still eight pairs, none duplicated');
select set_eq(
  $$ select * from jobengine.schema_migrations $$,
  $$ select * from bookkeeping_before $$,
  'the runner''s bookkeeping rows are left as they were'
);

-- behaviour after the re-run
create temp table j as select * from jobengine_test.job_in('completed');
select is(
  jobengine_test.transitions((select id from j)),
  '(new)->pending, pending->scheduled, scheduled->running, running->completed',
  'a lifecycle still writes exactly one history row per transition'
);
select is(
  jobengine_test.event_types((select id from j)),
  'job.created, job.scheduled, job.started, job.completed',
  'and exactly one event per transition'
);
select throws_ok(
  format($$ update jobengine.jobs set status = 'running' where id = %L $$, (select id from j)),
  'JE001', null, 'a raw completed -> running is still refused with JE001'
);
select throws_ok(
  $$ delete from jobengine.job_history $$,
  'JE008', null, 'job_history is still append-only'
);

select * from finish();
rollback;
