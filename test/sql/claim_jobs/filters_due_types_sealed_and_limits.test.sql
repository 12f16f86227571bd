-- claim_jobs only claims what is due (not_before <= now()), of the given types (all when null
-- or empty), and no requiresNetwork job while sealed; p_limit, p_lease_seconds and p_worker are
-- validated (JE009). claim_jobs_for narrows to one tenant.
begin;
\ir ../_helpers.psql
select plan(16);

select throws_ok($$ select * from jobengine.claim_jobs('w', null, 0, 30) $$, 'JE009', null, 'p_limit 0 raises JE009');
select throws_ok($$ select * from jobengine.claim_jobs('w', null, 1001, 30) $$, 'JE009', null, 'p_limit 1001 raises JE009');
select throws_ok($$ select * from jobengine.claim_jobs('w', null, null, 30) $$, 'JE009', null, 'p_limit null raises JE009');
select throws_ok($$ select * from jobengine.claim_jobs('w', null, 1, 0) $$, 'JE009', null, 'p_lease_seconds 0 raises JE009');
select throws_ok($$ select * from jobengine.claim_jobs('w', null, 1, 86401) $$, 'JE009', null, 'p_lease_seconds above a day raises JE009');
select throws_ok($$ select * from jobengine.claim_jobs('', null, 1, 30) $$, 'JE009', null, 'an empty worker id raises JE009');
select throws_ok($$ select * from jobengine.claim_jobs(null, null, 1, 30) $$, 'JE009', null, 'a null worker id raises JE009');

create temp table future as select * from jobengine_test.new_job('{"notBefore": "2999-01-01T00:00:00Z"}', 'due.test');
create temp table past as select * from jobengine_test.new_job('{"notBefore": "2000-01-01T00:00:00Z", "priority": -5}', 'due.test');
do $$ begin perform jobengine.schedule_job((select id from future)); perform jobengine.schedule_job((select id from past)); end $$;
select is(
  (select array_agg(id) from jobengine.claim_jobs('w', array['due.test'], 10, 30)),
  array[(select id from past)], 'only the due job is claimed, whatever the priorities'
);
-- raw UPDATE (no status change): the future job comes due
update jobengine.jobs set not_before = now() where id = (select id from future);
select is(
  (select array_agg(id) from jobengine.claim_jobs('w', array['due.test'], 10, 30)),
  array[(select id from future)], 'once due, it is claimed'
);

create temp table a as select * from jobengine_test.job_in('scheduled');
create temp table b as select * from jobengine_test.job_in('scheduled');
create temp table c as select * from jobengine_test.job_in('scheduled');
select is(
  (select array_agg(id) from jobengine.claim_jobs('w', array['no.such.type', (select type from b)], 10, 30)),
  array[(select id from b)], 'types filter: only jobs of the listed types'
);
select is(
  (select count(*)::integer from jobengine.claim_jobs('w', '{}', 10, 30)),
  2, 'an empty types array claims any type'
);

create temp table n1 as select * from jobengine_test.job_in('scheduled', '{"requiresNetwork": true}');
create temp table n2 as select * from jobengine_test.job_in('scheduled');
do $$ begin perform jobengine.set_sealed(true); end $$;
select is(
  (select array_agg(id) from jobengine.claim_jobs('w', null, 10, 30)),
  array[(select id from n2)], 'sealed: a scheduled requiresNetwork job is not claimed, the other one is'
);
select is((select status::text from jobengine.jobs where id = (select id from n1)), 'scheduled', 'the network job stays scheduled');
do $$ begin perform jobengine.set_sealed(false); end $$;
select is(
  (select array_agg(id) from jobengine.claim_jobs('w', null, 10, 30)),
  array[(select id from n1)], 'unsealed: it is claimed'
);

create temp table t1 as select * from jobengine_test.job_in('scheduled', '{"tenantId": "t1"}');
create temp table t2 as select * from jobengine_test.job_in('scheduled', '{"tenantId": "t2"}');
select is(
  (select array_agg(id) from jobengine.claim_jobs_for('w', null, 10, 30, 't2')),
  array[(select id from t2)], 'claim_jobs_for claims only the given tenant'
);
select is(
  (select array_agg(id) from jobengine.claim_jobs('w', null, 10, 30)),
  array[(select id from t1)], 'claim_jobs claims any tenant'
);

select * from finish();
rollback;
