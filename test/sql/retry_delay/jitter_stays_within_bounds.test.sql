-- retry_delay spreads the delay uniformly within ± jitter * delay: over 2,000 samples every value
-- stays within the bounds, the values actually spread towards both ends, and their mean is the
-- base delay.
begin;
select plan(7);

create temp table samples as
  select extract(epoch from jobengine.retry_delay('{"backoff": "fixed", "initialDelayMs": 1000, "jitter": 0.5}', 1)) * 1000 as ms
    from generate_series(1, 2000);

select ok((select min(ms) >= 500 and max(ms) <= 1500 from samples), 'jitter 0.5 on 1000 ms: every sample within [500, 1500]');
select ok((select min(ms) < 600 from samples), 'samples reach towards the lower bound (min < 600)');
select ok((select max(ms) > 1400 from samples), 'samples reach towards the upper bound (max > 1400)');
select ok((select avg(ms) between 950 and 1050 from samples), 'the mean is about the base delay');
select ok(
  (select count(distinct ms) > 500 from samples), 'the samples are spread, not a few fixed values'
);

create temp table exp_samples as
  select n, extract(epoch from jobengine.retry_delay('{"backoff": "exponential", "initialDelayMs": 1000, "maxDelayMs": 10000, "jitter": 0.2}', n)) * 1000 as ms
    from generate_series(1, 6) n, generate_series(1, 300);
select is_empty(
  $$ select n from exp_samples group by n
      having min(ms) < least(1000 * 2 ^ (n - 1), 10000) * 0.8 or max(ms) > least(1000 * 2 ^ (n - 1), 10000) * 1.2 $$,
  'exponential with jitter 0.2: every sample within ± 20 % of the capped base delay'
);
select ok(
  (select min(ms) >= 900 and max(ms) <= 1100 from (
     select extract(epoch from jobengine.retry_delay('{"backoff": "fixed"}', 1)) * 1000 as ms from generate_series(1, 500)) s),
  'the default jitter 0.1: within ± 10 %'
);

select * from finish();
rollback;
