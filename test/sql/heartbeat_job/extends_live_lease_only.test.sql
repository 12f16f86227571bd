-- heartbeat_job extends a live lease to now() + p_lease_seconds (without it: by the length the
-- lease was last granted for), without a transition; a wrong lease, an expired lease or a job
-- that is no longer running raises JE002; an unknown id JE004.
begin;
\ir ../_helpers.psql
select plan(14);

create temp table r as select * from jobengine_test.job_in('running');
create temp table hb as select * from jobengine.heartbeat_job((select id from r), (select lease_id from r), 600);
select results_eq(
  $$ select status::text, lease_id, lease_owner, lease_expires_at, attempt, version from hb $$,
  $$ select 'running'::text, lease_id, lease_owner, now() + interval '600 seconds', 1, version from r $$,
  'the lease is extended to now() + 600 s; same lease id, owner, attempt and version'
);
select is(
  (select lease_expires_at from jobengine.heartbeat_job((select id from r), (select lease_id from r))),
  now() + interval '600 seconds',
  'without p_lease_seconds the lease is renewed for the length last granted (600 s), never cut to a default'
);
select is(
  (select lease_expires_at from jobengine.heartbeat_job((select id from r), (select lease_id from r), null)),
  now() + interval '600 seconds',
  'p_lease_seconds null is the same'
);
create temp table r2 as select * from jobengine_test.job_in('running');
select is(
  (select lease_expires_at - now() from jobengine.heartbeat_job((select id from r2), (select lease_id from r2))),
  (select lease_expires_at - updated_at from r2),
  'a lease never heartbeated is renewed for the length the claim granted'
);
select is(jobengine_test.transitions((select id from r)), '(new)->pending, pending->scheduled, scheduled->running', 'no history row');
select is(jobengine_test.event_types((select id from r)), 'job.created, job.scheduled, job.started', 'no event');

select throws_ok(format($$ select jobengine.heartbeat_job(%L, %L, 60) $$, (select id from r), gen_random_uuid()),
  'JE002', null, 'a wrong lease raises JE002');
select throws_ok(format($$ select jobengine.heartbeat_job(%L, null, 60) $$, (select id from r)),
  'JE002', null, 'a null lease raises JE002');
select throws_ok(format($$ select jobengine.heartbeat_job(%L, %L, 60) $$, gen_random_uuid(), gen_random_uuid()),
  'JE004', null, 'an unknown id raises JE004');
select throws_ok(format($$ select jobengine.heartbeat_job(%L, %L, 0) $$, (select id from r), (select lease_id from r)),
  'JE009', null, 'p_lease_seconds 0 raises JE009');

select jobengine_test.expire_lease((select id from r));
select throws_ok(format($$ select jobengine.heartbeat_job(%L, %L, 60) $$, (select id from r), (select lease_id from r)),
  'JE002', null, 'an expired lease raises JE002 (even with the right lease id)');
select is((select lease_expires_at from jobengine.jobs where id = (select id from r)), now() - interval '1 second',
  'the expired lease was not extended');

create temp table c as select * from jobengine_test.job_in('running');
do $$ begin perform jobengine.cancel_job((select id from c), 'stop', 'op'); end $$;
select throws_ok(format($$ select jobengine.heartbeat_job(%L, %L, 60) $$, (select id from c), (select lease_id from c)),
  'JE002', null, 'a heartbeat on a cancelled job raises JE002');
create temp table d as select * from jobengine_test.job_in('running');
do $$ begin perform jobengine.complete_job((select id from d), (select lease_id from d), null); end $$;
select throws_ok(format($$ select jobengine.heartbeat_job(%L, %L, 60) $$, (select id from d), (select lease_id from d)),
  'JE002', null, 'a heartbeat on a completed job raises JE002');

select * from finish();
rollback;
