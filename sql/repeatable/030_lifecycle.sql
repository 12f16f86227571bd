-- The lifecycle API (SPEC section 4). Callable from psql; the HTTP API and the worker runtime
-- call exactly these. Every state change goes through an UPDATE of jobengine.jobs, so the
-- triggers in 020_triggers.sql check it and record it.

-- ---------------------------------------------------------------------------------------------
-- Option parsing shared by create_job and create_workflow.
create or replace function jobengine._check_options(p_options jsonb, p_allowed text[])
returns void
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_key text;
begin
  if pg_catalog.jsonb_typeof(p_options) <> 'object' then
    perform jobengine._invalid_argument('options', 'must be an object');
  end if;
  for v_key in select pg_catalog.jsonb_object_keys(p_options) loop
    if not v_key = any (p_allowed) then
      perform jobengine._invalid_argument(v_key, 'is not a known option');
    end if;
  end loop;
  if p_options ? 'tenantId' and (pg_catalog.jsonb_typeof(p_options -> 'tenantId') <> 'string'
     or pg_catalog.char_length(p_options ->> 'tenantId') not between 1 and 200) then
    perform jobengine._invalid_argument('tenantId', 'must be a string of 1 to 200 characters');
  end if;
  if p_options ? 'priority' and (pg_catalog.jsonb_typeof(p_options -> 'priority') <> 'number'
     or (p_options ->> 'priority')::numeric % 1 <> 0
     or (p_options ->> 'priority')::numeric not between -1000000 and 1000000) then
    perform jobengine._invalid_argument('priority', 'must be a whole number from -1000000 to 1000000');
  end if;
  if p_options ? 'dependsOn' and pg_catalog.jsonb_typeof(p_options -> 'dependsOn') <> 'array' then
    perform jobengine._invalid_argument('dependsOn', 'must be an array of job ids');
  end if;
  if p_options ? 'dependsOn' and exists (
    select from pg_catalog.jsonb_array_elements(p_options -> 'dependsOn') d(value)
     where pg_catalog.jsonb_typeof(d.value) <> 'string'
        or (d.value #>> '{}') !~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$'
  ) then
    perform jobengine._invalid_argument('dependsOn', 'must be an array of job ids (uuid)');
  end if;
  if p_options ? 'notBefore' and pg_catalog.jsonb_typeof(p_options -> 'notBefore') <> 'null' then
    if pg_catalog.jsonb_typeof(p_options -> 'notBefore') <> 'string' then
      perform jobengine._invalid_argument('notBefore', 'must be an ISO 8601 timestamp');
    end if;
    begin
      if not pg_catalog.isfinite((p_options ->> 'notBefore')::timestamptz) then
        perform jobengine._invalid_argument('notBefore', 'must be a finite timestamp');
      end if;
    exception when data_exception then
      perform jobengine._invalid_argument('notBefore', 'must be an ISO 8601 timestamp');
    end;
  end if;
  if p_options ? 'requiresNetwork' and pg_catalog.jsonb_typeof(p_options -> 'requiresNetwork') <> 'boolean' then
    perform jobengine._invalid_argument('requiresNetwork', 'must be true or false');
  end if;
  if p_options ? 'idempotencyKey' and (pg_catalog.jsonb_typeof(p_options -> 'idempotencyKey') <> 'string'
     or pg_catalog.char_length(p_options ->> 'idempotencyKey') not between 1 and 200) then
    perform jobengine._invalid_argument('idempotencyKey', 'must be a string of 1 to 200 characters');
  end if;
  if p_options ? 'correlationId' and pg_catalog.jsonb_typeof(p_options -> 'correlationId') not in ('string', 'null') then
    perform jobengine._invalid_argument('correlationId', 'must be a string');
  end if;
  if p_options ? 'actor' and pg_catalog.jsonb_typeof(p_options -> 'actor') not in ('string', 'null') then
    perform jobengine._invalid_argument('actor', 'must be a string');
  end if;
end;
$$;

-- Cancels p_id (pending) when one of its dependencies already ended cancelled or terminally
-- failed. Used at creation, where no completion or failure event will come any more.
create or replace function jobengine._cancel_if_dependency_dead(p_id uuid, p_deps uuid[])
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_status jobengine.job_status;
begin
  -- a dependency that failed, or was cancelled because something upstream failed, passes on
  -- dependency_failed (the reason names how the root ended)
  select case when bool_or(d.status = 'failed' or d.status_reason = 'dependency_failed') then 'failed'
              else 'cancelled' end::jobengine.job_status
    into v_status
    from jobengine.jobs d
   where d.id = any (p_deps) and (d.status = 'cancelled' or (d.status = 'failed' and d.terminal))
  having count(*) > 0;
  if v_status is not null then
    perform jobengine._set_context(case v_status when 'failed' then 'dependency_failed' else 'dependency_cancelled' end, 'scheduler');
    update jobengine.jobs set status = 'cancelled' where id = p_id and status = 'pending';
    perform jobengine._set_context(null, null);
  end if;
end;
$$;

-- Raises JE006: the idempotency key p_key already names job p_id, created by another request.
create or replace function jobengine._idempotency_conflict(p_key text, p_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
begin
  raise exception using
    errcode = 'JE006',
    message = format('Idempotency key "%s" was already used for a different request (job %s)', p_key, p_id),
    detail = pg_catalog.json_build_object('idempotencyKey', p_key, 'jobId', p_id)::text;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- create_job: a new pending job. Options: tenantId, priority, dependsOn uuid[], retryPolicy,
-- maxRetries, notBefore, requiresNetwork, idempotencyKey, correlationId, actor.
-- The same tenant + idempotencyKey returns the existing job when the request is the same and
-- raises JE006 when it differs.
create or replace function jobengine.create_job(p_type text, p_payload jsonb default '{}', p_options jsonb default '{}')
returns jobengine.jobs
language plpgsql
set search_path = ''
as $$
declare
  v_options jsonb := coalesce(p_options, '{}'::jsonb);
  v_tenant text;
  v_policy jsonb;
  v_deps uuid[];
  v_found integer;
  v_pending integer;
  v_key text;
  v_hash text;
  v_job jobengine.jobs;
begin
  perform jobengine._check_options(v_options, array['tenantId', 'priority', 'dependsOn', 'retryPolicy', 'maxRetries',
    'notBefore', 'requiresNetwork', 'idempotencyKey', 'correlationId', 'actor']);
  if p_type is null or pg_catalog.char_length(p_type) not between 1 and 200 then
    perform jobengine._invalid_argument('type', 'must be a string of 1 to 200 characters');
  end if;
  v_tenant := coalesce(v_options ->> 'tenantId', 'default');
  v_policy := jobengine.normalize_retry_policy(v_options -> 'retryPolicy', v_options -> 'maxRetries');
  v_deps := coalesce(array(
    select distinct x::uuid from pg_catalog.jsonb_array_elements_text(coalesce(v_options -> 'dependsOn', '[]')) x
     order by 1), '{}');
  v_key := v_options ->> 'idempotencyKey';

  if v_key is not null then
    -- notBefore as the instant it names (epoch seconds), so that every way of writing the same
    -- instant is the same request; absent and null both mean "now"
    v_hash := pg_catalog.md5(pg_catalog.jsonb_build_array(p_type, coalesce(p_payload, '{}'::jsonb), v_tenant,
      -- the priority as the integer it is (0.0 and 0 are the same request)
      pg_catalog.to_jsonb(coalesce((v_options ->> 'priority')::numeric::integer, 0)), v_deps, v_policy,
      case when pg_catalog.jsonb_typeof(v_options -> 'notBefore') = 'string'
        then pg_catalog.to_jsonb(extract(epoch from (v_options ->> 'notBefore')::timestamptz)) end,
      coalesce(v_options -> 'requiresNetwork', 'false'))::text);
    select * into v_job from jobengine.jobs j where j.tenant_id = v_tenant and j.idempotency_key = v_key;
    if found then
      if v_job.request_hash is distinct from v_hash then
        perform jobengine._idempotency_conflict(v_key, v_job.id);
      end if;
      return v_job;
    end if;
  end if;

  if pg_catalog.cardinality(v_deps) > 0 then
    -- FOR SHARE, in id order, until commit: a dependency whose completion (or failure, or
    -- cancellation) is in flight is read once that commits, and none can end before this job's
    -- dependency rows are visible to the trigger that counts its dependents down. Without the
    -- lock a job created beside its dependency's completion stayed pending for good.
    select count(*), count(*) filter (where s.status <> 'completed')
      into v_found, v_pending
      from (select d.status from jobengine.jobs d
             where d.id = any (v_deps) and d.tenant_id = v_tenant
             order by d.id
               for share) s;
    if v_found <> pg_catalog.cardinality(v_deps) then
      raise exception using
        errcode = 'JE005',
        message = format('Invalid dependency: %s of %s dependencies do not exist for tenant "%s"',
          pg_catalog.cardinality(v_deps) - v_found, pg_catalog.cardinality(v_deps), v_tenant),
        detail = pg_catalog.json_build_object('reason', 'unknown', 'dependsOn', v_deps)::text;
    end if;
  else
    v_pending := 0;
  end if;

  -- bookkept: the row comes in the shape _100_check_insert gives (the actor included), so that
  -- trigger, which holds raw INSERTs to the same rules, stands aside
  perform jobengine._set_bookkept(true);
  insert into jobengine.jobs as j (
    tenant_id, type, payload, priority, max_retries, retry_policy, depends_on, pending_dependencies,
    not_before, requires_network, idempotency_key, request_hash, correlation_id,
    status_actor, version, attempt, terminal, created_at, updated_at
  ) values (
    v_tenant, p_type, coalesce(p_payload, '{}'::jsonb), coalesce((v_options ->> 'priority')::integer, 0),
    (v_policy ->> 'maxRetries')::integer, v_policy, v_deps, v_pending,
    coalesce((v_options ->> 'notBefore')::timestamptz, pg_catalog.now()),
    coalesce((v_options ->> 'requiresNetwork')::boolean, false), v_key, v_hash, v_options ->> 'correlationId',
    coalesce(nullif(v_options ->> 'actor', ''), session_user), 1, 0, false, pg_catalog.now(), pg_catalog.now()
  )
  on conflict (tenant_id, idempotency_key) where idempotency_key is not null do nothing
  returning * into v_job;
  perform jobengine._set_bookkept(false);

  if v_job.id is null then
    -- a concurrent request with the same key won the race
    select * into v_job from jobengine.jobs j where j.tenant_id = v_tenant and j.idempotency_key = v_key;
    if v_job.request_hash is distinct from v_hash then
      perform jobengine._idempotency_conflict(v_key, v_job.id);
    end if;
    return v_job;
  end if;

  if pg_catalog.cardinality(v_deps) > 0 then
    perform jobengine._engine_write(true);
    insert into jobengine.job_dependencies (job_id, depends_on_id)
    select v_job.id, d from pg_catalog.unnest(v_deps) d;
    perform jobengine._engine_write(false);
    if v_pending > 0 then
      perform jobengine._cancel_if_dependency_dead(v_job.id, v_deps);
      select * into v_job from jobengine.jobs j where j.id = v_job.id;
    end if;
  end if;
  return v_job;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- create_workflow: several jobs at once, atomically. p_jobs is an array of
-- { ref, type, payload?, dependsOn?: [ref | existing job id], priority?, retryPolicy?, maxRetries?,
--   notBefore?, requiresNetwork?, correlationId? }; p_options: tenantId, correlationId, actor.
-- A cycle, an unknown reference or another tenant's job raises JE005 and writes nothing.
create or replace function jobengine.create_workflow(p_jobs jsonb, p_options jsonb default '{}')
returns setof jobengine.jobs
language plpgsql
set search_path = ''
-- large arrays look expensive to the planner (no statistics on a jsonb array); JIT would only
-- add its compile time
set jit = off
as $$
declare
  v_options jsonb := coalesce(p_options, '{}'::jsonb);
  v_tenant text;
  v_n integer;
  v_refs text[];
  v_ids uuid[];
  v_edge_src integer[];   -- dependency (index into v_refs)
  v_edge_dst integer[];   -- dependent
  v_indegree integer[];
  v_queue integer[];
  v_head integer := 1;
  v_seen integer := 0;
  v_node integer;
  v_i integer;
  v_bad text;
  v_job jsonb;
  v_default_policy jsonb := jobengine.normalize_retry_policy(null);
  v_now timestamptz;
  v_actor text;
  v_id_prefix bytea;
  v_id_low bigint;
begin
  perform jobengine._check_options(v_options, array['tenantId', 'correlationId', 'actor']);
  -- the actor as _100_check_insert would record it
  v_actor := coalesce(nullif(v_options ->> 'actor', ''), session_user);
  if pg_catalog.jsonb_typeof(p_jobs) is distinct from 'array' or pg_catalog.jsonb_array_length(p_jobs) = 0 then
    perform jobengine._invalid_argument('jobs', 'must be a non-empty array');
  end if;
  v_n := pg_catalog.jsonb_array_length(p_jobs);
  if v_n > 10000 then
    perform jobengine._invalid_argument('jobs', 'at most 10000 jobs per workflow');
  end if;
  v_tenant := coalesce(v_options ->> 'tenantId', 'default');

  -- each job's shape, in one pass over the array (indexing p_jobs -> i would re-read the whole
  -- value for every job). A plain job ({ ref, type, payload? } with valid ref and type) passes
  -- in this one query; only the others go through the checks below, one by one, in array order,
  -- so the first invalid job is still the one reported.
  for v_job, v_i in
    select e.value, (e.ord - 1)::integer from pg_catalog.jsonb_array_elements(p_jobs) with ordinality e(value, ord)
     where not coalesce(case when pg_catalog.jsonb_typeof(e.value) = 'object' then
                 (e.value - array['ref', 'type', 'payload']) = '{}'::jsonb
                 and pg_catalog.jsonb_typeof(e.value -> 'ref') = 'string'
                 and pg_catalog.char_length(e.value ->> 'ref') between 1 and 200
                 and pg_catalog.jsonb_typeof(e.value -> 'type') = 'string'
                 and pg_catalog.char_length(e.value ->> 'type') between 1 and 200
               end, false)
     order by e.ord
  loop
    if pg_catalog.jsonb_typeof(v_job) <> 'object' then
      perform jobengine._invalid_argument(format('jobs[%s]', v_i), 'must be an object');
    end if;
    perform jobengine._check_options(v_job - array['ref', 'type', 'payload', 'dependsOn'],
      array['priority', 'retryPolicy', 'maxRetries', 'notBefore', 'requiresNetwork', 'correlationId']);
    if v_job ? 'dependsOn' and (pg_catalog.jsonb_typeof(v_job -> 'dependsOn') <> 'array'
       or exists (select from pg_catalog.jsonb_array_elements(v_job -> 'dependsOn') d(value)
                   where pg_catalog.jsonb_typeof(d.value) <> 'string')) then
      perform jobengine._invalid_argument(format('jobs[%s].dependsOn', v_i), 'must be an array of refs or job ids');
    end if;
    if pg_catalog.jsonb_typeof(v_job -> 'ref') is distinct from 'string'
       or pg_catalog.char_length(v_job ->> 'ref') not between 1 and 200 then
      perform jobengine._invalid_argument(format('jobs[%s].ref', v_i), 'must be a string of 1 to 200 characters');
    end if;
    if pg_catalog.jsonb_typeof(v_job -> 'type') is distinct from 'string'
       or pg_catalog.char_length(v_job ->> 'type') not between 1 and 200 then
      perform jobengine._invalid_argument(format('jobs[%s].type', v_i), 'must be a string of 1 to 200 characters');
    end if;
  end loop;

  -- the jobs' ids: UUID version 7 as jobengine.uuid_v7() lays it out (48-bit Unix time in
  -- milliseconds, version, 12 bits of sub-millisecond time, variant, 62 bits), drawing randomness
  -- once per call: the low 62 bits are a random start plus the job's position, so they are
  -- distinct within the workflow and follow its order (jobs created together are claimed in the
  -- order given: the claim's tie-break after priority and created_at is the id).
  -- gen_random_uuid() per row cost more than the rest of the id (docs/performance.md).
  v_id_prefix := jobengine._uuid_v7_high();
  v_id_low := ('x' || pg_catalog.encode(pg_catalog.substr(pg_catalog.uuid_send(pg_catalog.gen_random_uuid()), 9, 8),
    'hex'))::bit(64)::bigint & 2305843009213693951;

  -- fast path: no job depends on anything, so there is no graph to check
  if not exists (
    select from pg_catalog.jsonb_array_elements(p_jobs) e(value)
     where pg_catalog.jsonb_typeof(e.value -> 'dependsOn') = 'array'
       and pg_catalog.jsonb_array_length(e.value -> 'dependsOn') > 0
  ) then
    if (select count(distinct e.value ->> 'ref') from pg_catalog.jsonb_array_elements(p_jobs) e(value)) <> v_n then
      raise exception using
        errcode = 'JE005',
        message = 'Invalid dependency: workflow refs must be unique',
        detail = pg_catalog.json_build_object('reason', 'duplicate_ref')::text;
    end if;
    -- bookkept: the row sets what _100_check_insert would (the actor included), so that
    -- trigger stands aside
    perform jobengine._set_bookkept(true);
    v_now := pg_catalog.now();
    return query
      insert into jobengine.jobs (id, status_actor, version, attempt, terminal, created_at, updated_at,
                                  tenant_id, type, payload, priority, max_retries, retry_policy, not_before,
                                  requires_network, correlation_id)
      select jobengine._uuid_of(v_id_prefix, v_id_low + e.ord),
             v_actor, 1, 0, false, v_now, v_now,
             v_tenant, e.value ->> 'type', coalesce(e.value -> 'payload', '{}'::jsonb),
             coalesce((e.value ->> 'priority')::integer, 0), (p.policy ->> 'maxRetries')::integer, p.policy,
             coalesce((e.value ->> 'notBefore')::timestamptz, pg_catalog.now()),
             coalesce((e.value ->> 'requiresNetwork')::boolean, false),
             coalesce(e.value ->> 'correlationId', v_options ->> 'correlationId')
        from (
          -- one normalisation per job (offset 0 keeps the planner from inlining it twice), and
          -- none for jobs that bring no policy of their own
          select e.value, e.ord,
                 case when e.value ? 'retryPolicy' or e.value ? 'maxRetries'
                      then jobengine.normalize_retry_policy(e.value -> 'retryPolicy', e.value -> 'maxRetries')
                      else v_default_policy end as policy
            from pg_catalog.jsonb_array_elements(p_jobs) with ordinality as e(value, ord)
          offset 0
        ) e
       cross join lateral (select e.policy) p
       order by e.ord
      returning *;
    perform jobengine._set_bookkept(false);
    return;
  end if;

  create temporary table if not exists _je_workflow (
    idx integer primary key, ref text not null unique, id uuid not null, spec jsonb not null, policy jsonb not null
  ) on commit drop;
  create temporary table if not exists _je_workflow_edge (
    dependent integer not null, dependency_ref text, dependency_id uuid
  ) on commit drop;
  create index if not exists _je_workflow_edge_dependent on _je_workflow_edge (dependent);
  truncate _je_workflow, _je_workflow_edge;

  insert into _je_workflow (idx, ref, id, spec, policy)
  select (e.ord - 1)::integer, e.value ->> 'ref', jobengine._uuid_of(v_id_prefix, v_id_low + e.ord), e.value,
         jobengine.normalize_retry_policy(e.value -> 'retryPolicy', e.value -> 'maxRetries')
    from pg_catalog.jsonb_array_elements(p_jobs) with ordinality as e(value, ord)
  on conflict (ref) do nothing;
  get diagnostics v_i = row_count;
  if v_i <> v_n then
    raise exception using
      errcode = 'JE005',
      message = 'Invalid dependency: workflow refs must be unique',
      detail = pg_catalog.json_build_object('reason', 'duplicate_ref')::text;
  end if;

  -- edges: a string that names a ref of this workflow is a ref; otherwise it must be a job id
  select d.value into v_bad
    from _je_workflow w
   cross join lateral pg_catalog.jsonb_array_elements_text(coalesce(w.spec -> 'dependsOn', '[]')) d(value)
    left join _je_workflow r on r.ref = d.value
   where r.ref is null
     and d.value !~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$'
   limit 1;
  if v_bad is not null then
    raise exception using
      errcode = 'JE005',
      message = format('Invalid dependency: "%s" is neither a ref of this workflow nor a job id', v_bad),
      detail = pg_catalog.json_build_object('reason', 'unknown', 'dependsOn', v_bad)::text;
  end if;
  insert into _je_workflow_edge (dependent, dependency_ref, dependency_id)
  select w.idx, r.ref, case when r.ref is null then d.value::uuid end
    from _je_workflow w
   cross join lateral pg_catalog.jsonb_array_elements_text(coalesce(w.spec -> 'dependsOn', '[]')) d(value)
    left join _je_workflow r on r.ref = d.value;

  select e.dependency_id::text into v_bad
    from _je_workflow_edge e
   where e.dependency_ref is null
     and not exists (select from jobengine.jobs j where j.id = e.dependency_id and j.tenant_id = v_tenant)
   limit 1;
  if v_bad is not null then
    raise exception using
      errcode = 'JE005',
      message = format('Invalid dependency: "%s" is neither a ref of this workflow nor a job of tenant "%s"', v_bad, v_tenant),
      detail = pg_catalog.json_build_object('reason', 'unknown', 'dependsOn', v_bad)::text;
  end if;

  -- the existing jobs depended on: FOR SHARE, in id order, until commit (see create_job)
  perform 1 from jobengine.jobs j
   where j.id in (select e.dependency_id from _je_workflow_edge e where e.dependency_id is not null)
   order by j.id
     for share;

  -- cycle check: Kahn's algorithm over the refs, O(jobs + edges)
  select coalesce(pg_catalog.array_agg(r.idx order by e.dependent), '{}'), coalesce(pg_catalog.array_agg(e.dependent order by e.dependent), '{}')
    into v_edge_src, v_edge_dst
    from _je_workflow_edge e join _je_workflow r on r.ref = e.dependency_ref;
  if pg_catalog.cardinality(v_edge_src) > 0 then
    v_indegree := pg_catalog.array_fill(0, array[v_n], array[0]);
    for v_i in 1 .. pg_catalog.cardinality(v_edge_dst) loop
      v_indegree[v_edge_dst[v_i]] := v_indegree[v_edge_dst[v_i]] + 1;
    end loop;
    -- adjacency by source: sort edges by source once
    select coalesce(pg_catalog.array_agg(s order by s, d), '{}'), coalesce(pg_catalog.array_agg(d order by s, d), '{}')
      into v_edge_src, v_edge_dst
      from unnest(v_edge_src, v_edge_dst) as u(s, d);
    v_queue := array(select i from pg_catalog.generate_series(0, v_n - 1) i where v_indegree[i] = 0);
    declare
      v_start integer[] := pg_catalog.array_fill(0, array[v_n + 1], array[0]);
      v_k integer;
    begin
      -- v_start[s] = first edge index (1-based) of source s; edges of s are v_start[s] .. v_start[s+1]-1
      for v_i in 1 .. pg_catalog.cardinality(v_edge_src) loop
        v_start[v_edge_src[v_i] + 1] := v_start[v_edge_src[v_i] + 1] + 1;
      end loop;
      v_start[0] := 1;
      for v_i in 1 .. v_n loop
        v_start[v_i] := v_start[v_i] + v_start[v_i - 1];
      end loop;
      while v_head <= coalesce(pg_catalog.cardinality(v_queue), 0) loop
        v_node := v_queue[v_head];
        v_head := v_head + 1;
        v_seen := v_seen + 1;
        for v_k in v_start[v_node] .. v_start[v_node + 1] - 1 loop
          v_indegree[v_edge_dst[v_k]] := v_indegree[v_edge_dst[v_k]] - 1;
          if v_indegree[v_edge_dst[v_k]] = 0 then
            v_queue := v_queue || v_edge_dst[v_k];
          end if;
        end loop;
      end loop;
    end;
    if v_seen < v_n then
      select pg_catalog.array_agg(w.ref order by w.idx) into v_refs
        from _je_workflow w where v_indegree[w.idx] > 0;
      raise exception using
        errcode = 'JE005',
        message = format('Invalid dependency: the workflow has a cycle through %s', pg_catalog.array_to_string(v_refs[1:10], ', ')),
        detail = pg_catalog.json_build_object('reason', 'cycle', 'refs', v_refs)::text;
    end if;
  end if;

  -- write: jobs, then dependency rows; bookkept like the fast path (and create_job)
  perform jobengine._set_bookkept(true);
  insert into jobengine.jobs (
    id, tenant_id, type, payload, priority, max_retries, retry_policy, depends_on, pending_dependencies,
    not_before, requires_network, correlation_id, status_actor, version, attempt, terminal, created_at, updated_at
  )
  select w.id, v_tenant, w.spec ->> 'type', coalesce(w.spec -> 'payload', '{}'::jsonb),
         coalesce((w.spec ->> 'priority')::integer, 0), (w.policy ->> 'maxRetries')::integer, w.policy,
         coalesce(deps.ids, '{}'), coalesce(deps.pending, 0),
         coalesce((w.spec ->> 'notBefore')::timestamptz, pg_catalog.now()),
         coalesce((w.spec ->> 'requiresNetwork')::boolean, false),
         coalesce(w.spec ->> 'correlationId', v_options ->> 'correlationId'),
         v_actor, 1, 0, false, pg_catalog.now(), pg_catalog.now()
    from _je_workflow w
    left join lateral (
      select pg_catalog.array_agg(distinct coalesce(r.id, e.dependency_id)) as ids,
             count(distinct coalesce(r.id, e.dependency_id)) filter (
               where r.id is not null or exists (
                 select from jobengine.jobs j where j.id = e.dependency_id and j.status <> 'completed'))::integer as pending
        from _je_workflow_edge e
        left join _je_workflow r on r.ref = e.dependency_ref
       where e.dependent = w.idx
    ) deps on true
   order by w.idx;
  perform jobengine._set_bookkept(false);

  perform jobengine._engine_write(true);
  insert into jobengine.job_dependencies (job_id, depends_on_id)
  select distinct w.id, coalesce(r.id, e.dependency_id)
    from _je_workflow_edge e
    join _je_workflow w on w.idx = e.dependent
    left join _je_workflow r on r.ref = e.dependency_ref;
  perform jobengine._engine_write(false);

  -- dependencies on existing jobs that already ended cancelled or terminally failed
  perform jobengine._cancel_if_dependency_dead(w.id, array[e.dependency_id])
     from _je_workflow_edge e join _je_workflow w on w.idx = e.dependent
    where e.dependency_id is not null;

  return query
    select j.* from jobengine.jobs j join _je_workflow w on w.id = j.id order by w.idx;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- schedule_job: pending -> scheduled, explicitly. JE007 while dependencies are not completed,
-- JE003 when the job requires the network and the engine is sealed (both checked by the trigger).
create or replace function jobengine.schedule_job(p_id uuid, p_actor text default null)
returns jobengine.jobs
language plpgsql
set search_path = ''
as $$
declare
  v_job jobengine.jobs;
begin
  select * into v_job from jobengine.jobs j where j.id = p_id for update;
  if not found then
    perform jobengine._not_found(p_id);
  end if;
  if v_job.status <> 'pending' then
    perform jobengine._invalid_transition(p_id, v_job.status, 'scheduled',
      case when v_job.status = 'failed' then 'Use retry_job to schedule a failed job again.' end);
  end if;
  perform jobengine._set_context('manual', p_actor);
  update jobengine.jobs j set status = 'scheduled' where j.id = p_id returning * into v_job;
  perform jobengine._set_context(null, null);
  return v_job;
end;
$$;

-- schedule_ready: promotes eligible pending jobs (every dependency completed, sealed rules
-- allow); marks network jobs blocked (one job.blocked event) while sealed. Returns how many
-- were scheduled.
create or replace function jobengine.schedule_ready(p_limit integer default 1000)
returns integer
language plpgsql
set search_path = ''
as $$
begin
  if p_limit is null or p_limit < 1 or p_limit > 100000 then
    perform jobengine._invalid_argument('p_limit', 'must be a whole number from 1 to 100000');
  end if;
  return jobengine._schedule_eligible(null, p_limit, 'scheduler', 'scheduler');
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- claim_jobs: scheduled -> running for up to p_limit due jobs, highest priority first, then
-- oldest; FOR UPDATE SKIP LOCKED so concurrent workers never claim the same job. Each claimed
-- job gets a fresh lease (lease_id, lease_owner, lease_expires_at); attempt += 1 (trigger).
-- p_tenant (an extension of SPEC section 4) limits the claim to one tenant.
create or replace function jobengine.claim_jobs_for(
  p_worker text, p_types text[], p_limit integer, p_lease_seconds integer, p_tenant text
)
returns setof jobengine.jobs
language plpgsql
set search_path = ''
as $$
declare
  v_sealed boolean := jobengine.is_sealed();
  v_lease_prefix bytea := pg_catalog.substr(pg_catalog.uuid_send(pg_catalog.gen_random_uuid()), 1, 8);
begin
  if p_worker is null or pg_catalog.char_length(p_worker) not between 1 and 200 then
    perform jobengine._invalid_argument('p_worker', 'must be a string of 1 to 200 characters');
  end if;
  if p_limit is null or p_limit < 1 or p_limit > 1000 then
    perform jobengine._invalid_argument('p_limit', 'must be a whole number from 1 to 1000');
  end if;
  if p_lease_seconds is null or p_lease_seconds < 1 or p_lease_seconds > 86400 then
    perform jobengine._invalid_argument('p_lease_seconds', 'must be a whole number from 1 to 86400');
  end if;
  -- bookkept: this UPDATE sets what _100_check_transition would (scheduled -> running, reason
  -- and actor included), so the per-row trigger stands aside; the statement trigger still
  -- checks every pair
  perform jobengine._set_bookkept(true);
  return query
    with claimable as (
      select j.id
        from jobengine.jobs j
       where j.status = 'scheduled'
         and j.not_before <= pg_catalog.now()
         and (p_types is null or pg_catalog.cardinality(p_types) = 0 or j.type = any (p_types))
         and (p_tenant is null or j.tenant_id = p_tenant)
         and (not v_sealed or not j.requires_network)
       order by j.priority desc, j.created_at, j.id
       limit p_limit
         for update skip locked
    )
    , claimed as (
    update jobengine.jobs j
       set status = 'running',
           -- a lease id: 8 random bytes for this claim + the job id's 8 random bytes (unique per
           -- claim and job; a random UUID per row costs about 2.5 us here)
           lease_id = pg_catalog.encode(v_lease_prefix || pg_catalog.substr(pg_catalog.uuid_send(j.id), 9, 8), 'hex')::uuid,
           lease_owner = p_worker,
           lease_expires_at = pg_catalog.now() + pg_catalog.make_interval(secs => p_lease_seconds),
           version = j.version + 1,
           attempt = j.attempt + 1,
           -- never before the job was scheduled (its promotion may have committed after this
           -- transaction started): a job's times and history do not go backwards
           started_at = greatest(pg_catalog.now(), j.updated_at),
           updated_at = greatest(pg_catalog.now(), j.updated_at),
           status_reason = 'claimed',
           status_actor = p_worker,
           blocked_reason = null
      from claimable c
     where j.id = c.id
    returning j.*
    )
    -- the rows in the order they were chosen (an UPDATE returns them in its join's order)
    select * from claimed c order by c.priority desc, c.created_at, c.id;
  perform jobengine._set_bookkept(false);
end;
$$;

create or replace function jobengine.claim_jobs(p_worker text, p_types text[], p_limit integer, p_lease_seconds integer)
returns setof jobengine.jobs
language plpgsql
as $$
begin
  -- PL/pgSQL, not SQL: a SQL function is parsed and planned again in every transaction
  return query select * from jobengine.claim_jobs_for(p_worker, p_types, p_limit, p_lease_seconds, null);
end;
$$;

-- Raises the right error for an operation that needs the running job's live lease and did not
-- find it: JE004 (no job), JE001 (not running), JE002 (other or expired lease). A job the reaper
-- failed (and maybe rescheduled) after its lease expired answers JE002 too: what the late
-- holder needs to hear is that its lease expired, whether or not the reaper ran first.
create or replace function jobengine._lease_refused(p_id uuid, p_lease uuid, p_to jobengine.job_status)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_job jobengine.jobs;
begin
  select * into v_job from jobengine.jobs j where j.id = p_id;
  if not found then
    perform jobengine._not_found(p_id);
  end if;
  if v_job.status <> 'running' then
    if p_to is not null and v_job.status in ('failed', 'scheduled') and v_job.last_error ->> 'code' = 'lease_expired' then
      raise exception using
        errcode = 'JE002',
        message = format('Lease %s on job %s expired; the reaper failed the job, which is now %s', p_lease, p_id, v_job.status),
        detail = pg_catalog.json_build_object('jobId', p_id, 'status', v_job.status, 'reason', 'expired')::text;
    end if;
    if p_to is null then
      raise exception using
        errcode = 'JE002',
        message = format('Lease %s on job %s is no longer held: the job is %s', p_lease, p_id, v_job.status),
        detail = pg_catalog.json_build_object('jobId', p_id, 'status', v_job.status, 'reason', 'not_running')::text;
    end if;
    perform jobengine._invalid_transition(p_id, v_job.status, p_to);
  end if;
  if v_job.lease_id is distinct from p_lease then
    raise exception using
      errcode = 'JE002',
      message = format('Lease %s does not hold job %s', p_lease, p_id),
      detail = pg_catalog.json_build_object('jobId', p_id, 'status', v_job.status, 'reason', 'mismatch')::text;
  end if;
  raise exception using
    errcode = 'JE002',
    message = format('Lease %s on job %s expired at %s', p_lease, p_id, v_job.lease_expires_at),
    detail = pg_catalog.json_build_object('jobId', p_id, 'status', v_job.status, 'reason', 'expired',
      'leaseExpiresAt', v_job.lease_expires_at)::text;
end;
$$;

-- heartbeat_job: extends a live lease by p_lease_seconds from now; with p_lease_seconds null, by
-- the length the lease was granted for (by the claim or the last heartbeat, which also set
-- updated_at), so that a keep-alive never shortens a long lease.
create or replace function jobengine.heartbeat_job(p_id uuid, p_lease uuid, p_lease_seconds integer default null)
returns jobengine.jobs
language plpgsql
set search_path = ''
as $$
declare
  v_job jobengine.jobs;
begin
  if p_lease_seconds < 1 or p_lease_seconds > 86400 then
    perform jobengine._invalid_argument('p_lease_seconds', 'must be a whole number from 1 to 86400');
  end if;
  update jobengine.jobs j
     set lease_expires_at = pg_catalog.now() + coalesce(
           pg_catalog.make_interval(secs => p_lease_seconds),
           least(greatest(j.lease_expires_at - j.updated_at, interval '1 second'), interval '1 day')),
         updated_at = pg_catalog.now()
   where j.id = p_id and j.status = 'running' and j.lease_id = p_lease
     and j.lease_expires_at > pg_catalog.clock_timestamp()
  returning * into v_job;
  if not found then
    perform jobengine._lease_refused(p_id, p_lease, null);
  end if;
  return v_job;
end;
$$;

-- complete_job: running -> completed, lease holder only.
create or replace function jobengine.complete_job(p_id uuid, p_lease uuid, p_result jsonb default null)
returns jobengine.jobs
language plpgsql
set search_path = ''
as $$
declare
  v_job jobengine.jobs;
begin
  -- the batch's statement, for one job; when the lease did not hold, say why
  select * into v_job from jobengine.complete_jobs(array[p_id], array[p_lease], array[p_result]);
  if v_job.id is null then
    perform jobengine._lease_refused(p_id, p_lease, 'completed');
  end if;
  return v_job;
end;
$$;

-- complete_jobs' batch as rows, in id order. A function of its own for two reasons: the planner
-- takes it for 1 row (an unnest of a parameter looks like 10), so the UPDATE's generic plan is a
-- nested loop over the primary key even when it is made while `jobs` is empty or never analyzed
-- (a hash join over a sequential scan of `jobs` otherwise, kept for the session however large
-- the table grows); and a nested loop locks the jobs in this order, the order create_job and
-- create_workflow lock the jobs they depend on, so a batch cannot deadlock with such a create.
-- PL/pgSQL, not SQL: a SQL function is either inlined (back to the estimate of 10) or, kept out
-- of line, planned again on every call (+80 us per completion of one job; this costs nothing
-- measurable).
create or replace function jobengine._completions(p_ids uuid[], p_leases uuid[], p_results jsonb[])
returns table (id uuid, lease uuid, result jsonb)
language plpgsql
immutable
rows 1
set search_path = ''
as $$
begin
  return query
    select u.id, u.lease, u.result
      from rows from (pg_catalog.unnest(p_ids), pg_catalog.unnest(p_leases), pg_catalog.unnest(p_results))
        as u(id, lease, result)
     order by u.id;
end;
$$;

-- complete_jobs: a batch of completions in one statement (the worker runtime's fast path).
-- Returns the rows it completed; ids whose lease did not hold are left out (call complete_job
-- for those to learn why). The UPDATE's generic plan (a nested loop over the primary key) is
-- the plan every batch size gets anyway; left to choose, PostgreSQL plans small batches again
-- on every call, which cost a completion of 1-5 jobs a third of its time (docs/performance.md,
-- finding 17).
create or replace function jobengine.complete_jobs(p_ids uuid[], p_leases uuid[], p_results jsonb[])
returns setof jobengine.jobs
language plpgsql
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
begin
  if pg_catalog.cardinality(p_ids) <> pg_catalog.cardinality(p_leases)
     or pg_catalog.cardinality(p_ids) <> pg_catalog.cardinality(p_results) then
    perform jobengine._invalid_argument('p_ids', 'p_ids, p_leases and p_results must have the same length');
  end if;
  -- bookkept: the UPDATE sets reason and actor itself, so no _set_context
  perform jobengine._set_bookkept(true);
  return query
    update jobengine.jobs j
       set status = 'completed', result = c.result,
           version = j.version + 1, completed_at = pg_catalog.now(), updated_at = pg_catalog.now(),
           terminal = true, status_reason = 'completed', status_actor = j.lease_owner, blocked_reason = null,
           lease_id = null, lease_owner = null, lease_expires_at = null
      from jobengine._completions(p_ids, p_leases, p_results) as c
     -- a lease id is set only while running (running_has_lease); leaving `status = 'running'`
     -- out keeps the planner on the primary key instead of the partial lease index, whose
     -- statistics say "no running jobs" right after an ANALYZE and turn the join quadratic
     where j.id = c.id and j.lease_id = c.lease
       and j.lease_expires_at > pg_catalog.clock_timestamp()
    returning j.*;
  perform jobengine._set_bookkept(false);
end;
$$;

-- Moves jobs that just failed (and may retry) back to scheduled after their backoff.
create or replace function jobengine._reschedule_failed(p_ids uuid[], p_actor text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform jobengine._set_context('retry', p_actor);
  update jobengine.jobs j
     set status = 'scheduled',
         not_before = pg_catalog.now() + jobengine.retry_delay(j.retry_policy, j.attempt)
   where j.id = any (p_ids) and j.status = 'failed' and not j.terminal;
  perform jobengine._set_context(null, null);
end;
$$;

-- fail_job: running -> failed, lease holder only. While retries remain (attempt <= max_retries)
-- and p_retryable, the job moves on to scheduled with not_before = now() + backoff
-- (job.retry_scheduled); otherwise it stays failed with terminal = true.
create or replace function jobengine.fail_job(p_id uuid, p_lease uuid, p_error jsonb, p_retryable boolean default true)
returns jobengine.jobs
language plpgsql
set search_path = ''
as $$
declare
  v_job jobengine.jobs;
  v_error jsonb := coalesce(p_error, '{}'::jsonb);
begin
  if pg_catalog.jsonb_typeof(v_error) <> 'object' then
    v_error := pg_catalog.jsonb_build_object('message', v_error);
  end if;
  -- (an empty code is no code: the reason must not be empty, which reads as a raw UPDATE)
  perform jobengine._set_context(coalesce(nullif(v_error ->> 'code', ''), 'error'), null);
  update jobengine.jobs j
     set status = 'failed',
         last_error = v_error,
         terminal = not coalesce(p_retryable, true) or j.attempt > j.max_retries
   where j.id = p_id and j.status = 'running' and j.lease_id = p_lease
     and j.lease_expires_at > pg_catalog.clock_timestamp()
  returning * into v_job;
  perform jobengine._set_context(null, null);
  if v_job.id is null then
    perform jobengine._lease_refused(p_id, p_lease, 'failed');
  end if;
  if not v_job.terminal then
    perform jobengine._reschedule_failed(array[p_id], 'scheduler');
    select * into v_job from jobengine.jobs j where j.id = p_id;
  end if;
  return v_job;
end;
$$;

-- release_jobs: hands claimed jobs back, for a worker that stops before running (or finishing)
-- them: running -> failed (reason released, last_error code p_code) -> scheduled, due at once,
-- never terminal on account of the release. Lease holders only (a lease that does not hold is
-- left out); returns the ids released. A shutdown is not the job's failure: before session 9
-- the worker failed such jobs like any error, and one on its last attempt (every job, with
-- maxRetries 0), or one queued by prefetch that never started, ended failed for good. attempt
-- still counts the entry into running, so a released job's next failure may be its last.
create or replace function jobengine.release_jobs(p_ids uuid[], p_leases uuid[], p_code text default 'worker_shutdown')
returns setof uuid
language plpgsql
set search_path = ''
as $$
declare
  v_ids uuid[];
begin
  if pg_catalog.cardinality(p_ids) <> pg_catalog.cardinality(p_leases) then
    perform jobengine._invalid_argument('p_ids', 'p_ids and p_leases must have the same length');
  end if;
  -- the transition trigger keeps a released job out of the "no retry left" rule
  perform jobengine._set_context('released', null),
          pg_catalog.set_config('jobengine.releasing', 'on', true);
  with released as (
    update jobengine.jobs j
       set status = 'failed', terminal = false,
           last_error = pg_catalog.jsonb_build_object('code', coalesce(p_code, 'released'),
             'message', format('Released by %s before it finished', j.lease_owner))
      from rows from (pg_catalog.unnest(p_ids), pg_catalog.unnest(p_leases)) as u(id, lease)
     where j.id = u.id and j.lease_id = u.lease and j.status = 'running'
       and j.lease_expires_at > pg_catalog.clock_timestamp()
    returning j.id
  )
  select pg_catalog.array_agg(r.id) into v_ids from released r;
  perform pg_catalog.set_config('jobengine.releasing', '', true);
  if v_ids is not null then
    perform jobengine._set_context('released', 'scheduler');
    update jobengine.jobs j set status = 'scheduled', not_before = pg_catalog.now()
     where j.id = any (v_ids) and j.status = 'failed' and not j.terminal;
  end if;
  perform jobengine._set_context(null, null);
  return query select pg_catalog.unnest(v_ids);
end;
$$;

-- cancel_job: pending | scheduled | running -> cancelled. Pending dependents are cancelled too
-- (reason dependency_cancelled), by the dependency trigger.
create or replace function jobengine.cancel_job(p_id uuid, p_reason text default null, p_actor text default null)
returns jobengine.jobs
language plpgsql
set search_path = ''
as $$
declare
  v_job jobengine.jobs;
begin
  select * into v_job from jobengine.jobs j where j.id = p_id for update;
  if not found then
    perform jobengine._not_found(p_id);
  end if;
  -- the cascade's reasons: dependents of a job cancelled with dependency_failed would be cancelled
  -- as if something upstream had failed
  if p_reason in ('dependency_failed', 'dependency_cancelled') then
    perform jobengine._invalid_argument('reason',
      format('%s is set by the engine when a dependency ends; give another reason', p_reason));
  end if;
  perform jobengine._set_context(coalesce(p_reason, 'cancelled'), p_actor);
  -- the transition trigger refuses completed, failed and cancelled jobs (JE001)
  update jobengine.jobs j set status = 'cancelled' where j.id = p_id returning * into v_job;
  perform jobengine._set_context(null, null);
  return v_job;
end;
$$;

-- retry_job: failed -> scheduled, by an operator; runs the job once more now.
create or replace function jobengine.retry_job(p_id uuid, p_actor text default null)
returns jobengine.jobs
language plpgsql
set search_path = ''
as $$
declare
  v_job jobengine.jobs;
begin
  select * into v_job from jobengine.jobs j where j.id = p_id for update;
  if not found then
    perform jobengine._not_found(p_id);
  end if;
  if v_job.status <> 'failed' then
    perform jobengine._invalid_transition(p_id, v_job.status, 'scheduled',
      'retry_job retries failed jobs; use schedule_job for a pending one.');
  end if;
  perform jobengine._set_context('manual_retry', p_actor);
  update jobengine.jobs j set status = 'scheduled', not_before = pg_catalog.now()
   where j.id = p_id returning * into v_job;
  perform jobengine._set_context(null, null);
  return v_job;
end;
$$;

-- reap_expired_leases: fails every running job whose lease expired (reason lease_expired);
-- those with retries left are rescheduled per their policy. Returns how many were reaped.
create or replace function jobengine.reap_expired_leases()
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_ids uuid[];
  v_retry uuid[];
begin
  perform jobengine._set_context('lease_expired', 'reaper');
  with expired as (
    select j.id from jobengine.jobs j
     where j.status = 'running' and j.lease_expires_at <= pg_catalog.clock_timestamp()
       for update skip locked
  ), failed as (
    update jobengine.jobs j
       set status = 'failed',
           terminal = j.attempt > j.max_retries,
           last_error = pg_catalog.jsonb_build_object(
             'code', 'lease_expired',
             'message', format('Lease held by %s expired at %s', j.lease_owner, j.lease_expires_at),
             'leaseOwner', j.lease_owner)
      from expired e
     where j.id = e.id
    returning j.id, j.terminal
  )
  select pg_catalog.array_agg(f.id), pg_catalog.array_agg(f.id) filter (where not f.terminal)
    into v_ids, v_retry
    from failed f;
  perform jobengine._set_context(null, null);
  if v_retry is not null then
    perform jobengine._reschedule_failed(v_retry, 'reaper');
  end if;
  return coalesce(pg_catalog.cardinality(v_ids), 0);
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- record_egress_blocked: the network guard's refusal, as a sealed.egress_blocked event.
create or replace function jobengine.record_egress_blocked(
  p_host text, p_port integer, p_api text, p_job_id uuid default null, p_tenant text default null,
  p_actor text default null
)
returns jobengine.timeline_events
language plpgsql
set search_path = ''
as $$
declare
  v_event jobengine.timeline_events;
  v_tenant text := p_tenant;
  v_correlation text;
begin
  -- take a transaction id before the sequence value (see TimelineEventEmitter's gap handling)
  perform pg_catalog.pg_current_xact_id();
  if p_job_id is not null then
    select coalesce(j.tenant_id, p_tenant), j.correlation_id into v_tenant, v_correlation
      from (select) one left join jobengine.jobs j on j.id = p_job_id;
  end if;
  perform jobengine._engine_write(true);
  insert into jobengine.timeline_events (type, tenant_id, subject_kind, subject_id, correlation_id, actor, data)
  values ('sealed.egress_blocked', coalesce(v_tenant, 'default'), case when p_job_id is null then 'system' else 'job' end,
          p_job_id, v_correlation, coalesce(p_actor, 'network_guard'),
          pg_catalog.jsonb_build_object('host', p_host, 'port', p_port, 'api', p_api))
  returning * into v_event;
  perform jobengine._engine_write(false);
  perform jobengine._notify('jobengine_events', v_event.sequence::text);
  return v_event;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- acquire_leadership: takes or renews the named leadership lease for p_holder; true when
-- p_holder holds it afterwards. A lease that is not renewed expires after p_ttl_seconds and
-- another holder may take it.
create or replace function jobengine.acquire_leadership(p_name text, p_holder text, p_ttl_seconds integer)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  v_holder text;
begin
  if p_ttl_seconds is null or p_ttl_seconds < 1 or p_ttl_seconds > 3600 then
    perform jobengine._invalid_argument('p_ttl_seconds', 'must be a whole number from 1 to 3600');
  end if;
  insert into jobengine.leaders as l (name, holder, acquired_at, expires_at)
  values (p_name, p_holder, pg_catalog.clock_timestamp(),
          pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => p_ttl_seconds))
  on conflict (name) do update
     set holder = excluded.holder,
         acquired_at = case when l.holder = excluded.holder then l.acquired_at else excluded.acquired_at end,
         expires_at = excluded.expires_at
   where l.holder = excluded.holder or l.expires_at < pg_catalog.clock_timestamp()
  returning l.holder into v_holder;
  return v_holder is not null;
end;
$$;

-- release_leadership: gives the lease up at once (a clean shutdown), if p_holder holds it.
create or replace function jobengine.release_leadership(p_name text, p_holder text)
returns void
language sql
set search_path = ''
as $$
  delete from jobengine.leaders l where l.name = p_name and l.holder = p_holder;
$$;

-- next_wakeup: when the scheduler should look again: the next delayed job coming due or the
-- next lease expiring, whichever is sooner (null when neither).
create or replace function jobengine.next_wakeup()
returns timestamptz
language sql
stable
set search_path = ''
as $$
  select least(
    (select min(j.not_before) from jobengine.jobs j
      where j.status = 'scheduled' and j.not_before > j.created_at and j.not_before > pg_catalog.now()),
    (select min(j.lease_expires_at) from jobengine.jobs j where j.status = 'running'));
$$;
