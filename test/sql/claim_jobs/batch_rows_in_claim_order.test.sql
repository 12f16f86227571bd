-- One claim of several jobs returns them in the order it chose them: highest priority first,
-- then oldest, then id. Jobs created in one transaction share created_at; their ids carry
-- sub-millisecond time, so they are claimed in creation order (schema version 2's ids had 12
-- random bits there: jobs made within one millisecond came out in random order). The same
-- holds for a workflow's jobs, with dependencies (its graph path) or without.
begin;
\ir ../_helpers.psql
select plan(6);

create temp table made (n serial, label text, id uuid);
do $$
declare
  v_spec record;
  v_job jobengine.jobs;
begin
  -- one transaction: every created_at is the same now()
  for v_spec in select * from (values
      ('a', 0), ('b', 5), ('c', 0), ('d', 5), ('e', -1), ('f', 0), ('g', 5), ('h', 0)
    ) s(label, priority)
  loop
    v_job := jobengine.create_job('claim.batch', '{}', jsonb_build_object('priority', v_spec.priority));
    insert into made (label, id) values (v_spec.label, v_job.id);
  end loop;
end $$;
select jobengine.schedule_ready();

select is((select count(distinct j.created_at)::integer from jobengine.jobs j join made m on m.id = j.id), 1,
  'the jobs share created_at (one transaction)');
select is(
  (select string_agg(m.label, '' order by j.id) from jobengine.jobs j join made m on m.id = j.id),
  'abcdefgh', 'their ids follow their creation order');

create temp table batch as
  select row_number() over () as n, c.* from jobengine.claim_jobs('w-batch', array['claim.batch'], 5, 60) c;
select is(
  (select string_agg(m.label, '' order by b.n) from batch b join made m on m.id = b.id),
  'bdgac', 'a claim of 5 returns them by priority, then creation order');
select is(
  (select string_agg(m.label, '' order by c.ordinality)
     from rows from (jobengine.claim_jobs('w-batch', array['claim.batch'], 10, 60)) with ordinality c
     join made m on m.id = c.id),
  'fhe', 'the next claim takes the rest, in the same order');

-- workflows: without dependencies (plain path) and with one (graph path), jobs in array order
select is(
  (select string_agg(w.payload ->> 'i', ',' order by w.id) from jobengine.create_workflow(
     (select jsonb_agg(jsonb_build_object('ref', 'r' || i, 'type', 'claim.wf', 'payload', jsonb_build_object('i', i))
               order by i) from generate_series(1, 40) i)) w),
  (select string_agg(i::text, ',' order by i) from generate_series(1, 40) i),
  'a workflow without dependencies: ids in array order');
select is(
  (select string_agg(w.payload ->> 'i', ',' order by w.id) from jobengine.create_workflow(
     (select jsonb_agg(jsonb_build_object('ref', 'r' || i, 'type', 'claim.wf', 'payload', jsonb_build_object('i', i))
                       || case when i = 40 then jsonb_build_object('dependsOn', jsonb_build_array('r1')) else '{}' end
               order by i) from generate_series(1, 40) i)) w),
  (select string_agg(i::text, ',' order by i) from generate_series(1, 40) i),
  'a workflow with dependencies: ids in array order');

select * from finish();
rollback;
