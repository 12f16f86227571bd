-- claim_jobs takes due scheduled jobs, highest priority first, then oldest; each claimed job
-- gets a fresh lease (lease_id, lease_owner, lease_expires_at = now() + p_lease_seconds),
-- started_at, attempt + 1, and one scheduled -> running history row (reason claimed).
begin;
\ir ../_helpers.psql
select plan(11);

create temp table jobs_in (label text, id uuid);
do $$
declare
  v_spec record;
  v_job jobengine.jobs;
begin
  for v_spec in select * from (values
      ('low-old', 0, 5), ('high-new', 10, 1), ('mid-old', 5, 4), ('high-old', 10, 3), ('mid-new', 5, 2)
    ) s(label, priority, age_minutes)
  loop
    v_job := jobengine.create_job('claim.order', '{}', jsonb_build_object('priority', v_spec.priority));
    update jobengine.jobs set created_at = now() - make_interval(mins => v_spec.age_minutes) where id = v_job.id;
    perform jobengine.schedule_job(v_job.id);
    insert into jobs_in values (v_spec.label, v_job.id);
  end loop;
end $$;

create temp table claims (n serial, label text, job jobengine.jobs);
do $$
declare v jobengine.jobs;
begin
  for i in 1 .. 5 loop
    select * into v from jobengine.claim_jobs('worker-' || i, array['claim.order'], 1, 90);
    insert into claims (label, job) select label, v from jobs_in where id = v.id;
  end loop;
end $$;

select is(
  (select string_agg(label, ', ' order by n) from claims),
  'high-old, high-new, mid-old, mid-new, low-old',
  'one at a time: priority desc, then created_at'
);
select is(
  (select count(*)::integer from jobengine.claim_jobs('late', array['claim.order'], 10, 90)),
  0, 'nothing is left to claim'
);

create temp table first as select (job).* from claims where n = 1;
select results_eq(
  $$ select status::text, attempt, lease_owner, lease_expires_at = now() + interval '90 seconds', started_at = now(), lease_id is not null from first $$,
  $$ values ('running'::text, 1, 'worker-1'::text, true, true, true) $$,
  'the claimed job is running, attempt 1, leased to the worker for 90 seconds from now, started now'
);
select is((select count(distinct (job).lease_id)::integer from claims), 5, 'every claim gets its own lease id');
select results_eq(
  $$ select from_status::text, to_status::text, attempt, reason, actor, details ->> 'leaseOwner'
       from jobengine.job_history where job_id = (select id from first) and seq = 3 $$,
  $$ values ('scheduled'::text, 'running'::text, 1, 'claimed'::text, 'worker-1'::text, 'worker-1'::text) $$,
  'history: scheduled -> running, attempt 1, reason claimed, by the worker'
);
select is(jobengine_test.event_types((select id from first)), 'job.created, job.scheduled, job.started', 'one job.started event');

-- a batch in one call, respecting p_limit and the same order
create temp table batch_ids (label text, id uuid);
do $$
declare v jobengine.jobs; i integer;
begin
  for i in 1 .. 5 loop
    v := jobengine.create_job('claim.batch', '{}', jsonb_build_object('priority', i));
    perform jobengine.schedule_job(v.id);
    insert into batch_ids values ('p' || i, v.id);
  end loop;
end $$;
create temp table batch as select * from jobengine.claim_jobs('batcher', array['claim.batch'], 3, 30);
select set_eq(
  $$ select b.label from batch join batch_ids b using (id) $$,
  $$ values ('p5'), ('p4'), ('p3') $$,
  'p_limit 3 claims the three highest priorities in one call'
);
select is((select count(*)::integer from jobengine.jobs where type = 'claim.batch' and status = 'scheduled'), 2, 'the other two stay scheduled');
select is((select count(*)::integer from jobengine.claim_jobs('batcher', array['claim.batch'], 1000, 30)), 2, 'p_limit larger than the ready set claims what is there');

-- a second attempt counts up
create temp table again as select * from jobengine_test.job_in('running', '{"retryPolicy": {"initialDelayMs": 0, "jitter": 0}}');
do $$ begin perform jobengine.fail_job((select id from again), (select lease_id from again), '{"code": "x"}'); end $$;
create temp table reclaimed as select * from jobengine_test.claim((select id from again), 'worker-2');
select results_eq(
  $$ select attempt, lease_owner, lease_id <> (select lease_id from again) from reclaimed $$,
  $$ values (2, 'worker-2'::text, true) $$,
  'claiming a retried job makes attempt 2 with a new lease'
);
select is(
  (select count(*)::integer from jobengine.job_history where job_id = (select id from again) and to_status = 'running'),
  2, 'each claim writes one running history row'
);

select * from finish();
rollback;
