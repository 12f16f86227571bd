-- fail_job is for the lease holder only: a wrong or expired lease raises JE002, a job that is not
-- running JE001, an unknown id JE004; refusals write nothing and leave the job as it was.
begin;
\ir ../_helpers.psql
select plan(8);

create temp table r as select * from jobengine_test.job_in('running');
create temp table s as select * from jobengine_test.job_in('scheduled');
create temp table c as select * from jobengine_test.job_in('completed');
create temp table x as select * from jobengine_test.job_in('running');
select jobengine_test.expire_lease((select id from x));
create temp table counts as select jobengine_test.table_counts() as c;

select throws_ok(format($$ select jobengine.fail_job(%L, %L, '{}') $$, (select id from r), gen_random_uuid()),
  'JE002', null, 'a wrong lease raises JE002');
select throws_ok(format($$ select jobengine.fail_job(%L, null, '{}') $$, (select id from r)),
  'JE002', null, 'a null lease raises JE002');
select throws_ok(format($$ select jobengine.fail_job(%L, %L, '{}') $$, (select id from x), (select lease_id from x)),
  'JE002', null, 'an expired lease raises JE002');
select throws_ok(format($$ select jobengine.fail_job(%L, %L, '{}') $$, gen_random_uuid(), gen_random_uuid()),
  'JE004', null, 'an unknown id raises JE004');
select throws_ok(format($$ select jobengine.fail_job(%L, %L, '{}') $$, (select id from s), gen_random_uuid()),
  'JE001', null, 'failing a scheduled job raises JE001');
select throws_ok(format($$ select jobengine.fail_job(%L, %L, '{}') $$, (select id from c), (select lease_id from c)),
  'JE001', null, 'failing a completed job raises JE001');
select is(jobengine_test.table_counts(), (select c from counts), 'the refusals wrote nothing');
select results_eq(
  $$ select status::text, attempt, last_error from jobengine.jobs where id = (select id from r) $$,
  $$ values ('running'::text, 1, null::jsonb) $$,
  'the running job is untouched'
);

select * from finish();
rollback;
