-- Core helpers: transition context, sealed mode settings, retry policy.
-- Repeatable: re-applied whenever this file changes. Every function is `create or replace`.
--
-- SQLSTATEs (docs/state_machine.md, "SQLSTATEs"): JE001 invalid transition, JE002 lease mismatch or expired,
-- JE003 sealed mode, JE004 not found, JE005 invalid dependency, JE006 idempotency conflict,
-- JE007 dependencies pending, JE008 append-only record, JE009 invalid argument.

-- The reason and actor of the transitions made by the rest of the current statement sequence.
-- The BEFORE triggers copy them onto the job row and the AFTER triggers into job_history and
-- timeline_events. Lifecycle functions set them before each UPDATE and clear them afterwards
-- (the bookkept ones, see _set_bookkept, write reason and actor into the rows themselves);
-- a raw UPDATE from psql records no reason and the session user as actor.
--
-- The small helpers called on every lifecycle call (_set_context, _set_bookkept, is_sealed) are
-- PL/pgSQL without a `set search_path` clause (every name in them is qualified): a SQL-language
-- function that cannot be inlined is parsed and planned again in every transaction, and a SET
-- clause costs a GUC save and restore per call. Together that was about a tenth of a one-job
-- create_job call.
create or replace function jobengine._set_context(p_reason text, p_actor text)
returns void
language plpgsql
as $$
begin
  perform pg_catalog.set_config('jobengine.reason', coalesce(p_reason, ''), true),
          pg_catalog.set_config('jobengine.actor', coalesce(p_actor, ''), true);
end;
$$;

-- Marks the rest of the current statement sequence as bookkept: its writes to jobengine.jobs
-- set the bookkeeping columns themselves (version, attempt, timestamps, lease, reason, actor), so
-- the per-row BEFORE triggers stand aside (see 020_triggers.sql). Only the set-based hot paths
-- (claim_jobs_for, complete_job, complete_jobs, create_workflow's plain INSERT) use it. Whoever
-- sets it by hand still gets the transition rules: the AFTER statement trigger re-checks every
-- pair set-based.
create or replace function jobengine._set_bookkept(p_on boolean)
returns void
language plpgsql
as $$
begin
  perform pg_catalog.set_config('jobengine.bookkeeping', case when p_on then 'on' else '' end, true);
end;
$$;

-- Marks the rest of the transaction (until called with false) as the engine writing rows that
-- only it may write: dependency edges (create_job, create_workflow) and events outside the jobs
-- triggers (job.blocked from schedule_ready, sealed.egress_blocked). The INSERT guards on
-- job_dependencies and timeline_events let those through; a plain INSERT is refused (JE008).
create or replace function jobengine._engine_write(p_on boolean)
returns void
language plpgsql
as $$
begin
  perform pg_catalog.set_config('jobengine.engine_write', case when p_on then 'on' else '' end, true);
end;
$$;

-- Job ids: UUID version 7 (RFC 9562): 48-bit Unix time in milliseconds, the version, 12 bits of
-- sub-millisecond time (its method 3; clock_timestamp() has microseconds), the variant and 62
-- random bits. Jobs created one after another in one transaction share created_at, and the
-- claim's tie-break after it is the id: with the sub-millisecond bits, that is their creation
-- order (schema version 2 drew those 12 bits at random, so jobs created within one millisecond
-- were claimed in random order). PostgreSQL 18's uuidv7() has the same layout.
create or replace function jobengine._uuid_v7_high()
returns bytea
language plpgsql
volatile
as $$
declare
  v_ms numeric := extract(epoch from pg_catalog.clock_timestamp()) * 1000;
  v_whole bigint := pg_catalog.floor(v_ms);
begin
  return pg_catalog.int8send((v_whole << 16) | 28672 | pg_catalog.floor((v_ms - v_whole) * 4096)::bigint);
end;
$$;

create or replace function jobengine.uuid_v7()
returns uuid
language plpgsql
volatile
as $$
begin
  -- gen_random_uuid()'s last 8 bytes carry the variant bits already
  return pg_catalog.encode(jobengine._uuid_v7_high()
    || pg_catalog.substr(pg_catalog.uuid_send(pg_catalog.gen_random_uuid()), 9, 8), 'hex')::uuid;
end;
$$;

-- Raises JE009 with a message and the offending field.
create or replace function jobengine._invalid_argument(p_field text, p_message text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  raise exception using
    errcode = 'JE009',
    message = format('Invalid argument "%s": %s', p_field, p_message),
    detail = pg_catalog.json_build_object('field', p_field)::text;
end;
$$;

-- Raises JE004 for a job id.
create or replace function jobengine._not_found(p_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
begin
  raise exception using
    errcode = 'JE004',
    message = format('Job %s not found', p_id),
    detail = pg_catalog.json_build_object('jobId', p_id)::text;
end;
$$;

-- Raises JE001 for a refused (from, to) pair.
create or replace function jobengine._invalid_transition(
  p_id uuid, p_from jobengine.job_status, p_to jobengine.job_status, p_hint text default null
)
returns void
language plpgsql
set search_path = ''
as $$
begin
  raise exception using
    errcode = 'JE001',
    message = format('Cannot transition job %s to "%s": current status is "%s"', p_id, p_to, coalesce(p_from::text, '(new)')),
    detail = pg_catalog.json_build_object('jobId', p_id, 'from', p_from, 'to', p_to)::text,
    hint = coalesce(p_hint, 'See jobengine.job_transitions for the allowed pairs.');
end;
$$;

-- Raises JE007: p_id cannot be scheduled while p_pending of its dependencies are not completed.
create or replace function jobengine._dependencies_pending(p_id uuid, p_pending integer)
returns void
language plpgsql
set search_path = ''
as $$
begin
  raise exception using
    errcode = 'JE007',
    message = format('Cannot schedule job %s: %s dependencies not yet completed', p_id, p_pending),
    detail = pg_catalog.json_build_object('jobId', p_id, 'pendingDependencies', p_pending)::text;
end;
$$;

-- Sends a NOTIFY unless two other open transactions are already sending the same kind.
--
-- Why: PostgreSQL serialises the commits of notifying transactions (PreCommit_Notify takes a
-- database-wide lock and holds it through the commit's WAL flush), so a NOTIFY in every
-- transaction caps the whole engine at one commit per disk flush. Here at most two open
-- transactions per channel and kind notify at a time (non-blocking transaction-level advisory
-- locks, two slots: with one, a transaction that notified and stayed open silenced every other
-- commit until it ended); the others commit without notifying and group-commit freely. A listener woken
-- by the one that notified re-checks shortly afterwards (see src/db/wake.ts), which picks up the
-- transactions that committed just after it; the slow poll remains the last resort, and
-- nothing is ever lost (listeners read rows, never payloads).
create or replace function jobengine._notify(p_channel text, p_payload text, p_kind text default '')
returns void
language plpgsql
as $$
declare
  v_key integer := pg_catalog.hashtext(p_channel || '/' || p_kind);
begin
  -- two slots: one transaction that notified and then stays open (an operator's `begin` in
  -- psql) cannot silence the others; they take the second
  if pg_catalog.pg_try_advisory_xact_lock(1786240973, v_key)
     or pg_catalog.pg_try_advisory_xact_lock(1786240974, v_key) then
    perform pg_catalog.pg_notify(p_channel, p_payload);
  end if;
end;
$$;

create or replace function jobengine.is_sealed()
returns boolean
language plpgsql
stable
as $$
begin
  return coalesce((select s.value operator(pg_catalog.=) 'true'::jsonb from jobengine.settings s
                    where s.key operator(pg_catalog.=) 'sealed'), false);
end;
$$;

create or replace function jobengine.set_sealed(p_sealed boolean)
returns void
language plpgsql
set search_path = ''
as $$
begin
  if p_sealed is null then
    perform jobengine._invalid_argument('p_sealed', 'must be true or false');
  end if;
  insert into jobengine.settings as s (key, value, updated_at)
  values ('sealed', pg_catalog.to_jsonb(p_sealed), pg_catalog.now())
  on conflict (key) do update set value = excluded.value, updated_at = excluded.updated_at;
  -- (the settings trigger below tells every engine)
end;
$$;

-- AFTER any write to settings (statement): NOTIFY jobengine_ready 'sealed:<is_sealed()>', so
-- that every engine's network guard and scheduler follow the row whatever wrote it:
-- set_sealed(), or a plain UPDATE from psql (which the API's /system already reported while
-- the running guards did not see it, until session 9). Unsealing wakes the scheduler: blocked
-- jobs may be eligible.
create or replace function jobengine.tg_settings__notify_sealed()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  perform pg_catalog.pg_notify('jobengine_ready', 'sealed:' || jobengine.is_sealed()::text);
  return null;
end;
$$;
create or replace trigger _900_notify_sealed
  after insert or update or delete or truncate on jobengine.settings
  for each statement execute function jobengine.tg_settings__notify_sealed();

-- Validates a retry policy and fills in the defaults:
-- { maxRetries: 0..100 = 3, backoff: fixed|linear|exponential = exponential,
--   initialDelayMs: >= 0 = 1000, maxDelayMs: >= 0 = 300000, multiplier: >= 1 = 2, jitter: 0..1 = 0.1 }
-- p_max_retries (the top-level maxRetries option), when given, overrides policy.maxRetries.
create or replace function jobengine.normalize_retry_policy(p_policy jsonb, p_max_retries jsonb default null)
returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_policy jsonb := coalesce(p_policy, '{}'::jsonb);
  v_key text;
  v_max jsonb;
  v_result jsonb;
begin
  if pg_catalog.jsonb_typeof(v_policy) = 'null' then
    v_policy := '{}'::jsonb;
  end if;
  if pg_catalog.jsonb_typeof(v_policy) <> 'object' then
    perform jobengine._invalid_argument('retryPolicy', 'must be an object');
  end if;
  for v_key in select pg_catalog.jsonb_object_keys(v_policy) loop
    if v_key not in ('maxRetries', 'backoff', 'initialDelayMs', 'maxDelayMs', 'multiplier', 'jitter') then
      perform jobengine._invalid_argument('retryPolicy.' || v_key, 'is not a retry policy field');
    end if;
  end loop;
  v_max := coalesce(nullif(p_max_retries, 'null'::jsonb), v_policy -> 'maxRetries', '3'::jsonb);
  if pg_catalog.jsonb_typeof(v_max) <> 'number' or (v_max #>> '{}')::numeric not between 0 and 100
     or (v_max #>> '{}')::numeric % 1 <> 0 then
    perform jobengine._invalid_argument('maxRetries', 'must be a whole number from 0 to 100');
  end if;
  if v_policy ? 'backoff' and coalesce(v_policy ->> 'backoff', '') not in ('fixed', 'linear', 'exponential') then
    perform jobengine._invalid_argument('retryPolicy.backoff', 'must be "fixed", "linear" or "exponential"');
  end if;
  if v_policy ? 'initialDelayMs' and (pg_catalog.jsonb_typeof(v_policy -> 'initialDelayMs') <> 'number'
     or (v_policy ->> 'initialDelayMs')::numeric < 0 or (v_policy ->> 'initialDelayMs')::numeric > 86400000) then
    perform jobengine._invalid_argument('retryPolicy.initialDelayMs', 'must be a number from 0 to 86400000');
  end if;
  if v_policy ? 'maxDelayMs' and (pg_catalog.jsonb_typeof(v_policy -> 'maxDelayMs') <> 'number'
     or (v_policy ->> 'maxDelayMs')::numeric < 0 or (v_policy ->> 'maxDelayMs')::numeric > 31536000000) then
    perform jobengine._invalid_argument('retryPolicy.maxDelayMs', 'must be a number from 0 to 31536000000');
  end if;
  if v_policy ? 'multiplier' and (pg_catalog.jsonb_typeof(v_policy -> 'multiplier') <> 'number'
     or (v_policy ->> 'multiplier')::numeric < 1 or (v_policy ->> 'multiplier')::numeric > 100) then
    perform jobengine._invalid_argument('retryPolicy.multiplier', 'must be a number from 1 to 100');
  end if;
  if v_policy ? 'jitter' and (pg_catalog.jsonb_typeof(v_policy -> 'jitter') <> 'number'
     or (v_policy ->> 'jitter')::numeric not between 0 and 1) then
    perform jobengine._invalid_argument('retryPolicy.jitter', 'must be a number from 0 to 1');
  end if;
  v_result := pg_catalog.jsonb_build_object(
    -- as the integer it is (3.0 is 3: the column it fills is an integer)
    'maxRetries', pg_catalog.to_jsonb((v_max #>> '{}')::numeric::integer),
    'backoff', coalesce(v_policy -> 'backoff', '"exponential"'::jsonb),
    'initialDelayMs', coalesce(v_policy -> 'initialDelayMs', '1000'::jsonb),
    'maxDelayMs', coalesce(v_policy -> 'maxDelayMs', '300000'::jsonb),
    'multiplier', coalesce(v_policy -> 'multiplier', '2'::jsonb),
    'jitter', coalesce(v_policy -> 'jitter', '0.1'::jsonb)
  );
  return v_result;
end;
$$;

-- A retry policy written to a job row other than by create_job / create_workflow (a raw INSERT,
-- an UPDATE of retry_policy or max_retries): normalised like theirs, with the row's max_retries
-- as maxRetries. When both are given they must agree (JE009).
create or replace function jobengine._checked_retry_policy(p_policy jsonb, p_max_retries integer)
returns jsonb
language plpgsql
set search_path = ''
as $$
begin
  if p_policy is null then
    perform jobengine._invalid_argument('retry_policy', 'must not be null');
  end if;
  if pg_catalog.jsonb_typeof(p_policy) = 'object' and p_policy ? 'maxRetries' and p_max_retries is not null
     and p_policy -> 'maxRetries' is distinct from pg_catalog.to_jsonb(p_max_retries) then
    perform jobengine._invalid_argument('maxRetries',
      format('max_retries (%s) and retry_policy.maxRetries (%s) differ', p_max_retries, p_policy -> 'maxRetries'));
  end if;
  return jobengine.normalize_retry_policy(p_policy, pg_catalog.to_jsonb(p_max_retries));
end;
$$;

-- The delay before retry n (1-based), in whole milliseconds, without jitter.
-- fixed: initial; linear: initial * n; exponential: initial * multiplier^(n-1); capped at maxDelayMs.
-- The TypeScript twin is RetryPolicy.delayMs in src/job/retry_policy.ts.
create or replace function jobengine.retry_base_delay_ms(p_policy jsonb, p_n integer)
returns double precision
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_initial double precision := coalesce((p_policy ->> 'initialDelayMs')::double precision, 1000);
  v_max double precision := coalesce((p_policy ->> 'maxDelayMs')::double precision, 300000);
  v_multiplier double precision := coalesce((p_policy ->> 'multiplier')::double precision, 2);
  v_delay double precision;
begin
  if p_n is null or p_n < 1 then
    perform jobengine._invalid_argument('n', 'must be a whole number >= 1');
  end if;
  v_delay := case coalesce(p_policy ->> 'backoff', 'exponential')
    when 'fixed' then v_initial
    when 'linear' then v_initial * p_n
    -- past e^600 the delay is far beyond any cap: skip power() so huge n cannot overflow
    else case
      when v_initial = 0 then 0
      when (p_n - 1) * pg_catalog.ln(v_multiplier) > 600 then 'Infinity'::double precision
      else v_initial * pg_catalog.power(v_multiplier, (p_n - 1)::double precision)
    end
  end;
  return pg_catalog.floor(least(v_delay, v_max));
end;
$$;

-- The delay before retry n (1-based): the base delay spread uniformly within ± jitter * delay.
-- The parameters are named as SPEC section 2 writes them (policy, n), so that named calls work;
-- they were p_policy and p_n before, and a parameter name cannot change in place.
do $$
begin
  if exists (select from pg_catalog.pg_proc p
              where p.oid = pg_catalog.to_regprocedure('jobengine.retry_delay(jsonb, integer)')
                and p.proargnames[1] = 'p_policy') then
    drop function jobengine.retry_delay(jsonb, integer);
  end if;
end;
$$;
create or replace function jobengine.retry_delay(policy jsonb, n integer)
returns interval
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_policy jsonb := jobengine.normalize_retry_policy(policy);
  v_delay double precision := jobengine.retry_base_delay_ms(v_policy, n);
  v_jitter double precision := (v_policy ->> 'jitter')::double precision;
begin
  if v_jitter > 0 then
    v_delay := pg_catalog.floor(v_delay + (pg_catalog.random() * 2 - 1) * v_jitter * v_delay);
  end if;
  return pg_catalog.make_interval(secs => greatest(v_delay, 0) / 1000.0);
end;
$$;
