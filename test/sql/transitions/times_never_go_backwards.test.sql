-- A transition's time is the transaction's now(), unless the job's last change is later: a
-- scheduler tick (or any transaction) that started before the job's create or previous
-- transition committed must not record the next step before it. Here the later last change is
-- made by hand (updated_at an hour ahead of this transaction's now()).
begin;
\ir ../_helpers.psql
select plan(8);

create temp table j as select * from jobengine_test.new_job();
update jobengine.jobs set updated_at = now() + interval '1 hour' where id = (select id from j);

select is((jobengine.schedule_job((select id from j))).scheduled_at, now() + interval '1 hour',
  'scheduled_at is not before the job''s last change');
select is((select occurred_at from jobengine.job_history where job_id = (select id from j) and to_status = 'scheduled'),
  now() + interval '1 hour', 'nor is the history row''s occurred_at');
select is((select occurred_at from jobengine.timeline_events where subject_id = (select id from j) and type = 'job.scheduled'),
  now() + interval '1 hour', 'nor is the event''s occurredAt');

update jobengine.jobs set updated_at = now() + interval '2 hours' where id = (select id from j);
create temp table c as select * from jobengine_test.claim((select id from j));
select is((select started_at from c), now() + interval '2 hours',
  'a claim (a bookkept statement) is not recorded before the promotion it follows');
select is((select occurred_at from jobengine.job_history where job_id = (select id from j) and to_status = 'running'),
  now() + interval '2 hours', 'nor is its history row');

update jobengine.jobs set updated_at = now() + interval '3 hours' where id = (select id from j);
select is((jobengine.cancel_job((select id from j), 'stop', 'op')).cancelled_at, now() + interval '3 hours',
  'the same for a cancellation');

-- the ordinary case: the job's last change is in the past, the transition happens now()
create temp table k as select * from jobengine_test.new_job();
select is((jobengine.schedule_job((select id from k))).scheduled_at, now(), 'otherwise a transition happens at now()');
select ok(
  (select bool_and(h.occurred_at >= coalesce(p.occurred_at, h.occurred_at))
     from jobengine.job_history h
     left join jobengine.job_history p on p.job_id = h.job_id and p.seq = h.seq - 1
    where h.job_id in ((select id from j), (select id from k))),
  'each history row is at or after the one before it'
);

select * from finish();
rollback;
