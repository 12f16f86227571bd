-- retry_delay(policy, n) with jitter 0: fixed = initial; linear = initial * n; exponential =
-- initial * multiplier^(n-1); capped at maxDelayMs. n is 1-based; n < 1 or null raises JE009.
begin;
select plan(10);

create function pg_temp.ms(p_policy jsonb, p_n integer) returns numeric language sql as $$
  select extract(epoch from jobengine.retry_delay(p_policy, p_n)) * 1000
$$;
create function pg_temp.series(p_policy jsonb) returns numeric[] language sql as $$
  select array_agg(pg_temp.ms(p_policy, n) order by n) from generate_series(1, 5) n
$$;

select is(pg_temp.series('{"backoff": "fixed", "initialDelayMs": 1000, "jitter": 0}'),
  array[1000, 1000, 1000, 1000, 1000]::numeric[], 'fixed: 1000 ms for n = 1..5');
select is(pg_temp.series('{"backoff": "linear", "initialDelayMs": 1000, "jitter": 0}'),
  array[1000, 2000, 3000, 4000, 5000]::numeric[], 'linear: initial * n');
select is(pg_temp.series('{"backoff": "exponential", "initialDelayMs": 1000, "jitter": 0}'),
  array[1000, 2000, 4000, 8000, 16000]::numeric[], 'exponential (default multiplier 2): initial * 2^(n-1)');
select is(pg_temp.series('{"backoff": "exponential", "initialDelayMs": 500, "multiplier": 3, "jitter": 0}'),
  array[500, 1500, 4500, 13500, 40500]::numeric[], 'exponential, multiplier 3: 500 * 3^(n-1)');
select is(pg_temp.series('{"backoff": "exponential", "initialDelayMs": 1000, "maxDelayMs": 5000, "jitter": 0}'),
  array[1000, 2000, 4000, 5000, 5000]::numeric[], 'exponential capped at maxDelayMs 5000');
select is(pg_temp.series('{"backoff": "linear", "initialDelayMs": 1000, "maxDelayMs": 2500, "jitter": 0}'),
  array[1000, 2000, 2500, 2500, 2500]::numeric[], 'linear capped at maxDelayMs 2500');
select is(pg_temp.series('{"backoff": "fixed", "initialDelayMs": 0, "jitter": 0}'),
  array[0, 0, 0, 0, 0]::numeric[], 'initialDelayMs 0: no delay');
select is(jobengine.retry_delay('{"jitter": 0}', 20), interval '300 seconds',
  'the defaults (exponential, 1000 ms, x2, max 300000 ms): retry 20 is capped at 5 minutes');

select throws_ok($$ select jobengine.retry_delay('{"jitter": 0}', 0) $$, 'JE009', null, 'n = 0 raises JE009');
select throws_ok($$ select jobengine.retry_delay('{"jitter": 0}', null) $$, 'JE009', null, 'n null raises JE009');

select * from finish();
rollback;
