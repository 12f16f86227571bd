-- cancel_job cancels every transitive dependent that is still pending (dependency_cancelled),
-- and leaves alone dependents that are not pending and jobs that do not depend on it.
begin;
\ir ../_helpers.psql
select plan(6);

-- root <- a <- b;  root <- c (c also depends on other, which completes later);  unrelated
create temp table wf as select * from jobengine.create_workflow('[
  {"ref": "root", "type": "cascade.root"},
  {"ref": "a", "type": "cascade.a", "dependsOn": ["root"]},
  {"ref": "b", "type": "cascade.b", "dependsOn": ["a"]},
  {"ref": "other", "type": "cascade.other"},
  {"ref": "c", "type": "cascade.c", "dependsOn": ["root", "other"]},
  {"ref": "unrelated", "type": "cascade.unrelated", "dependsOn": ["other"]}
]');
do $$ begin perform jobengine.schedule_job((select id from wf where type = 'cascade.root')); end $$;
create temp table cancelled as select * from jobengine.cancel_job((select id from wf where type = 'cascade.root'), 'abort', 'ops');

select results_eq(
  $$ select w.type, j.status::text, j.status_reason, j.status_actor
       from wf w join jobengine.jobs j on j.id = w.id order by w.type $$,
  $$ values ('cascade.a'::text, 'cancelled'::text, 'dependency_cancelled'::text, 'scheduler'::text),
            ('cascade.b', 'cancelled', 'dependency_cancelled', 'scheduler'),
            ('cascade.c', 'cancelled', 'dependency_cancelled', 'scheduler'),
            ('cascade.other', 'pending', null, session_user::text collate "default"),
            ('cascade.root', 'cancelled', 'abort', 'ops'),
            ('cascade.unrelated', 'pending', null, session_user::text collate "default") $$,
  'root, its dependents a, b (transitively) and c are cancelled; other and unrelated are not'
);
select is(
  (select count(*)::integer from jobengine.job_history h join wf on wf.id = h.job_id where h.to_status = 'cancelled'),
  4, 'four pending/scheduled -> cancelled history rows'
);
select is(
  (select count(*)::integer from jobengine.timeline_events e join wf on wf.id = e.subject_id where e.type = 'job.cancelled'),
  4, 'four job.cancelled events'
);

-- a dependent that is no longer pending is not cancelled by the cascade
create temp table dep as select * from jobengine_test.job_in('running');
create temp table child as select * from jobengine_test.new_job(jsonb_build_object('dependsOn', jsonb_build_array((select id from dep))));
do $$ begin perform jobengine.complete_job((select id from dep), (select lease_id from dep), null); end $$;
select is((select status::text from jobengine.jobs where id = (select id from child)), 'scheduled', 'the child was scheduled when its dependency completed');
-- (the completed dependency can no longer be cancelled; cancel a second parent instead)
create temp table parent2 as select * from jobengine_test.job_in('scheduled');
create temp table child2 as select * from jobengine_test.job_in('scheduled');
do $$ begin perform jobengine.cancel_job((select id from parent2)); end $$;
select is((select status::text from jobengine.jobs where id = (select id from child2)), 'scheduled', 'jobs without a dependency on it are untouched');
select is((select status::text from jobengine.jobs where id = (select id from child)), 'scheduled', 'the scheduled child is untouched');

select * from finish();
rollback;
