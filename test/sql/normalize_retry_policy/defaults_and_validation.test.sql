-- normalize_retry_policy fills in the SPEC defaults
-- { maxRetries 3, backoff exponential, initialDelayMs 1000, maxDelayMs 300000, multiplier 2, jitter 0.1 },
-- lets a top-level maxRetries override policy.maxRetries, accepts the bounds, and raises JE009
-- for every invalid value or unknown field.
begin;
select plan(30);

select is(jobengine.normalize_retry_policy(null),
  '{"maxRetries": 3, "backoff": "exponential", "initialDelayMs": 1000, "maxDelayMs": 300000, "multiplier": 2, "jitter": 0.1}'::jsonb,
  'null: all defaults');
select is(jobengine.normalize_retry_policy('{}'), jobengine.normalize_retry_policy(null), '{}: all defaults');
select is(jobengine.normalize_retry_policy('null'), jobengine.normalize_retry_policy(null), 'JSON null: all defaults');
select is(jobengine.normalize_retry_policy('{"backoff": "linear", "jitter": 0}'),
  '{"maxRetries": 3, "backoff": "linear", "initialDelayMs": 1000, "maxDelayMs": 300000, "multiplier": 2, "jitter": 0}'::jsonb,
  'given fields are kept, the rest filled in');
select is(jobengine.normalize_retry_policy('{"maxRetries": 7}', '2') ->> 'maxRetries', '2', 'p_max_retries overrides policy.maxRetries');
select is(jobengine.normalize_retry_policy('{"maxRetries": 7}', 'null') ->> 'maxRetries', '7', 'a JSON null p_max_retries does not override');
select is(jobengine.normalize_retry_policy(
    '{"maxRetries": 100, "backoff": "fixed", "initialDelayMs": 0, "maxDelayMs": 0, "multiplier": 1, "jitter": 1}'),
  '{"maxRetries": 100, "backoff": "fixed", "initialDelayMs": 0, "maxDelayMs": 0, "multiplier": 1, "jitter": 1}'::jsonb,
  'the upper and lower bounds are accepted');
select is(jobengine.normalize_retry_policy('{"maxRetries": 0}') ->> 'maxRetries', '0', 'maxRetries 0 is accepted');
select is(jobengine.normalize_retry_policy(jobengine.normalize_retry_policy('{"backoff": "linear"}')),
  jobengine.normalize_retry_policy('{"backoff": "linear"}'), 'normalizing twice changes nothing');

select throws_ok($$ select jobengine.normalize_retry_policy('[]') $$, 'JE009', null, 'an array');
select throws_ok($$ select jobengine.normalize_retry_policy('"fast"') $$, 'JE009', null, 'a string');
select throws_ok($$ select jobengine.normalize_retry_policy('{"retries": 3}') $$, 'JE009', null, 'an unknown field');
select throws_ok($$ select jobengine.normalize_retry_policy('{"maxRetries": -1}') $$, 'JE009', null, 'maxRetries -1');
select throws_ok($$ select jobengine.normalize_retry_policy('{"maxRetries": 101}') $$, 'JE009', null, 'maxRetries 101');
select throws_ok($$ select jobengine.normalize_retry_policy('{"maxRetries": 2.5}') $$, 'JE009', null, 'maxRetries 2.5');
select throws_ok($$ select jobengine.normalize_retry_policy('{"maxRetries": "3"}') $$, 'JE009', null, 'maxRetries "3"');
select throws_ok($$ select jobengine.normalize_retry_policy('{}', '-2') $$, 'JE009', null, 'p_max_retries -2');
select throws_ok($$ select jobengine.normalize_retry_policy('{"backoff": "random"}') $$, 'JE009', null, 'backoff "random"');
select throws_ok($$ select jobengine.normalize_retry_policy('{"backoff": null}') $$, 'JE009', null, 'backoff null');
select throws_ok($$ select jobengine.normalize_retry_policy('{"backoff": "Fixed"}') $$, 'JE009', null, 'backoff is case-sensitive');
select throws_ok($$ select jobengine.normalize_retry_policy('{"initialDelayMs": -1}') $$, 'JE009', null, 'initialDelayMs -1');
select throws_ok($$ select jobengine.normalize_retry_policy('{"initialDelayMs": "1000"}') $$, 'JE009', null, 'initialDelayMs "1000"');
select throws_ok($$ select jobengine.normalize_retry_policy('{"initialDelayMs": null}') $$, 'JE009', null, 'initialDelayMs null');
select throws_ok($$ select jobengine.normalize_retry_policy('{"maxDelayMs": -1}') $$, 'JE009', null, 'maxDelayMs -1');
select throws_ok($$ select jobengine.normalize_retry_policy('{"multiplier": 0.5}') $$, 'JE009', null, 'multiplier 0.5');
select throws_ok($$ select jobengine.normalize_retry_policy('{"multiplier": 101}') $$, 'JE009', null, 'multiplier 101');
select throws_ok($$ select jobengine.normalize_retry_policy('{"jitter": -0.1}') $$, 'JE009', null, 'jitter -0.1');
select throws_ok($$ select jobengine.normalize_retry_policy('{"jitter": 1.1}') $$, 'JE009', null, 'jitter 1.1');
select throws_ok($$ select jobengine.normalize_retry_policy('{"jitter": true}') $$, 'JE009', null, 'jitter true');
select throws_ok($$ select jobengine.retry_delay('{"backoff": "random"}', 1) $$, 'JE009', null, 'retry_delay validates its policy too');

select * from finish();
rollback;
