-- jobengine.job_transitions (generated from the TypeScript TRANSITIONS table) holds exactly the
-- eight pairs of SPEC section 1, over exactly the six statuses.
begin;
select plan(4);

select results_eq(
  $$ select pg_catalog.enum_range(null::jobengine.job_status)::text[] $$,
  $$ values (array['pending', 'scheduled', 'running', 'completed', 'failed', 'cancelled']) $$,
  'job_status holds the six SPEC statuses, in lifecycle order'
);

select set_eq(
  $$ select from_status::text, to_status::text from jobengine.job_transitions $$,
  $$ values ('pending', 'scheduled'), ('pending', 'cancelled'),
            ('scheduled', 'running'), ('scheduled', 'cancelled'),
            ('running', 'completed'), ('running', 'failed'), ('running', 'cancelled'),
            ('failed', 'scheduled') $$,
  'job_transitions holds exactly the eight allowed pairs'
);

select is_empty(
  $$ select from_status from jobengine.job_transitions where from_status in ('completed', 'cancelled') $$,
  'completed and cancelled are terminal: no pair leaves them'
);

select is_empty(
  $$ select from_status from jobengine.job_transitions where from_status = to_status $$,
  'no self-transition is allowed'
);

select * from finish();
rollback;
