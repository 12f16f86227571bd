-- A diamond: a; b and c depend on a; d depends on b and c. Completing a schedules b and c, and d
-- is scheduled exactly when the second of b and c completes, in the same transaction, without
-- calling schedule_ready.
begin;
\ir ../_helpers.psql
select plan(14);

create temp table wf as
  select w.*, row_number() over () as ord from jobengine.create_workflow('[
    {"ref": "a", "type": "diamond.a"},
    {"ref": "b", "type": "diamond.b", "dependsOn": ["a"]},
    {"ref": "c", "type": "diamond.c", "dependsOn": ["a"]},
    {"ref": "d", "type": "diamond.d", "dependsOn": ["b", "c"], "payload": {"join": true}}
  ]', '{"correlationId": "wf-1", "actor": "dave"}') w;

create function pg_temp.id(p_type text) returns uuid language sql as $$ select id from wf where type = p_type $$;
create function pg_temp.state(p_type text) returns text language sql as $$
  select j.status || '/' || j.pending_dependencies from jobengine.jobs j where j.id = pg_temp.id(p_type)
$$;
create function pg_temp.run(p_type text) returns void language plpgsql as $$
declare v jobengine.jobs := jobengine_test.claim(pg_temp.id(p_type));
begin
  perform jobengine.complete_job(v.id, v.lease_id, '{}');
end $$;

select results_eq(
  $$ select type, status::text, pending_dependencies, correlation_id from wf order by ord $$,
  $$ values ('diamond.a'::text, 'pending'::text, 0, 'wf-1'::text), ('diamond.b', 'pending', 1, 'wf-1'),
            ('diamond.c', 'pending', 1, 'wf-1'), ('diamond.d', 'pending', 2, 'wf-1') $$,
  'the workflow returns its jobs in input order, pending, with their pending dependency counts'
);
select set_eq(
  $$ select j.type as dependent, d.type as dependency from jobengine.job_dependencies x
       join wf j on j.id = x.job_id join wf d on d.id = x.depends_on_id $$,
  $$ values ('diamond.b', 'diamond.a'), ('diamond.c', 'diamond.a'), ('diamond.d', 'diamond.b'), ('diamond.d', 'diamond.c') $$,
  'job_dependencies holds the four edges'
);
select is(
  (select depends_on from wf where type = 'diamond.d'),
  (select array_agg(id order by id) from wf where type in ('diamond.b', 'diamond.c')),
  'd.depends_on holds the ids of b and c'
);
select is(
  (select count(*)::integer from jobengine.job_history h join wf on wf.id = h.job_id where h.actor = 'dave'),
  4, 'one creation history row per job, with the workflow actor'
);

do $$ begin perform jobengine.schedule_job(pg_temp.id('diamond.a')); end $$;
select is(pg_temp.state('diamond.b'), 'pending/1', 'b waits while a is only scheduled');
select throws_ok(
  format($$ select jobengine.schedule_job(%L) $$, pg_temp.id('diamond.d')),
  'JE007', null, 'an explicit schedule of d before b and c completed raises JE007'
);

do $$ begin perform pg_temp.run('diamond.a'); end $$;
select is(pg_temp.state('diamond.b'), 'scheduled/0', 'a completed: b scheduled');
select is(pg_temp.state('diamond.c'), 'scheduled/0', 'a completed: c scheduled');
select is(pg_temp.state('diamond.d'), 'pending/2', 'a completed: d still waits for b and c');

do $$ begin perform pg_temp.run('diamond.c'); end $$;
select is(pg_temp.state('diamond.d'), 'pending/1', 'c completed: d waits for b');

do $$ begin perform pg_temp.run('diamond.b'); end $$;
select is(pg_temp.state('diamond.d'), 'scheduled/0', 'b completed too: d scheduled at once');
select results_eq(
  format($$ select from_status::text, to_status::text, reason, actor from jobengine.job_history where job_id = %L order by seq $$, pg_temp.id('diamond.d')),
  $$ values (null::text, 'pending'::text, null::text, 'dave'::text), ('pending', 'scheduled', 'dependencies_completed', 'scheduler') $$,
  'd''s history: created, then scheduled by the scheduler (dependencies_completed)'
);
select is(
  jobengine_test.event_types(pg_temp.id('diamond.d')), 'job.created, job.scheduled',
  'd''s events: job.created, job.scheduled'
);
select is(
  (select id from jobengine.claim_jobs('w', array['diamond.d'], 10, 60)), pg_temp.id('diamond.d'),
  'd can be claimed'
);

select * from finish();
rollback;
