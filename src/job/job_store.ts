/**
 * The typed TypeScript face of the SQL lifecycle API (SPEC section 4). Each method calls one
 * `jobengine.*` function with named arguments and explicit casts; the rules live in SQL. The
 * HTTP API, the worker runtime, the scheduler and the CLI all go through this class.
 *
 * @module
 */
import type { Queryable, Row } from "../db/port.ts";
import {
  fromDatabaseError,
  InvalidArgumentError,
  InvalidTransitionError,
  JobNotFoundError,
} from "../errors.ts";
import {
  type ClaimedJob,
  type EventEnvelope,
  type HistoryEntry,
  type Job,
  rowToClaimedJob,
  rowToEvent,
  rowToHistoryEntry,
  rowToJob,
} from "./job.ts";
import type { RetryPolicyInput } from "./retry_policy.ts";
import { CreateGroup, type CreateGroupLimits, groupable } from "./_create_group.ts";
import { assertTransition, type JobStatus } from "./state_machine.ts";

export type { CreateGroupLimits };

/**
 * A job named by its id, or given as last read (a {@linkcode Job} or anything with its `id` and
 * `status`). Given a status, the lifecycle methods refuse a move the state table does not allow
 * before any round trip (SPEC section 1: `InvalidTransitionError`, `JE001`); the database checks
 * again against the job's current status either way, since the one given may be stale.
 */
export type JobRef = string | { readonly id: string; readonly status: JobStatus };

/**
 * Runs `call` with `ref`'s id, after the state table's check of `ref.status` -> `to` when `ref`
 * has a status (`from` narrows the pairs to the one the operation makes, as the SQL function
 * does: schedule is pending -> scheduled, retry failed -> scheduled). A refused move is a
 * rejected promise, like the database's refusal, and sends nothing.
 */
function withChecked<T>(
  ref: JobRef,
  to: JobStatus,
  call: (id: string) => Promise<T>,
  from?: JobStatus,
): Promise<T> {
  if (typeof ref === "string") return call(ref);
  try {
    if (from !== undefined && ref.status !== from) {
      throw new InvalidTransitionError(ref.status, to, { jobId: ref.id });
    }
    assertTransition(ref.status, to, ref.id);
  } catch (error) {
    return Promise.reject(error);
  }
  return call(ref.id);
}

/** Options of {@linkcode JobStore.create} (SPEC section 4, `create_job` options). */
export interface CreateJobOptions {
  tenantId?: string;
  priority?: number;
  dependsOn?: readonly string[];
  retryPolicy?: RetryPolicyInput;
  maxRetries?: number;
  /** When it may run first; absent or null: now. */
  notBefore?: string | Date | null;
  requiresNetwork?: boolean;
  idempotencyKey?: string;
  correlationId?: string;
  actor?: string;
}

/** One job of a workflow: refers to the others by `ref`. */
export interface WorkflowJobInput {
  ref: string;
  type: string;
  payload?: unknown;
  dependsOn?: readonly string[];
  priority?: number;
  retryPolicy?: RetryPolicyInput;
  maxRetries?: number;
  /** When it may run first; absent or null: now. */
  notBefore?: string | Date | null;
  requiresNetwork?: boolean;
  correlationId?: string;
}

/** Options of {@linkcode JobStore.createWorkflow}. */
export interface WorkflowOptions {
  tenantId?: string;
  correlationId?: string;
  actor?: string;
}

/** Options of {@linkcode JobStore.claim}. */
export interface ClaimOptions {
  workerId: string;
  types?: readonly string[] | null;
  limit?: number;
  leaseSeconds?: number;
  /** Only this tenant's jobs; every tenant's when absent. */
  tenantId?: string | null;
}

/** Options of {@linkcode JobStore.list}. */
export interface ListJobsOptions {
  tenantId?: string;
  status?: readonly JobStatus[];
  type?: readonly string[];
  limit?: number;
  cursor?: string | null;
}

/** One page of {@linkcode JobStore.list}. */
export interface JobPage {
  items: Job[];
  nextCursor: string | null;
}

/** One completion of {@linkcode JobStore.completeMany}. */
export interface Completion {
  id: string;
  leaseId: string;
  result?: unknown;
}

/** What {@linkcode JobStore.create} answers: the job, and false on an idempotent replay. */
export interface CreatedJob {
  job: Job;
  created: boolean;
}

/** Options of the {@linkcode JobStore} constructor. */
export interface JobStoreOptions {
  /**
   * Group intake (`src/job/_create_group.ts`): while `maxInFlight` creates are running, further
   * plain {@linkcode JobStore.create} calls queue and go together as one statement and one
   * commit. Only for a store over a pool; never for one inside a transaction (a failed group
   * would abort it). Off by default; the HTTP API's store has it on.
   */
  groupCreates?: boolean | CreateGroupLimits;
}

/** The default lease, in seconds. */
export const DEFAULT_LEASE_SECONDS = 30;

function json(value: unknown): string | null {
  return value === undefined ? null : JSON.stringify(value);
}

function definedOnly(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined));
}

/** `create_workflow`'s two arguments. */
function workflowParams(jobs: readonly WorkflowJobInput[], options: WorkflowOptions): string[] {
  const specs = jobs.map((job) =>
    definedOnly({
      ...job,
      notBefore: job.notBefore instanceof Date
        ? job.notBefore.toISOString()
        : job.notBefore ?? undefined,
    })
  );
  return [JSON.stringify(specs), JSON.stringify(definedOnly({ ...options }))];
}

function encodeCursor(createdAt: string, id: string): string {
  return btoa(`${createdAt}|${id}`).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

/** Decodes a list cursor; returns null for anything that is not one. */
export function decodeCursor(cursor: string): { createdAt: string; id: string } | null {
  try {
    const text = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
    const match = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z)\|([0-9a-f-]{36})$/.exec(text);
    return match ? { createdAt: match[1]!, id: match[2]! } : null;
  } catch {
    return null;
  }
}

/** The arguments of `complete_jobs`, bound by {@linkcode completionParams}. */
const COMPLETE_JOBS_ARGS = "p_ids => $1::uuid[], p_leases => $2::uuid[], p_results => $3::jsonb[]";

/** `complete_jobs`' three parallel arrays for a batch of completions. */
function completionParams(completions: readonly Completion[]): unknown[] {
  return [
    completions.map((c) => c.id),
    completions.map((c) => c.leaseId),
    completions.map((c) => json(c.result ?? null)),
  ];
}

/** The lifecycle operations over one database connection (or transaction). */
export class JobStore {
  readonly #db: Queryable;
  readonly #group: CreateGroup | null;

  /** Creates a store over `db`. */
  constructor(db: Queryable, options: JobStoreOptions = {}) {
    this.#db = db;
    const limits = options.groupCreates;
    this.#group = limits
      ? new CreateGroup(
        (type, payload, opts) => this.#createOne(type, payload, opts),
        (jobs, opts) => this.createWorkflow(jobs, opts),
        limits === true ? {} : limits,
      )
      : null;
  }

  async #rows(text: string, params: readonly unknown[]): Promise<Row[]> {
    try {
      return await this.#db.query(text, params);
    } catch (error) {
      throw fromDatabaseError(error);
    }
  }

  async #one(text: string, params: readonly unknown[]): Promise<Job> {
    const rows = await this.#rows(text, params);
    return rowToJob(rows[0]!);
  }

  /**
   * Creates a pending job; `created` is false on an idempotent replay. A payload left out
   * (`undefined`) is `{}`, here only; `null` is kept.
   */
  create(
    type: string,
    payload: unknown = {},
    options: CreateJobOptions = {},
  ): Promise<CreatedJob> {
    if (this.#group && groupable(options)) return this.#group.create(type, payload, options);
    return this.#createOne(type, payload, options);
  }

  async #createOne(
    type: string,
    payload: unknown,
    options: CreateJobOptions,
  ): Promise<CreatedJob> {
    const opts = definedOnly({
      ...options,
      notBefore: options.notBefore instanceof Date
        ? options.notBefore.toISOString()
        : options.notBefore ?? undefined,
    });
    const rows = await this.#rows(
      `select j.*, j.created_at = now() as _created
         from jobengine.create_job(p_type => $1::text, p_payload => $2::jsonb, p_options => $3::jsonb) j`,
      [type, json(payload), JSON.stringify(opts)],
    );
    const row = rows[0]!;
    return { job: rowToJob(row), created: row._created === true };
  }

  /** Creates several jobs atomically; they refer to each other by `ref`. */
  async createWorkflow(
    jobs: readonly WorkflowJobInput[],
    options: WorkflowOptions = {},
  ): Promise<Job[]> {
    const rows = await this.#rows(
      `select * from jobengine.create_workflow(p_jobs => $1::jsonb, p_options => $2::jsonb)`,
      workflowParams(jobs, options),
    );
    return rows.map(rowToJob);
  }

  /**
   * {@linkcode createWorkflow}, answering only the new jobs' ids, in the order of `jobs`: the
   * bulk path for callers that do not need the rows back. Formatting and parsing a thousand
   * full job rows costs about as much as creating them (docs/performance.md).
   */
  async createWorkflowIds(
    jobs: readonly WorkflowJobInput[],
    options: WorkflowOptions = {},
  ): Promise<string[]> {
    const rows = await this.#rows(
      `select id from jobengine.create_workflow(p_jobs => $1::jsonb, p_options => $2::jsonb)`,
      workflowParams(jobs, options),
    );
    return rows.map((row) => row.id as string);
  }

  /** Reads one job; throws {@linkcode JobNotFoundError} when it does not exist for the tenant. */
  async get(id: string, tenantId?: string): Promise<Job> {
    const rows = await this.#rows(
      `select * from jobengine.jobs where id = $1::uuid and ($2::text is null or tenant_id = $2::text)`,
      [id, tenantId ?? null],
    );
    if (rows.length === 0) {
      throw new JobNotFoundError(`Job ${id} not found`, { details: { jobId: id } });
    }
    return rowToJob(rows[0]!);
  }

  /** Lists a tenant's jobs, newest first, with a cursor that stays stable under inserts. */
  async list(options: ListJobsOptions = {}): Promise<JobPage> {
    const limit = options.limit ?? 50;
    const cursor = options.cursor ? decodeCursor(options.cursor) : null;
    if (options.cursor && cursor === null) {
      // a cursor this store did not produce would silently restart at the first page
      throw new InvalidArgumentError("Invalid cursor: use a nextCursor returned by a listing", {
        details: { argument: "cursor" },
      });
    }
    const rows = await this.#rows(
      `select j.*, to_char(j.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as _cursor_at
         from jobengine.jobs j
        where j.tenant_id = $1::text
          and ($2::jobengine.job_status[] is null or j.status = any ($2::jobengine.job_status[]))
          and ($3::text[] is null or j.type = any ($3::text[]))
          and ($4::timestamptz is null or (j.created_at, j.id) < ($4::timestamptz, $5::uuid))
        order by j.created_at desc, j.id desc
        limit $6::int`,
      [
        options.tenantId ?? "default",
        options.status?.length ? options.status : null,
        options.type?.length ? options.type : null,
        cursor?.createdAt ?? null,
        cursor?.id ?? null,
        limit + 1,
      ],
    );
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      items: page.map(rowToJob),
      nextCursor: rows.length > limit && last
        ? encodeCursor(last._cursor_at as string, last.id as string)
        : null,
    };
  }

  /** The job's transitions, oldest first. */
  async history(id: string, tenantId?: string): Promise<HistoryEntry[]> {
    await this.get(id, tenantId);
    const rows = await this.#rows(
      `select * from jobengine.job_history where job_id = $1::uuid order by seq`,
      [id],
    );
    return rows.map(rowToHistoryEntry);
  }

  /** The job's timeline events, oldest first. */
  async timeline(id: string, tenantId?: string): Promise<EventEnvelope[]> {
    await this.get(id, tenantId);
    const rows = await this.#rows(
      `select * from jobengine.timeline_events where subject_id = $1::uuid order by sequence`,
      [id],
    );
    return rows.map(rowToEvent);
  }

  /** pending -> scheduled, explicitly. */
  schedule(job: JobRef, actor?: string): Promise<Job> {
    return withChecked(job, "scheduled", (id) =>
      this.#one(
        `select * from jobengine.schedule_job(p_id => $1::uuid, p_actor => $2::text)`,
        [id, actor ?? null],
      ), "pending");
  }

  /** Promotes eligible pending jobs; returns how many were scheduled. */
  async scheduleReady(limit = 1000): Promise<number> {
    const rows = await this.#rows(`select jobengine.schedule_ready(p_limit => $1::int) as n`, [
      limit,
    ]);
    return Number(rows[0]!.n);
  }

  /** scheduled -> running for up to `limit` due jobs, each with a lease. */
  async claim(options: ClaimOptions): Promise<ClaimedJob[]> {
    const rows = await this.#rows(
      `select * from jobengine.claim_jobs_for(p_worker => $1::text, p_types => $2::text[], p_limit => $3::int,
         p_lease_seconds => $4::int, p_tenant => $5::text)`,
      [
        options.workerId,
        options.types?.length ? options.types : null,
        options.limit ?? 1,
        options.leaseSeconds ?? DEFAULT_LEASE_SECONDS,
        options.tenantId ?? null,
      ],
    );
    return rows.map(rowToClaimedJob);
  }

  /**
   * The running jobs whose live lease names `workerId`: for a worker whose claim reached the
   * database but whose answer did not (the connection dropped after the commit), so that it can
   * run them now instead of leaving them to the reaper after their lease.
   */
  async leasedTo(workerId: string): Promise<ClaimedJob[]> {
    const rows = await this.#rows(
      `select * from jobengine.jobs
        where status = 'running' and lease_owner = $1::text and lease_expires_at > clock_timestamp()
        order by priority desc, created_at, id`,
      [workerId],
    );
    return rows.map(rowToClaimedJob);
  }

  /**
   * Extends a live lease to `leaseSeconds` from now; without it, by the length the lease was
   * last granted for (by the claim or the previous heartbeat): a keep-alive never shortens it.
   */
  heartbeat(id: string, leaseId: string, leaseSeconds?: number): Promise<Job> {
    return this.#one(
      `select * from jobengine.heartbeat_job(p_id => $1::uuid, p_lease => $2::uuid, p_lease_seconds => $3::int)`,
      [id, leaseId, leaseSeconds ?? null],
    );
  }

  /** running -> completed, lease holder only. */
  complete(job: JobRef, leaseId: string, result?: unknown): Promise<Job> {
    return withChecked(job, "completed", (id) =>
      this.#one(
        `select * from jobengine.complete_job(p_id => $1::uuid, p_lease => $2::uuid, p_result => $3::jsonb)`,
        [id, leaseId, json(result ?? null)],
      ));
  }

  /** Completes a batch in one statement; returns the jobs whose lease held. */
  async completeMany(completions: readonly Completion[]): Promise<Job[]> {
    if (completions.length === 0) return [];
    const rows = await this.#rows(
      `select * from jobengine.complete_jobs(${COMPLETE_JOBS_ARGS})`,
      completionParams(completions),
    );
    return rows.map(rowToJob);
  }

  /**
   * {@linkcode completeMany} for callers that only need to know which leases held: the same
   * statement, but only the ids come back (the worker runtime's hot path; full rows carry the
   * payload and result, which it already has).
   */
  async completeManyIds(completions: readonly Completion[]): Promise<string[]> {
    if (completions.length === 0) return [];
    const rows = await this.#rows(
      `select id from jobengine.complete_jobs(${COMPLETE_JOBS_ARGS})`,
      completionParams(completions),
    );
    return rows.map((row) => String(row.id));
  }

  /** running -> failed (-> scheduled while retries remain and `retryable`). */
  fail(
    job: JobRef,
    leaseId: string,
    error: Record<string, unknown>,
    retryable = true,
  ): Promise<Job> {
    return withChecked(job, "failed", (id) =>
      this.#one(
        `select * from jobengine.fail_job(p_id => $1::uuid, p_lease => $2::uuid, p_error => $3::jsonb,
           p_retryable => $4::boolean)`,
        [id, leaseId, JSON.stringify(error), retryable],
      ));
  }

  /**
   * Hands claimed jobs back (`release_jobs`): running -> failed -> scheduled, due at once, never
   * terminal on account of the release. Returns the ids released (a lease that no longer holds
   * is left out).
   */
  async release(
    leases: readonly { id: string; leaseId: string }[],
    code = "worker_shutdown",
  ): Promise<string[]> {
    if (leases.length === 0) return [];
    const rows = await this.#rows(
      `select id from jobengine.release_jobs(p_ids => $1::uuid[], p_leases => $2::uuid[], p_code => $3::text) as id`,
      [leases.map((l) => l.id), leases.map((l) => l.leaseId), code],
    );
    return rows.map((row) => String(row.id));
  }

  /** pending | scheduled | running -> cancelled. */
  cancel(job: JobRef, reason?: string, actor?: string): Promise<Job> {
    return withChecked(job, "cancelled", (id) =>
      this.#one(
        `select * from jobengine.cancel_job(p_id => $1::uuid, p_reason => $2::text, p_actor => $3::text)`,
        [id, reason ?? null, actor ?? null],
      ));
  }

  /** failed -> scheduled, by an operator. */
  retry(job: JobRef, actor?: string): Promise<Job> {
    return withChecked(job, "scheduled", (id) =>
      this.#one(
        `select * from jobengine.retry_job(p_id => $1::uuid, p_actor => $2::text)`,
        [id, actor ?? null],
      ), "failed");
  }

  /** Fails running jobs whose lease expired; returns how many. */
  async reapExpiredLeases(): Promise<number> {
    const rows = await this.#rows(`select jobengine.reap_expired_leases() as n`, []);
    return Number(rows[0]!.n);
  }

  /** Seals or unseals the engine (the `settings` row). */
  async setSealed(sealed: boolean): Promise<void> {
    await this.#rows(`select jobengine.set_sealed(p_sealed => $1::boolean)`, [sealed]);
  }

  /** Whether the engine is sealed, as the database says. */
  async isSealed(): Promise<boolean> {
    const rows = await this.#rows(`select jobengine.is_sealed() as sealed`, []);
    return rows[0]!.sealed === true;
  }

  /** Records a refused egress attempt as a `sealed.egress_blocked` event. */
  async recordEgressBlocked(
    denial: {
      host: string;
      port: number;
      api: string;
      jobId?: string | null;
      actor?: string | null;
    },
  ): Promise<EventEnvelope> {
    const rows = await this.#rows(
      `select * from jobengine.record_egress_blocked(p_host => $1::text, p_port => $2::int, p_api => $3::text,
         p_job_id => $4::uuid, p_actor => $5::text)`,
      [denial.host, denial.port, denial.api, denial.jobId ?? null, denial.actor ?? null],
    );
    return rowToEvent(rows[0]!);
  }

  /** Events with `sequence > after`, in sequence order (see TimelineEventEmitter for gaps). */
  async eventsAfter(
    after: number,
    limit = 500,
    tenantId?: string | null,
  ): Promise<EventEnvelope[]> {
    const rows = await this.#rows(
      `select * from jobengine.timeline_events
        where sequence > $1::bigint and ($3::text is null or tenant_id = $3::text)
        order by sequence limit $2::int`,
      [after, limit, tenantId ?? null],
    );
    return rows.map(rowToEvent);
  }
}
