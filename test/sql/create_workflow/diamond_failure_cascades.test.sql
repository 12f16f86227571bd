-- A diamond whose root fails terminally: b, c and d (behind both) are all cancelled with
-- dependency_failed, each once.
begin;
\ir ../_helpers.psql
select plan(3);

create temp table wf as select * from jobengine.create_workflow('[
  {"ref": "a", "type": "fdiamond.a", "maxRetries": 0},
  {"ref": "b", "type": "fdiamond.b", "dependsOn": ["a"]},
  {"ref": "c", "type": "fdiamond.c", "dependsOn": ["a"]},
  {"ref": "d", "type": "fdiamond.d", "dependsOn": ["b", "c"]}
]');
do $$
declare v jobengine.jobs;
begin
  perform jobengine.schedule_job((select id from wf where type = 'fdiamond.a'));
  v := jobengine_test.claim((select id from wf where type = 'fdiamond.a'));
  perform jobengine.fail_job(v.id, v.lease_id, '{"code": "fatal"}');
end $$;

select results_eq(
  $$ select w.type, j.status::text, j.terminal, j.status_reason from wf w join jobengine.jobs j on j.id = w.id order by w.type $$,
  $$ values ('fdiamond.a'::text, 'failed'::text, true, 'fatal'::text),
            ('fdiamond.b', 'cancelled', true, 'dependency_failed'),
            ('fdiamond.c', 'cancelled', true, 'dependency_failed'),
            ('fdiamond.d', 'cancelled', true, 'dependency_failed') $$,
  'a failed; b, c and d dependency_failed'
);
select is(
  (select count(*)::integer from jobengine.job_history h join wf on wf.id = h.job_id where h.to_status = 'cancelled'),
  3, 'three cancelled history rows (d only once, though both of its dependencies were cancelled)'
);
select is(
  (select count(*)::integer from jobengine.timeline_events e join wf on wf.id = e.subject_id where e.type = 'job.cancelled'),
  3, 'three job.cancelled events'
);

select * from finish();
rollback;
