-- A 1,000-node chain (job i depends on job i-1) is created in one call; cancelling the head
-- cancels all 999 pending dependents, transitively, with reason dependency_cancelled, each with
-- exactly one new history row and one job.cancelled event.
begin;
\ir ../_helpers.psql
select plan(7);

create temp table chain as
  select w.*, row_number() over () as n
    from jobengine.create_workflow(
      (select jsonb_agg(case when i = 1 then jsonb_build_object('ref', 'n1', 'type', 'chain')
                             else jsonb_build_object('ref', 'n' || i, 'type', 'chain', 'dependsOn', jsonb_build_array('n' || (i - 1))) end
                        order by i)
         from generate_series(1, 1000) i)) w;

select is((select count(*)::integer from chain), 1000, 'the workflow created 1,000 jobs');
select is((select count(*)::integer from jobengine.job_dependencies where job_id in (select id from chain)), 999, 'with 999 edges');
select results_eq(
  $$ select pending_dependencies, count(*)::integer from chain group by 1 order by 1 $$,
  $$ values (0, 1), (1, 999) $$,
  'the head has no pending dependency, every other job one'
);

create temp table cancelled as select * from jobengine.cancel_job((select id from chain where n = 1), 'operator_request', 'olga');

select results_eq(
  $$ select status::text, status_reason, status_actor from cancelled $$,
  $$ values ('cancelled'::text, 'operator_request'::text, 'olga'::text) $$,
  'the head is cancelled with the given reason and actor'
);
select results_eq(
  $$ select j.status::text, j.status_reason, j.status_actor, count(*)::integer
       from jobengine.jobs j join chain c on c.id = j.id where c.n > 1 group by 1, 2, 3 $$,
  $$ values ('cancelled'::text, 'dependency_cancelled'::text, 'scheduler'::text, 999) $$,
  'all 999 dependents are cancelled with reason dependency_cancelled'
);
select results_eq(
  $$ select h.from_status::text, h.to_status::text, h.reason, count(*)::integer
       from jobengine.job_history h join chain c on c.id = h.job_id where h.seq = 2 and c.n > 1 group by 1, 2, 3 $$,
  $$ values ('pending'::text, 'cancelled'::text, 'dependency_cancelled'::text, 999) $$,
  'each dependent has one pending -> cancelled history row'
);
select is(
  (select count(*)::integer from jobengine.timeline_events e join chain c on c.id = e.subject_id where e.type = 'job.cancelled'),
  1000, 'one job.cancelled event per job'
);

select * from finish();
rollback;
