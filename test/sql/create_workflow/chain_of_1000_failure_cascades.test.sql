-- A 1,000-node chain whose head fails terminally: every transitive dependent is cancelled with
-- reason dependency_failed (SPEC 3: the reason names how the root dependency ended).
begin;
\ir ../_helpers.psql
select plan(5);

create temp table chain as
  select w.*, row_number() over () as n
    from jobengine.create_workflow(
      (select jsonb_agg(case when i = 1 then jsonb_build_object('ref', 'n1', 'type', 'chain.head', 'maxRetries', 0)
                             else jsonb_build_object('ref', 'n' || i, 'type', 'chain', 'dependsOn', jsonb_build_array('n' || (i - 1))) end
                        order by i)
         from generate_series(1, 1000) i)) w;

do $$
declare v jobengine.jobs;
begin
  perform jobengine.schedule_job((select id from chain where n = 1));
  v := jobengine_test.claim((select id from chain where n = 1));
  -- maxRetries 0: the first failure is terminal
  perform jobengine.fail_job(v.id, v.lease_id, '{"code": "boom"}');
end $$;

select results_eq(
  $$ select status::text, terminal, last_error ->> 'code' from jobengine.jobs where id = (select id from chain where n = 1) $$,
  $$ values ('failed'::text, true, 'boom'::text) $$,
  'the head failed terminally (maxRetries 0)'
);
select results_eq(
  $$ select status::text, status_reason from jobengine.jobs where id = (select id from chain where n = 2) $$,
  $$ values ('cancelled'::text, 'dependency_failed'::text) $$,
  'the direct dependent is cancelled with dependency_failed'
);
select results_eq(
  $$ select j.status::text, j.status_reason, count(*)::integer
       from jobengine.jobs j join chain c on c.id = j.id where c.n > 2 group by 1, 2 $$,
  $$ values ('cancelled'::text, 'dependency_failed'::text, 998) $$,
  'the 998 beyond it are cancelled with dependency_failed too'
);
select is(
  (select count(*)::integer from jobengine.job_history h join chain c on c.id = h.job_id where c.n > 1),
  1998, 'each dependent has exactly two history rows: created and cancelled'
);
select is(
  (select count(*)::integer from jobengine.timeline_events e join chain c on c.id = e.subject_id where c.n > 1 and e.type = 'job.cancelled'),
  999, 'one job.cancelled event per dependent'
);

select * from finish();
rollback;
