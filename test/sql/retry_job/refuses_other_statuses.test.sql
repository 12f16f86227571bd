-- retry_job is the way back from failed only: from any other status it raises JE001 and writes
-- nothing (SPEC section 4: "manual, from failed"); an unknown id raises JE004.
begin;
\ir ../_helpers.psql
select plan(8);

create temp table p as select * from jobengine_test.job_in('pending');
create temp table s as select * from jobengine_test.job_in('scheduled');
create temp table r as select * from jobengine_test.job_in('running');
create temp table c as select * from jobengine_test.job_in('completed');
create temp table x as select * from jobengine_test.job_in('cancelled');
create temp table counts as select jobengine_test.table_counts() as c;

select throws_ok(format($$ select jobengine.retry_job(%L) $$, (select id from c)), 'JE001', null, 'from completed: JE001');
select throws_ok(format($$ select jobengine.retry_job(%L) $$, (select id from x)), 'JE001', null, 'from cancelled: JE001');
select throws_ok(format($$ select jobengine.retry_job(%L) $$, (select id from r)), 'JE001', null, 'from running: JE001');
select throws_ok(format($$ select jobengine.retry_job(%L) $$, (select id from s)), 'JE001', null, 'from scheduled: JE001');
select throws_ok(format($$ select jobengine.retry_job(%L) $$, (select id from p)), 'JE001', null, 'from pending: JE001 (a retry is not a schedule)');
select throws_ok(format($$ select jobengine.retry_job(%L) $$, gen_random_uuid()), 'JE004', null, 'unknown id: JE004');
select is(jobengine_test.table_counts(), (select c from counts), 'the refusals wrote nothing');
select is((select status::text from jobengine.jobs where id = (select id from p)), 'pending', 'the pending job is still pending');

select * from finish();
rollback;
