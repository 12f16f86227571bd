-- The backoff of an automatic retry follows the job's policy and the number of the failure:
-- exponential, 1000 ms, multiplier 2, jitter 0: retry n is due now() + 1 s, 2 s, 4 s, 8 s, then
-- capped at maxDelayMs (10 s).
begin;
\ir ../_helpers.psql
select plan(2);

create temp table j as select * from jobengine_test.job_in('scheduled',
  '{"maxRetries": 5, "retryPolicy": {"backoff": "exponential", "initialDelayMs": 1000, "multiplier": 2, "maxDelayMs": 10000, "jitter": 0}}');
create temp table delays (n integer, delay interval, status text);
do $$
declare v jobengine.jobs;
begin
  for i in 1 .. 6 loop
    perform jobengine_test.make_due((select id from j));
    v := jobengine_test.claim((select id from j));
    v := jobengine.fail_job(v.id, v.lease_id, '{"code": "x"}');
    insert into delays values (i, case when v.status = 'scheduled' then v.not_before - now() end, v.status);
  end loop;
end $$;

select results_eq(
  $$ select n, delay from delays where n <= 5 order by n $$,
  $$ values (1, interval '1 second'), (2, interval '2 seconds'), (3, interval '4 seconds'), (4, interval '8 seconds'), (5, interval '10 seconds') $$,
  'retries 1-5 are due after 1, 2, 4, 8 and (capped) 10 seconds'
);
select is((select status from delays where n = 6), 'failed', 'the 6th failure (maxRetries 5) is terminal');

select * from finish();
rollback;
