-- timeline_events is list-partitioned by type (migration 000003): the events of creating and
-- promoting jobs go to timeline_events_intake, every other event to timeline_events_work. Read
-- through the table they are one outbox: one global, strictly increasing sequence, every type
-- accepted, an unknown type refused. Statements naming a partition are as append-only as the
-- table.
begin;
\ir ../_helpers.psql
select plan(15);

select jobengine.set_sealed(false);
create temp table j as select * from jobengine_test.job_in('completed');
create temp table ev as
  select e.sequence, e.type, e.tableoid::regclass::text as part
    from jobengine.timeline_events e where e.subject_id = (select id from j);

select results_eq(
  $$ select type, part from ev order by sequence $$,
  $$ values ('job.created', 'jobengine.timeline_events_intake'), ('job.scheduled', 'jobengine.timeline_events_intake'),
            ('job.started', 'jobengine.timeline_events_work'), ('job.completed', 'jobengine.timeline_events_work') $$,
  'created and scheduled in the intake partition, started and completed in the work partition'
);
select is(
  (select count(*) from (select sequence, lag(sequence) over (order by sequence) as prev from ev) s
    where s.prev is not null and s.sequence <= s.prev),
  0::bigint, 'the job''s events keep one strictly increasing sequence across partitions');

-- a row without a sequence takes the next value of the global sequence (written as the engine
-- writes events outside the jobs triggers: a plain INSERT is refused, below)
select jobengine._engine_write(true);
select lives_ok(
  $$ insert into jobengine.timeline_events (type, tenant_id, data) values ('sealed.egress_blocked', 'default', '{"host":"x"}') $$,
  'an event inserted without a sequence gets one');
select is(
  (select sequence > (select max(sequence) from ev) from jobengine.timeline_events where data ->> 'host' = 'x'),
  true, 'from the same sequence, after the job''s events');
select is(
  (select tableoid::regclass::text from jobengine.timeline_events where data ->> 'host' = 'x'),
  'jobengine.timeline_events_work', 'sealed.egress_blocked goes to the work partition');
select throws_ok(
  $$ insert into jobengine.timeline_events (type, tenant_id) values ('job.teleported', 'default') $$,
  '23514', null, 'an unknown type is refused');
select jobengine._engine_write(false);
select throws_ok(
  $$ insert into jobengine.timeline_events (type, tenant_id, data) values ('job.completed', 'default', '{}') $$,
  'JE008', null, 'a plain INSERT is refused: events are written by the engine');

create temp table before as select * from jobengine.timeline_events;
select throws_ok($$ update jobengine.timeline_events_intake set actor = 'x' $$, 'JE008', null,
  'UPDATE naming the intake partition raises JE008');
select throws_ok($$ delete from jobengine.timeline_events_intake $$, 'JE008', null,
  'DELETE naming the intake partition raises JE008');
select throws_ok($$ truncate jobengine.timeline_events_intake $$, 'JE008', null,
  'TRUNCATE naming the intake partition raises JE008');
select throws_ok($$ update jobengine.timeline_events_work set actor = 'x' where false $$, 'JE008', null,
  'UPDATE naming the work partition raises JE008, even matching no row');
select throws_ok($$ delete from jobengine.timeline_events_work $$, 'JE008', null,
  'DELETE naming the work partition raises JE008');
select throws_ok($$ truncate jobengine.timeline_events_work $$, 'JE008', null,
  'TRUNCATE naming the work partition raises JE008');
select set_eq($$ select * from jobengine.timeline_events $$, $$ select * from before $$,
  'the refused statements left every event as it was');

select is(
  (select array_agg(c.relname::text order by c.relname) from pg_catalog.pg_inherits i
     join pg_catalog.pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'jobengine.timeline_events'::regclass),
  array['timeline_events_intake', 'timeline_events_work'], 'the table has exactly the two partitions');

select * from finish();
rollback;
