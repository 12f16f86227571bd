-- schedule_ready promotes pending jobs whose dependencies are all completed (reason scheduler,
-- actor scheduler), oldest first up to p_limit, and returns how many; it leaves everything else
-- alone. JE009 for a bad limit.
begin;
\ir ../_helpers.psql
select plan(10);

create temp table free1 as select * from jobengine_test.new_job();
create temp table free2 as select * from jobengine_test.new_job();
create temp table free3 as select * from jobengine_test.new_job();
-- distinct ages (now() is fixed within the transaction): free3 oldest, then free1, then free2
update jobengine.jobs set created_at = now() - interval '3 minutes' where id = (select id from free3);
update jobengine.jobs set created_at = now() - interval '2 minutes' where id = (select id from free1);
update jobengine.jobs set created_at = now() - interval '1 minute' where id = (select id from free2);
create temp table dep as select * from jobengine_test.job_in('running');
create temp table waiting as select * from jobengine_test.new_job(jsonb_build_object('dependsOn', jsonb_build_array((select id from dep))));
create temp table other as select * from jobengine_test.job_in('scheduled');
create temp table future as select * from jobengine_test.new_job('{"notBefore": "2999-01-01T00:00:00Z"}');

select throws_ok($$ select jobengine.schedule_ready(0) $$, 'JE009', null, 'p_limit 0 raises JE009');
select throws_ok($$ select jobengine.schedule_ready(null) $$, 'JE009', null, 'p_limit null raises JE009');

select is(jobengine.schedule_ready(2), 2, 'schedule_ready(2) promotes two jobs');
select results_eq(
  $$ select status::text from jobengine.jobs where id in (select id from free3 union all select id from free1 union all select id from free2)
      order by created_at $$,
  $$ values ('scheduled'::text), ('scheduled'), ('pending') $$,
  'the two oldest eligible jobs'
);
select is(jobengine.schedule_ready(), 2, 'the next call promotes the rest: the third job and the delayed one');
select results_eq(
  $$ select status::text, status_reason, status_actor from jobengine.jobs where id = (select id from free2) $$,
  $$ values ('scheduled'::text, 'scheduler'::text, 'scheduler'::text) $$,
  'promoted with reason scheduler by the scheduler'
);
select is((select status::text from jobengine.jobs where id = (select id from future)), 'scheduled',
  'a job with a future notBefore is scheduled (claim waits for notBefore)');
select is((select status || '/' || pending_dependencies from jobengine.jobs where id = (select id from waiting)), 'pending/1',
  'a job with a pending dependency stays pending');
select is(jobengine.schedule_ready(), 0, 'nothing left: 0');
select is(jobengine_test.transitions((select id from other)), '(new)->pending, pending->scheduled',
  'a job that was already scheduled is untouched');

select * from finish();
rollback;
