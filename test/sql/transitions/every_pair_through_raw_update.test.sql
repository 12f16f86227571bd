-- Walks all (from, to) pairs of jobengine.job_status (36 for six statuses) through a raw
-- `UPDATE jobengine.jobs SET status = ...`, as an operator could type it in psql. Each pair gets
-- a fresh job brought to `from` through the lifecycle functions. The eight SPEC pairs succeed
-- and write exactly one job_history row and one timeline_events row; every other pair (self
-- pairs included) raises JE001 and writes nothing.
begin;
\ir ../_helpers.psql

create table pg_temp.allowed (from_status text, to_status text, event_type text);
insert into pg_temp.allowed values
  ('pending', 'scheduled', 'job.scheduled'),
  ('pending', 'cancelled', 'job.cancelled'),
  ('scheduled', 'running', 'job.started'),
  ('scheduled', 'cancelled', 'job.cancelled'),
  ('running', 'completed', 'job.completed'),
  ('running', 'failed', 'job.failed'),
  ('running', 'cancelled', 'job.cancelled'),
  ('failed', 'scheduled', 'job.retry_scheduled');

-- The outcome of one raw UPDATE, as text: 'ok' or the SQLSTATE, the status afterwards, and the
-- history rows and events it wrote.
create function pg_temp.try_pair(p_from jobengine.job_status, p_to jobengine.job_status)
returns text
language plpgsql
as $$
declare
  v_job jobengine.jobs := jobengine_test.job_in(p_from);
  v_seq integer;
  v_sequence bigint;
  v_outcome text;
  v_history text;
  v_events text;
begin
  select max(h.seq) into v_seq from jobengine.job_history h where h.job_id = v_job.id;
  select max(e.sequence) into v_sequence from jobengine.timeline_events e;
  begin
    if p_to = 'running' then
      -- a running job must hold a lease (check constraint running_has_lease): supply one, so
      -- that only the transition rule can refuse the pair
      update jobengine.jobs
         set status = p_to, lease_id = pg_catalog.gen_random_uuid(), lease_owner = 'raw-update',
             lease_expires_at = pg_catalog.now() + interval '1 minute'
       where id = v_job.id;
    else
      update jobengine.jobs set status = p_to where id = v_job.id;
    end if;
    v_outcome := 'ok';
  exception when others then
    v_outcome := sqlstate;
  end;
  select coalesce(pg_catalog.string_agg(h.from_status || '->' || h.to_status, ', ' order by h.seq), '')
    into v_history from jobengine.job_history h where h.job_id = v_job.id and h.seq > v_seq;
  select coalesce(pg_catalog.string_agg(e.type || '@' || e.subject_id, ', ' order by e.sequence), '')
    into v_events from jobengine.timeline_events e where e.sequence > v_sequence;
  return format('%s; status=%s; history=[%s]; events=[%s]', v_outcome,
    (select j.status from jobengine.jobs j where j.id = v_job.id), v_history,
    replace(v_events, '@' || v_job.id::text, ''));
end;
$$;

select plan(2 + (select pg_catalog.count(*)::integer
                   from pg_catalog.unnest(pg_catalog.enum_range(null::jobengine.job_status)) f,
                        pg_catalog.unnest(pg_catalog.enum_range(null::jobengine.job_status)) t));

select is(
  (select count(*)::integer from pg_catalog.unnest(pg_catalog.enum_range(null::jobengine.job_status)) f,
                                 pg_catalog.unnest(pg_catalog.enum_range(null::jobengine.job_status)) t),
  36, 'the walk covers 36 (from, to) pairs'
);

select set_eq(
  $$ select from_status::text, to_status::text from jobengine.job_transitions $$,
  $$ select from_status, to_status from pg_temp.allowed $$,
  'the pairs allowed by the walk are exactly the rows of job_transitions'
);

select is(
  pg_temp.try_pair(f, t),
  case when a.from_status is not null
    then format('ok; status=%s; history=[%s->%s]; events=[%s]', t, f, t, a.event_type)
    else format('JE001; status=%s; history=[]; events=[]', f)
  end,
  format('raw UPDATE %s -> %s %s', f, t,
    case when a.from_status is not null then 'succeeds with one history row and one event'
         else 'raises JE001 and writes nothing' end)
)
  from pg_catalog.unnest(pg_catalog.enum_range(null::jobengine.job_status)) with ordinality as fs(f, fo)
 cross join pg_catalog.unnest(pg_catalog.enum_range(null::jobengine.job_status)) with ordinality as ts(t, tord)
  left join pg_temp.allowed a on a.from_status = f::text and a.to_status = t::text
 order by fo, tord;

select * from finish();
rollback;
