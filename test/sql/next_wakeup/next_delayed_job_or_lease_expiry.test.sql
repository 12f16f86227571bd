-- next_wakeup: the sooner of the next delayed scheduled job coming due and the next running
-- lease expiring; null when there is neither. Jobs due at creation are not "delayed".
begin;
\ir ../_helpers.psql
select plan(5);

select is(jobengine.next_wakeup(), null, 'nothing scheduled or running: null');

create temp table due as select * from jobengine_test.job_in('scheduled');
select is(jobengine.next_wakeup(), null, 'a job due at creation does not count');

create temp table later as select * from jobengine_test.new_job(jsonb_build_object('notBefore', now() + interval '10 minutes'));
do $$ begin perform jobengine.schedule_job((select id from later)); end $$;
select is(jobengine.next_wakeup(), now() + interval '10 minutes', 'a delayed scheduled job: its not_before');

create temp table r as select * from jobengine_test.job_in('running');
update jobengine.jobs set lease_expires_at = now() + interval '2 minutes' where id = (select id from r);
select is(jobengine.next_wakeup(), now() + interval '2 minutes', 'a lease expiring sooner wins');

create temp table retry as select * from jobengine_test.job_in('running', '{"retryPolicy": {"backoff": "fixed", "initialDelayMs": 30000, "jitter": 0}}');
do $$ begin perform jobengine.fail_job((select id from retry), (select lease_id from retry), '{}'); end $$;
select is(jobengine.next_wakeup(), now() + interval '30 seconds', 'a retry due in 30 s wins over the lease');

select * from finish();
rollback;
