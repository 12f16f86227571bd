-- retry_delay caps the delay at maxDelayMs for any n: a large retry number with a large
-- multiplier must not overflow double precision (the comment in retry_base_delay_ms promises
-- "huge n cannot overflow"; the TypeScript twin gives Infinity, capped to maxDelayMs).
begin;
select plan(3);

-- the delay as text, or 'error <SQLSTATE>' (so a failure does not abort the file)
create function pg_temp.delay(p_policy jsonb, p_n integer) returns text language plpgsql as $$
begin
  return jobengine.retry_delay(p_policy, p_n)::text;
exception when others then
  return 'error ' || sqlstate;
end $$;

select is(
  pg_temp.delay('{"backoff": "exponential", "multiplier": 10, "jitter": 0}', 400),
  '00:05:00', 'multiplier 10, n = 400: capped at 5 minutes'
);
select is(
  pg_temp.delay('{"backoff": "exponential", "multiplier": 3, "jitter": 0}', 1000000),
  '00:05:00', 'multiplier 3, n = 1,000,000: capped at 5 minutes'
);
select is(
  pg_temp.delay('{"backoff": "exponential", "multiplier": 100, "jitter": 0}', 101),
  '00:05:00', 'multiplier 100, n = 101 (the largest n a job can reach): capped at 5 minutes'
);

select * from finish();
rollback;
