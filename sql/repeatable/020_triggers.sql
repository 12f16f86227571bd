-- Triggers: where the state machine is enforced and every transition is recorded.
--
-- jobs, BEFORE (row):  _100_check_insert / _100_check_transition refuse any pair not in
--                      jobengine.job_transitions (JE001) and keep the row's bookkeeping
--                      (version, attempt, timestamps, lease, reason, actor) consistent.
--                      _100_check_transition stands aside for rows whose statement bumped
--                      `version` itself: the hot paths (claim_jobs_for, complete_job[s]) set
--                      every bookkeeping column in one set-based UPDATE, which saves a PL/pgSQL
--                      call per row. Only a statement marked bookkept (jobengine._set_bookkept)
--                      may write `version` (_150_protect_bookkeeping), and every pair is checked
--                      again set-based after the statement, so no path skips the rules.
-- jobs, AFTER (statement, transition tables):
--                      _500_history   re-checks every transition of the statement (JE001, and
--                                     JE007 / JE008 for hand-made bookkeeping), then writes one
--                                     job_history row and one timeline_events row per
--                                     transition, then NOTIFY jobengine_events (max seq; coalesced,
--                                     see jobengine._notify)
--                      _600_dependencies  schedules dependents whose last dependency completed;
--                                     cancels pending dependents of cancelled / terminally
--                                     failed jobs, transitively
--                      _900_notify_ready  pg_notify('jobengine_ready', ...) when jobs become claimable
-- job_history, timeline_events: append-only (UPDATE, DELETE, TRUNCATE raise JE008); the
--                      statement triggers are on each of timeline_events' partitions as well,
--                      since a statement naming a partition does not fire its parent's.
-- jobs: never deleted (DELETE, TRUNCATE raise JE008): the history must keep its subject.
--
-- The trigger functions run once per row or statement on the hot path, so they carry no
-- `set search_path` clause (it costs a GUC save and restore per call and stops SQL functions
-- from being inlined); every name in them is schema-qualified instead. The statement-level
-- ones set `jit = off`: the planner cannot know that ids are unique in the transition tables,
-- so a statement of 10,000 rows looks like millions of joined rows and crosses jit_above_cost,
-- and compiling took longer (about 270 ms) than the whole query.

-- ---------------------------------------------------------------------------------------------
-- BEFORE INSERT: a job is born pending. create_job and create_workflow write rows already in
-- this shape (bookkept, so this trigger stands aside); what reaches it is a raw INSERT, which
-- gets the same checks as they make: a valid retry policy, and no dependencies (edges and their
-- counter are written only with the rows that create them: create_job, create_workflow).
create or replace function jobengine.tg_jobs__check_insert()
returns trigger
language plpgsql
as $$
begin
  if new.status is distinct from 'pending' then
    perform jobengine._invalid_transition(new.id, null, new.status, 'A job is created pending.');
  end if;
  if pg_catalog.cardinality(new.depends_on) > 0 or new.pending_dependencies <> 0 then
    raise exception using
      errcode = 'JE008',
      message = 'INSERT of a job with dependencies refused: use jobengine.create_job or create_workflow, '
        'which write the dependency rows with it',
      detail = pg_catalog.json_build_object('table', 'jobs', 'jobId', new.id)::text;
  end if;
  if new.max_retries is null then
    perform jobengine._invalid_argument('max_retries', 'must not be null');
  end if;
  -- max_retries at its column default (3) counts as not given when the policy names maxRetries
  new.retry_policy := jobengine._checked_retry_policy(new.retry_policy,
    case when new.max_retries = 3 and pg_catalog.jsonb_typeof(new.retry_policy) = 'object'
              and new.retry_policy ? 'maxRetries' then null else new.max_retries end);
  new.max_retries := (new.retry_policy ->> 'maxRetries')::integer;
  new.version := 1;
  new.attempt := 0;
  new.terminal := false;
  new.status_reason := nullif(pg_catalog.current_setting('jobengine.reason', true), '');
  new.status_actor := coalesce(nullif(pg_catalog.current_setting('jobengine.actor', true), ''), session_user);
  new.updated_at := new.created_at;
  return new;
end;
$$;

-- BEFORE UPDATE OF status: the transition check. Fires whenever status is in the SET list, so
-- `set status = status` (a self-transition) is refused too.
create or replace function jobengine.tg_jobs__check_transition()
returns trigger
language plpgsql
as $$
declare
  -- The transition's time: now(), the start of this transaction, unless the job's last change
  -- is later (a transaction that started before the create or the previous transition
  -- committed, such as a scheduler tick promoting a job created meanwhile): a job's times, its
  -- history and its events never go backwards.
  v_at timestamptz := greatest(pg_catalog.now(), old.updated_at);
begin
  perform from jobengine.job_transitions t
   where t.from_status = old.status and t.to_status = new.status;
  if not found then
    perform jobengine._invalid_transition(old.id, old.status, new.status);
  end if;
  if new.status = 'scheduled' and old.status = 'pending' then
    -- the counter is bookkeeping; the dependency rows are the truth
    if new.pending_dependencies > 0 or exists (
      select from jobengine.job_dependencies d
        join jobengine.jobs p on p.id = d.depends_on_id
       where d.job_id = old.id and p.status <> 'completed'
    ) then
      perform jobengine._dependencies_pending(old.id, new.pending_dependencies);
    end if;
    if new.requires_network and jobengine.is_sealed() then
      raise exception using
        errcode = 'JE003',
        message = format('Cannot schedule job %s: it requires the network and the engine is sealed', old.id),
        detail = pg_catalog.json_build_object('jobId', old.id, 'reason', 'sealed_mode')::text;
    end if;
  end if;

  new.version := old.version + 1;
  new.status_reason := nullif(pg_catalog.current_setting('jobengine.reason', true), '');
  -- the actor: the context's, else the lease holder for its own failure (fail_job sets a reason
  -- and no actor), else the database user (a raw UPDATE from psql: no context at all)
  new.status_actor := coalesce(nullif(pg_catalog.current_setting('jobengine.actor', true), ''),
    case when new.status in ('completed', 'failed') and new.status_reason is not null then old.lease_owner end,
    session_user);
  new.updated_at := v_at;
  new.blocked_reason := null;
  case new.status
    when 'scheduled' then
      new.scheduled_at := v_at;
      new.terminal := false;
    when 'running' then
      new.attempt := old.attempt + 1;
      new.started_at := v_at;
    when 'completed' then
      new.completed_at := v_at;
      new.terminal := true;
    when 'failed' then
      new.failed_at := v_at;
      -- no retry left: terminal, however the job failed (fail_job and the reaper compute the
      -- same and reschedule the others themselves)
      new.terminal := new.terminal or (old.attempt > old.max_retries
        and pg_catalog.current_setting('jobengine.releasing', true) is distinct from 'on');
      if new.status_reason is null then
        -- a raw UPDATE (no engine context): an operator's failure is terminal, like fail_job
        -- with retryable = false; nothing would reschedule it otherwise, and its dependents
        -- would wait for ever. retry_job runs it again.
        new.terminal := true;
        if new.last_error is not distinct from old.last_error then
          new.last_error := pg_catalog.jsonb_build_object('code', 'failed_by_update',
            'message', format('Set to failed by a direct UPDATE (database user %s)', session_user));
        end if;
      end if;
    when 'cancelled' then
      new.cancelled_at := v_at;
      new.terminal := true;
    else
      null;
  end case;
  if new.status <> 'running' then
    new.lease_id := null;
    new.lease_owner := null;
    new.lease_expires_at := null;
  end if;
  return new;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- The event type of a transition into p_to (from p_from).
create or replace function jobengine._event_type(p_from jobengine.job_status, p_to jobengine.job_status)
returns text
language sql
immutable
as $$
  select case p_to
    when 'pending' then 'job.created'
    when 'scheduled' then case when p_from = 'failed' then 'job.retry_scheduled' else 'job.scheduled' end
    when 'running' then 'job.started'
    when 'completed' then 'job.completed'
    when 'failed' then 'job.failed'
    when 'cancelled' then 'job.cancelled'
  end;
$$;

-- Event ids. A random UUID per event costs about 2.5 us here (pg_strong_random), as much as
-- the rest of the event row; the triggers instead take 8 random bytes once per statement and
-- append the event's own global sequence number, which is unique by construction. The result
-- is a well-formed version 8 UUID (RFC 9562): version nibble 8, variant bits 10 (sequence
-- numbers stay below 2^62).
create or replace function jobengine._event_id_prefix()
returns bytea
language plpgsql
volatile
as $$
declare
  b bytea := pg_catalog.substr(pg_catalog.uuid_send(pg_catalog.gen_random_uuid()), 1, 8);
begin
  return pg_catalog.set_byte(b, 6, (pg_catalog.get_byte(b, 6) & 15) | 128);
end;
$$;

-- A UUID from its first 8 bytes (version nibble included) and a number below 2^62 as the
-- last 62 bits, after the variant bits 10. Event ids: the statement's prefix and the event's
-- sequence; create_workflow's job ids: a time-ordered prefix and a random start plus the job's
-- position.
create or replace function jobengine._uuid_of(p_high bytea, p_low bigint)
returns uuid
language sql
immutable
as $$
  select pg_catalog.encode(p_high || pg_catalog.int8send(p_low | (-9223372036854775808)::bigint), 'hex')::uuid;
$$;
-- its name before schema version 3 (only the triggers below called it)
drop function if exists jobengine._event_id(bytea, bigint);

-- AFTER INSERT (statement): history and event for each created job.
create or replace function jobengine.tg_jobs__history_insert()
returns trigger
language plpgsql
set jit = off
as $$
declare
  v_max bigint;
  v_prefix bytea := jobengine._event_id_prefix();
begin
  with h as (
    insert into jobengine.job_history (job_id, seq, from_status, to_status, attempt, reason, actor, details, occurred_at)
    select n.id, n.version, null, n.status, n.attempt, n.status_reason, n.status_actor, '{}'::jsonb, n.created_at
      from new_rows n
  ), e as (
    insert into jobengine.timeline_events (sequence, id, type, tenant_id, subject_id, occurred_at, correlation_id, actor, data)
    select n.seq, jobengine._uuid_of(v_prefix, n.seq), 'job.created', n.tenant_id, n.id, n.created_at,
           n.correlation_id, n.status_actor,
           pg_catalog.jsonb_build_object(
             'to', n.status, 'type', n.type, 'priority', n.priority, 'dependsOn', pg_catalog.to_jsonb(n.depends_on),
             'requiresNetwork', n.requires_network, 'notBefore', n.not_before, 'reason', n.status_reason)
      from (select pg_catalog.nextval('jobengine.timeline_events_sequence_seq'::regclass) as seq, r.*
              from new_rows r) n
    returning sequence
  )
  select max(e.sequence) into v_max from e;
  if v_max is not null then
    perform jobengine._notify('jobengine_events', v_max::text);
  end if;
  return null;
end;
$$;

-- AFTER UPDATE (statement): checks every transition of the statement, then writes history and
-- an event for each row whose status changed.
--
-- Its statements join the two transition tables on id. PL/pgSQL plans them once per session,
-- at the first call, for the sizes of that call (a statement without parameters never gets a
-- custom plan): a first call with one row gave a nested loop over the two tables that every
-- later statement of the session reused, quadratic in its rows (a completion that schedules
-- 10,000 dependents took 90 s). enable_nestloop = off leaves hash and merge joins, linear for
-- any size; nothing here wants a nested loop (job_transitions is probed by a subplan).
create or replace function jobengine.tg_jobs__history_update()
returns trigger
language plpgsql
set jit = off
set enable_nestloop = off
as $$
declare
  v_max bigint;
  v_prefix bytea;
  v_id uuid;
  v_from jobengine.job_status;
  v_to jobengine.job_status;
  v_pending integer;
  v_step integer;
begin
  -- The rules, set-based, for every row whose version moved (every transition moves it). Rows
  -- that went through _100_check_transition pass trivially; this is what holds rows whose
  -- statement did its own bookkeeping to the same rules. No LIMIT: with one, the planner
  -- expects an early match and picks a nested loop over the two transition tables, which is
  -- quadratic when (as always, unless something is wrong) no row matches; SELECT INTO stops
  -- at the first row anyway.
  select o.id, o.status, n.status, n.pending_dependencies, n.version - o.version
    into v_id, v_from, v_to, v_pending, v_step
    from new_rows n
    join old_rows o on o.id = n.id
   where n.version is distinct from o.version
     and (n.version is distinct from o.version + 1
       or (o.status = 'pending' and n.status = 'scheduled' and n.pending_dependencies > 0)
       or not exists (
            select from jobengine.job_transitions t where t.from_status = o.status and t.to_status = n.status));
  if found then
    if not exists (select from jobengine.job_transitions t where t.from_status = v_from and t.to_status = v_to) then
      perform jobengine._invalid_transition(v_id, v_from, v_to);
    end if;
    if v_step is distinct from 1 then
      raise exception using
        errcode = 'JE008',
        message = format('UPDATE of job %s refused: version must move by exactly 1 per transition', v_id),
        detail = pg_catalog.json_build_object('table', 'jobs', 'jobId', v_id)::text;
    end if;
    perform jobengine._dependencies_pending(v_id, v_pending);
  end if;

  v_prefix := jobengine._event_id_prefix();
  with changed as materialized (
    -- only what history and events need: payload and result can be large
    select n.id, n.version, n.status, n.attempt, n.status_reason, n.status_actor, n.lease_owner,
           n.lease_expires_at, n.last_error, n.terminal, n.not_before, n.completed_at, n.updated_at,
           n.tenant_id, n.correlation_id, n.type, o.status as from_status,
           pg_catalog.nextval('jobengine.timeline_events_sequence_seq'::regclass) as seq
      from new_rows n
      join old_rows o on o.id = n.id
     where o.status is distinct from n.status
  ), h as (
    insert into jobengine.job_history (job_id, seq, from_status, to_status, attempt, reason, actor, details, occurred_at)
    select c.id, c.version, c.from_status, c.status, c.attempt, c.status_reason, c.status_actor,
           case c.status
             when 'running' then pg_catalog.jsonb_build_object('leaseOwner', c.lease_owner, 'leaseExpiresAt', c.lease_expires_at)
             when 'failed' then pg_catalog.jsonb_build_object('error', c.last_error, 'terminal', c.terminal)
             when 'scheduled' then pg_catalog.jsonb_build_object('notBefore', c.not_before)
             when 'completed' then pg_catalog.jsonb_build_object('completedAt', c.completed_at)
             else '{}'::jsonb
           end,
           c.updated_at
      from changed c
  ), e as (
    insert into jobengine.timeline_events (sequence, id, type, tenant_id, subject_id, occurred_at, correlation_id, actor, data)
    select c.seq, jobengine._uuid_of(v_prefix, c.seq), jobengine._event_type(c.from_status, c.status), c.tenant_id,
           c.id, c.updated_at, c.correlation_id, c.status_actor,
           -- the common shapes built directly; jsonb_strip_nulls only when something may be null
           case
             when c.status_reason is null or c.status = 'failed' then
               pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                 'from', c.from_status, 'to', c.status, 'type', c.type, 'attempt', c.attempt, 'reason', c.status_reason,
                 'leaseOwner', case when c.status = 'running' then c.lease_owner end,
                 'notBefore', case when c.status = 'scheduled' then c.not_before end,
                 'error', case when c.status = 'failed' then c.last_error end,
                 'terminal', case when c.status in ('failed', 'completed', 'cancelled') then c.terminal end))
             when c.status = 'running' then
               pg_catalog.jsonb_build_object('from', c.from_status, 'to', c.status, 'type', c.type,
                 'attempt', c.attempt, 'reason', c.status_reason, 'leaseOwner', c.lease_owner)
             when c.status = 'scheduled' then
               pg_catalog.jsonb_build_object('from', c.from_status, 'to', c.status, 'type', c.type,
                 'attempt', c.attempt, 'reason', c.status_reason, 'notBefore', c.not_before)
             when c.status in ('completed', 'cancelled') then
               pg_catalog.jsonb_build_object('from', c.from_status, 'to', c.status, 'type', c.type,
                 'attempt', c.attempt, 'reason', c.status_reason, 'terminal', c.terminal)
             else
               pg_catalog.jsonb_build_object('from', c.from_status, 'to', c.status, 'type', c.type,
                 'attempt', c.attempt, 'reason', c.status_reason)
           end
      from changed c
    returning sequence
  )
  select max(e.sequence) into v_max from e;
  if v_max is not null then
    perform jobengine._notify('jobengine_events', v_max::text);
  end if;
  return null;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- Moves pending jobs whose dependencies all completed to scheduled (or marks them blocked when
-- they need the network and the engine is sealed). Shared by schedule_ready and the
-- dependency trigger. Returns how many were scheduled.
create or replace function jobengine._schedule_eligible(p_ids uuid[], p_limit integer, p_reason text, p_actor text)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_sealed boolean := jobengine.is_sealed();
  v_count integer;
begin
  if v_sealed then
    perform jobengine._engine_write(true);
    with blocked as (
      update jobengine.jobs j
         set blocked_reason = 'sealed_mode', updated_at = greatest(pg_catalog.now(), j.updated_at)
       where j.status = 'pending' and j.pending_dependencies = 0 and j.requires_network
         and j.blocked_reason is null
         and (p_ids is null or j.id = any (p_ids))
      returning j.id, j.tenant_id, j.correlation_id, j.type
    ), e as (
      insert into jobengine.timeline_events (type, tenant_id, subject_id, correlation_id, actor, data)
      select 'job.blocked', b.tenant_id, b.id, b.correlation_id, coalesce(p_actor, 'scheduler'),
             pg_catalog.jsonb_build_object('reason', 'sealed_mode', 'type', b.type)
        from blocked b
      returning sequence
    )
    select max(e.sequence) into v_count from e;
    perform jobengine._engine_write(false);
    if v_count is not null then
      perform jobengine._notify('jobengine_events', v_count::text);
    end if;
  end if;

  perform jobengine._set_context(p_reason, p_actor);
  with eligible as (
    select j.id
      from jobengine.jobs j
     where j.status = 'pending' and j.pending_dependencies = 0
       and (not v_sealed or not j.requires_network)
       and (p_ids is null or j.id = any (p_ids))
     order by j.created_at, j.id
     limit p_limit
       for update skip locked
  )
  update jobengine.jobs j
     set status = 'scheduled'
    from eligible
   where j.id = eligible.id;
  get diagnostics v_count = row_count;
  perform jobengine._set_context(null, null);
  return v_count;
end;
$$;

-- Cancels every pending job downstream of p_roots (transitively) with p_reason, in one
-- statement, so the dependency trigger's own nesting stays bounded for any chain length.
create or replace function jobengine._cancel_downstream(p_roots uuid[], p_reason text)
returns void
language plpgsql
as $$
declare
  v_ids uuid[];
begin
  perform jobengine._set_context(p_reason, 'scheduler');
  -- Each step finds the next jobs through the reverse index: the subquery (kept apart by
  -- OFFSET 0) is run per job found, so a chain of n jobs costs n index probes. As a plain join
  -- the planner may hash all of job_dependencies once per step (it cannot know the depth), and a
  -- chain of 10,000 took 32 s instead of 0.7 s.
  with recursive downstream(id) as (
    select d.job_id from jobengine.job_dependencies d where d.depends_on_id = any (p_roots)
    union
    select x.job_id
      from downstream,
           lateral (select d.job_id from jobengine.job_dependencies d
                     where d.depends_on_id = downstream.id offset 0) x
  )
  select pg_catalog.array_agg(downstream.id) into v_ids from downstream;
  -- Locked in id order first: two jobs of one fan-in ending at once in two transactions
  -- cancel their shared dependents in the same order, so one waits for the other instead of
  -- the two deadlocking (an UPDATE from a join takes its rows in whatever order the join gives).
  perform from jobengine.jobs j
    where j.id = any (v_ids) and j.status = 'pending'
    order by j.id
      for update of j;
  update jobengine.jobs j
     set status = 'cancelled'
   where j.id = any (v_ids) and j.status = 'pending';
end;
$$;

-- AFTER UPDATE (statement): dependency bookkeeping.
create or replace function jobengine.tg_jobs__dependencies()
returns trigger
language plpgsql
set jit = off
as $$
declare
  v_completed uuid[];
  v_ready uuid[];
  v_failed uuid[];
  v_cancelled uuid[];
  v_nestloop text := pg_catalog.current_setting('enable_nestloop');
begin
  -- A join of the two transition tables, planned once per session for the first call's sizes:
  -- no nested loop for it (see tg_jobs__history_update). Only for this statement: the ones below
  -- find jobs by primary key and want nested loops.
  perform pg_catalog.set_config('enable_nestloop', 'off', true);
  -- a job cancelled because something upstream failed passes dependency_failed on
  select pg_catalog.array_agg(n.id) filter (where n.status = 'completed'),
         pg_catalog.array_agg(n.id) filter (
           where n.status = 'failed' or n.status_reason is not distinct from 'dependency_failed'),
         pg_catalog.array_agg(n.id) filter (
           where n.status = 'cancelled' and n.status_reason is distinct from 'dependency_failed')
    into v_completed, v_failed, v_cancelled
    from new_rows n join old_rows o on o.id = n.id
   where (n.status = 'completed' and o.status <> 'completed')
      or (n.status = 'failed' and n.terminal and (o.status <> 'failed' or not o.terminal))
      or (n.status = 'cancelled' and o.status <> 'cancelled');
  perform pg_catalog.set_config('enable_nestloop', v_nestloop, true);
  -- most statements (claims, heartbeats, retries, and this trigger's own updates) stop here
  if v_completed is null and v_failed is null and v_cancelled is null then
    return null;
  end if;

  -- 1. completions: count down dependents, schedule the ones that reach zero (most jobs have no
  --    dependents: one index probe, and no nested UPDATE that would fire these triggers again)
  if v_completed is not null and exists (
    select from jobengine.job_dependencies d where d.depends_on_id = any (v_completed)
  ) then
    -- The dependents are locked in id order before they are counted down: the jobs of a fan-in
    -- completing at once in several transactions then take their shared dependents in the same
    -- order and wait for each other, where the UPDATE below (rows in its join's order)
    -- deadlocked them, losing completions (40P01).
    perform from jobengine.jobs j
      where j.id in (select d.job_id from jobengine.job_dependencies d
                      where d.depends_on_id = any (v_completed))
        and j.status = 'pending'
      order by j.id
        for update of j;
    with counts as (
      select d.job_id, count(*)::integer as n
        from jobengine.job_dependencies d
       where d.depends_on_id = any (v_completed)
       group by d.job_id
    ), updated as (
      update jobengine.jobs j
         set pending_dependencies = j.pending_dependencies - counts.n,
             updated_at = greatest(pg_catalog.now(), j.updated_at)
        from counts
       where j.id = counts.job_id and j.status = 'pending'
      returning j.id, j.pending_dependencies
    )
    select pg_catalog.array_agg(u.id) into v_ready from updated u where u.pending_dependencies = 0;
    if v_ready is not null then
      perform jobengine._schedule_eligible(v_ready, null, 'dependencies_completed', 'scheduler');
    end if;
  end if;

  -- 2. terminal failures and cancellations: cancel pending dependents, transitively
  if v_failed is null and v_cancelled is null then
    return null;
  end if;
  if not exists (
    select from jobengine.job_dependencies d
     where d.depends_on_id = any (coalesce(v_failed, '{}') || coalesce(v_cancelled, '{}'))
  ) then
    return null;
  end if;

  -- every pending job downstream of a terminally failed job: dependency_failed; downstream of
  -- a cancelled one: dependency_cancelled (the reason names how the root ended). One statement
  -- per reason covers the whole closure, so the trigger's own nesting stays bounded.
  if v_failed is not null then
    perform jobengine._cancel_downstream(v_failed, 'dependency_failed');
  end if;
  if v_cancelled is not null then
    perform jobengine._cancel_downstream(v_cancelled, 'dependency_cancelled');
  end if;
  perform jobengine._set_context(null, null);
  return null;
end;
$$;

-- AFTER INSERT OR UPDATE (statement): wake idle workers when jobs become claimable.
-- enable_nestloop = off: its join of the transition tables, as in tg_jobs__history_update.
create or replace function jobengine.tg_jobs__notify_ready()
returns trigger
language plpgsql
set jit = off
set enable_nestloop = off
as $$
begin
  if tg_op = 'UPDATE' then
    if exists (
      select from new_rows n join old_rows o on o.id = n.id
       where n.status = 'scheduled' and o.status <> 'scheduled'
    ) then
      perform jobengine._notify('jobengine_ready', 'scheduled', 'scheduled');
    end if;
  elsif exists (select from new_rows) then
    -- new pending jobs: the scheduler promotes them
    perform jobengine._notify('jobengine_ready', 'created', 'created');
  end if;
  return null;
end;
$$;

-- ---------------------------------------------------------------------------------------------
create or replace function jobengine.tg__append_only()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception using
    errcode = 'JE008',
    message = format('%s on jobengine.%s is refused: %s', tg_op, tg_table_name,
      case when tg_table_name = 'jobs' then 'a job with history is never deleted'
           else 'the table is append-only' end),
    detail = pg_catalog.json_build_object('table', tg_table_name, 'operation', tg_op)::text;
end;
$$;

-- BEFORE UPDATE OF retry_policy, max_retries: an operator may change a job's policy (more
-- retries, a longer backoff), but only to one that create_job would take: the reaper and
-- fail_job compute every retry from it, and one unreadable policy would stop the reaper for
-- every job (JE009).
create or replace function jobengine.tg_jobs__check_retry_policy()
returns trigger
language plpgsql
as $$
begin
  if new.max_retries is null then
    perform jobengine._invalid_argument('max_retries', 'must not be null');
  end if;
  if new.max_retries is distinct from old.max_retries then
    -- the count, and the policy with it (a policy written in the same statement must agree)
    new.retry_policy := jobengine._checked_retry_policy(
      case when new.retry_policy is not distinct from old.retry_policy
        then new.retry_policy - 'maxRetries' else new.retry_policy end,
      new.max_retries);
  else
    -- the policy; its maxRetries, when it names one, becomes the count
    new.retry_policy := jobengine._checked_retry_policy(new.retry_policy,
      case when pg_catalog.jsonb_typeof(new.retry_policy) = 'object' and new.retry_policy ? 'maxRetries'
        then null else old.max_retries end);
  end if;
  new.max_retries := (new.retry_policy ->> 'maxRetries')::integer;
  return new;
end;
$$;

-- The bookkeeping columns are the triggers' to keep: a statement from a client (trigger depth
-- 1) may not set them. Their values follow from the history (attempt, version), from the
-- dependency rows (pending_dependencies) or never change (identity, tenant, type, request).
-- (priority, payload and created_at stay editable: they order work, they break no rule.)
create or replace function jobengine.tg_jobs__protect_bookkeeping()
returns trigger
language plpgsql
as $$
begin
  -- a bookkept statement (jobengine._set_bookkept) moves attempt and version itself; nothing
  -- moves the identity columns
  if pg_catalog.pg_trigger_depth() = 1 and (
       new.id is distinct from old.id or new.tenant_id is distinct from old.tenant_id
    or new.type is distinct from old.type
    or new.pending_dependencies is distinct from old.pending_dependencies
    or new.depends_on is distinct from old.depends_on
    or new.idempotency_key is distinct from old.idempotency_key
    or new.request_hash is distinct from old.request_hash
    or (pg_catalog.current_setting('jobengine.bookkeeping', true) is distinct from 'on' and (
          new.attempt is distinct from old.attempt or new.version is distinct from old.version))
  ) then
    raise exception using
      errcode = 'JE008',
      message = format('UPDATE of job %s refused: its identity and bookkeeping columns (attempt, version, '
        'pending_dependencies, ...) are maintained by jobengine, not written directly', old.id),
      detail = pg_catalog.json_build_object('table', 'jobs', 'jobId', old.id)::text;
  end if;
  return new;
end;
$$;

-- `terminal` moves with the status only (the transition trigger and the lifecycle functions set
-- it): a failed job made non-terminal by hand would hold its dependents pending for ever, being
-- neither retried nor a dead dependency.
create or replace function jobengine.tg_jobs__terminal_with_status()
returns trigger
language plpgsql
as $$
begin
  raise exception using
    errcode = 'JE008',
    message = format('UPDATE of job %s refused: terminal changes only with the status (%s, terminal %s)',
      old.id, old.status, old.terminal),
    detail = pg_catalog.json_build_object('table', 'jobs', 'jobId', old.id, 'column', 'terminal')::text;
end;
$$;

-- jobengine.job_transitions is the SQL twin of TRANSITIONS: only its generated migration
-- (which declares itself with jobengine.migrating = 'on') may rewrite it.
create or replace function jobengine.tg_job_transitions__generated_only()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if pg_catalog.current_setting('jobengine.migrating', true) is distinct from 'on' then
    raise exception using
      errcode = 'JE008',
      message = format('%s on jobengine.job_transitions is refused: the allowed pairs come from TRANSITIONS '
        'in src/job/state_machine.ts (deno task gen)', tg_op),
      detail = pg_catalog.json_build_object('table', 'job_transitions', 'operation', tg_op)::text;
  end if;
  return null;
end;
$$;

-- Rows of job_history are written only by the jobs triggers.
create or replace function jobengine.tg_job_history__insert_by_trigger_only()
returns trigger
language plpgsql
as $$
begin
  if pg_catalog.pg_trigger_depth() < 2 then
    raise exception using
      errcode = 'JE008',
      message = 'INSERT on jobengine.job_history is refused: history is written only by the jobs triggers',
      detail = pg_catalog.json_build_object('table', 'job_history', 'operation', 'INSERT')::text;
  end if;
  return null;
end;
$$;

create or replace trigger _100_check_insert
  before insert on jobengine.jobs
  for each row
  -- a bookkept INSERT (create_workflow) brings rows already in the shape this trigger gives
  when (pg_catalog.current_setting('jobengine.bookkeeping', true) is distinct from 'on'
    or new.status is distinct from 'pending' or new.version is distinct from 1
    or new.attempt is distinct from 0 or new.terminal or new.status_actor is null
    or new.updated_at is distinct from new.created_at)
  execute function jobengine.tg_jobs__check_insert();
create or replace trigger _100_check_transition
  before update of status on jobengine.jobs
  for each row
  when (new.version = old.version)
  execute function jobengine.tg_jobs__check_transition();
create or replace trigger _500_history_insert
  after insert on jobengine.jobs
  referencing new table as new_rows
  for each statement execute function jobengine.tg_jobs__history_insert();
create or replace trigger _500_history_update
  after update on jobengine.jobs
  referencing old table as old_rows new table as new_rows
  for each statement execute function jobengine.tg_jobs__history_update();
create or replace trigger _600_dependencies
  after update on jobengine.jobs
  referencing old table as old_rows new table as new_rows
  for each statement execute function jobengine.tg_jobs__dependencies();
create or replace trigger _900_notify_ready_insert
  after insert on jobengine.jobs
  referencing new table as new_rows
  for each statement execute function jobengine.tg_jobs__notify_ready();
create or replace trigger _900_notify_ready_update
  after update on jobengine.jobs
  referencing old table as old_rows new table as new_rows
  for each statement execute function jobengine.tg_jobs__notify_ready();
create or replace trigger _100_no_delete
  before delete on jobengine.jobs
  for each statement execute function jobengine.tg__append_only();
create or replace trigger _100_no_truncate
  before truncate on jobengine.jobs
  for each statement execute function jobengine.tg__append_only();

create or replace trigger _120_check_retry_policy
  before update of retry_policy, max_retries on jobengine.jobs
  for each row
  when (new.retry_policy is distinct from old.retry_policy or new.max_retries is distinct from old.max_retries)
  execute function jobengine.tg_jobs__check_retry_policy();
create or replace trigger _150_protect_bookkeeping
  before update of id, tenant_id, type, attempt, version, pending_dependencies, depends_on,
    idempotency_key, request_hash on jobengine.jobs
  for each row
  -- (the same test as the function's, so bookkept statements skip the PL/pgSQL call per row)
  when (pg_catalog.current_setting('jobengine.bookkeeping', true) is distinct from 'on'
    or new.id is distinct from old.id or new.tenant_id is distinct from old.tenant_id
    or new.type is distinct from old.type
    or new.pending_dependencies is distinct from old.pending_dependencies
    or new.depends_on is distinct from old.depends_on
    or new.idempotency_key is distinct from old.idempotency_key
    or new.request_hash is distinct from old.request_hash)
  execute function jobengine.tg_jobs__protect_bookkeeping();
create or replace trigger _160_terminal_with_status
  before update of terminal on jobengine.jobs
  for each row
  when (new.terminal is distinct from old.terminal and new.status = old.status)
  execute function jobengine.tg_jobs__terminal_with_status();
create or replace trigger _100_generated_only
  before insert or update or delete or truncate on jobengine.job_transitions
  for each statement execute function jobengine.tg_job_transitions__generated_only();

-- BEFORE INSERT (statement) on job_dependencies and timeline_events: only the engine writes
-- them: the jobs triggers (events; trigger depth 2 here) and the functions that mark their
-- writes with _engine_write (edges, job.blocked, sealed.egress_blocked). A forged edge would
-- hold a dependent back or form a cycle; a forged event would tell listeners of a transition
-- that never happened.
create or replace function jobengine.tg__engine_writes_only()
returns trigger
language plpgsql
as $$
begin
  if pg_catalog.pg_trigger_depth() < 2
     and pg_catalog.current_setting('jobengine.engine_write', true) is distinct from 'on' then
    raise exception using
      errcode = 'JE008',
      message = format('INSERT on jobengine.%s is refused: %s', tg_table_name,
        case when tg_table_name = 'job_dependencies'
             then 'dependencies are written by create_job and create_workflow'
             else 'events are written by the engine''s triggers and functions' end),
      detail = pg_catalog.json_build_object('table', tg_table_name, 'operation', 'INSERT')::text;
  end if;
  return null;
end;
$$;

create or replace trigger _100_engine_writes_only
  before insert on jobengine.job_dependencies
  for each statement execute function jobengine.tg__engine_writes_only();
create or replace trigger _100_append_only
  before update or delete on jobengine.job_dependencies
  for each statement execute function jobengine.tg__append_only();
create or replace trigger _100_no_truncate
  before truncate on jobengine.job_dependencies
  for each statement execute function jobengine.tg__append_only();

create or replace trigger _100_append_only
  before update or delete on jobengine.job_history
  for each statement execute function jobengine.tg__append_only();
create or replace trigger _100_no_truncate
  before truncate on jobengine.job_history
  for each statement execute function jobengine.tg__append_only();
create or replace trigger _100_insert_by_trigger_only
  before insert on jobengine.job_history
  for each statement execute function jobengine.tg_job_history__insert_by_trigger_only();

-- on the table and on each of its partitions: a statement naming a partition does not fire the
-- parent's statement triggers
do $$
declare
  v_table regclass;
begin
  for v_table in
    select 'jobengine.timeline_events'::regclass
    union all
    select i.inhrelid::regclass from pg_catalog.pg_inherits i
     where i.inhparent = 'jobengine.timeline_events'::regclass
  loop
    execute format('create or replace trigger _100_append_only before update or delete on %s '
                   'for each statement execute function jobengine.tg__append_only()', v_table);
    execute format('create or replace trigger _100_no_truncate before truncate on %s '
                   'for each statement execute function jobengine.tg__append_only()', v_table);
    execute format('create or replace trigger _100_engine_writes_only before insert on %s '
                   'for each statement execute function jobengine.tg__engine_writes_only()', v_table);
  end loop;
end;
$$;
