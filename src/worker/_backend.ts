/**
 * The two ways a worker reaches the engine, behind one small interface: straight to the
 * database through {@linkcode JobStore} (LISTEN/NOTIFY wake-ups, cheap lease checks), or over the
 * HTTP API (polling, plus the `/events` stream when the server offers it).
 *
 * Imported only from `src/worker/`.
 *
 * @module
 */
import type { Database } from "../db/port.ts";
import {
  DatabaseUnavailableError,
  InvalidArgumentError,
  InvalidTransitionError,
  JobEngineError,
  JobNotFoundError,
  LeaseMismatchError,
  SealedModeError,
} from "../errors.ts";
import type { ClaimedJob } from "../job/job.ts";
import { type Completion, JobStore } from "../job/job_store.ts";
import { trailingWaker } from "../db/wake.ts";

/** What a backend needs to know about the worker it serves. */
export interface BackendConfig {
  workerId: string;
  types: readonly string[];
  leaseSeconds: number;
  tenantId?: string;
}

/** A lease the worker holds: the job, its lease and its tenant. */
export interface LeaseRef {
  id: string;
  leaseId: string;
  tenantId: string;
}

/** One completion: the lease and the handler's result (already JSON-safe). */
export interface LeaseCompletion extends LeaseRef {
  result: unknown;
}

/** A held lease that is no longer held, as a lease check found it. */
export interface LostLease {
  /** The job's status now (`cancelled`, `failed`, `scheduled`, ...), or null when it is gone. */
  status: string | null;
}

/** Wake-up callbacks a backend calls when it learns of something. */
export interface BackendHooks {
  /** Jobs may have become claimable (`jobengine_ready`), with the NOTIFY payload when known. */
  ready(payload: string): void;
  /** Something happened to some job (`jobengine_events`): held leases may be gone. */
  events(): void;
  /** A held job was cancelled (known precisely, from the event stream). */
  cancelled?(jobId: string): void;
}

/** The engine operations a worker uses. */
export interface WorkerBackend {
  /** `database` (direct) or `http` (remote). */
  readonly kind: "database" | "http";
  /** Claims up to `limit` due jobs of the worker's types. */
  claim(limit: number): Promise<ClaimedJob[]>;
  /**
   * The running jobs leased to this worker (by id), when the backend can list them (the
   * database backend; the HTTP API has no such route): after a claim failed, jobs it claimed
   * all the same are taken up from here.
   */
  leasedToMe?(): Promise<ClaimedJob[]>;
  /**
   * Extends a lease; throws {@linkcode LeaseMismatchError} when it is gone, with the job's
   * `status` in its details when known.
   */
  heartbeat(lease: LeaseRef): Promise<void>;
  /** Completes a batch; returns the ids whose lease held. */
  completeMany(completions: readonly LeaseCompletion[]): Promise<Set<string>>;
  /** Fails a job (retried per its policy while `retryable`). */
  fail(lease: LeaseRef, error: JobErrorRecord, retryable: boolean): Promise<void>;
  /**
   * Hands a job back at shutdown without counting it as the job's failure (`release_jobs`);
   * true when released, false when the lease no longer held. Backends without it (HTTP) fail
   * the job with `worker_shutdown` instead.
   */
  release?(lease: LeaseRef): Promise<boolean>;
  /** Writes a `sealed.egress_blocked` event. */
  recordEgressBlocked(
    denial: { host: string; port: number; api: string; jobId: string | null; actor: string },
  ): Promise<void>;
  /** Whether the engine is sealed. */
  isSealed(): Promise<boolean>;
  /** Subscribes to wake-ups; resolves to an unsubscribe function. */
  subscribe(hooks: BackendHooks): Promise<() => Promise<void>>;
  /** Returns the held leases (of `held`) that are no longer held; empty when it cannot tell. */
  checkLeases(held: readonly LeaseRef[]): Promise<Map<string, LostLease>>;
  /** Milliseconds until the next delayed job of the worker's types comes due; null if none or unknown. */
  nextDueInMs(): Promise<number | null>;
  /** The `host:port` endpoints the backend itself must reach (for the network guard allowlist). */
  readonly endpoints: readonly string[];
  /** Whether the backend tells the worker about cancelled jobs quickly (LISTEN or event stream). */
  readonly pushesCancellations: boolean;
}

/**
 * A failure as the worker stores it, in the shape `POST /jobs/:id/fail` accepts: `message`,
 * `code`, the `stack` (stored, never returned over HTTP) and optional `details`.
 */
export interface JobErrorRecord {
  [key: string]: unknown;
  message: string;
  code: string;
  stack?: string;
  details?: Record<string, unknown>;
}

/** Creates the backend that talks to the database through {@linkcode JobStore}. */
export function createDatabaseBackend(db: Database, config: BackendConfig): WorkerBackend {
  const store = new JobStore(db);
  return {
    kind: "database",
    endpoints: [],
    pushesCancellations: true,
    claim: (limit) =>
      store.claim({
        workerId: config.workerId,
        types: config.types,
        limit,
        leaseSeconds: config.leaseSeconds,
        tenantId: config.tenantId ?? null,
      }),
    leasedToMe: () => store.leasedTo(config.workerId),
    async heartbeat(lease) {
      await store.heartbeat(lease.id, lease.leaseId, config.leaseSeconds);
    },
    async completeMany(completions) {
      const done = await store.completeManyIds(
        completions.map((c): Completion => ({ id: c.id, leaseId: c.leaseId, result: c.result })),
      );
      return new Set(done);
    },
    async fail(lease, error, retryable) {
      await store.fail(lease.id, lease.leaseId, error, retryable);
    },
    async release(lease) {
      return (await store.release([{ id: lease.id, leaseId: lease.leaseId }])).length === 1;
    },
    async recordEgressBlocked(denial) {
      await store.recordEgressBlocked(denial);
    },
    isSealed: () => store.isSealed(),
    async subscribe(hooks) {
      // NOTIFYs are coalesced across concurrent transactions (jobengine._notify): re-check a
      // few times after each one so work committed just after it is not left for the poll
      const readyTrail = trailingWaker(() => hooks.ready("scheduled"));
      const eventsTrail = trailingWaker(() => hooks.events());
      const stopReady = await db.listen("jobengine_ready", (payload) => {
        if (payload === "scheduled" || payload === "due") readyTrail.poke();
        else hooks.ready(payload);
      });
      let stopEvents: () => Promise<void>;
      try {
        stopEvents = await db.listen("jobengine_events", () => eventsTrail.poke());
      } catch (error) {
        await stopReady();
        readyTrail.stop();
        throw error;
      }
      return async () => {
        readyTrail.stop();
        eventsTrail.stop();
        await Promise.allSettled([stopReady(), stopEvents()]);
      };
    },
    async checkLeases(held) {
      const lost = new Map<string, LostLease>();
      if (held.length === 0) return lost;
      const rows = await db.query<{ id: string; status: string; lease_id: string | null }>(
        `select id, status, lease_id from jobengine.jobs where id = any ($1::uuid[])`,
        [held.map((h) => h.id)],
      );
      const byId = new Map(rows.map((row) => [row.id, row]));
      for (const { id, leaseId } of held) {
        const row = byId.get(id);
        if (!row) lost.set(id, { status: null });
        else if (row.status !== "running" || row.lease_id !== leaseId) {
          lost.set(id, { status: row.status });
        }
      }
      return lost;
    },
    async nextDueInMs() {
      const rows = await db.query<{ ms: number | null }>(
        `select (extract(epoch from (min(j.not_before) - now())) * 1000)::float8 as ms
           from jobengine.jobs j
          where j.status = 'scheduled' and j.not_before > j.created_at and j.not_before > now()
            and j.type = any ($1::text[])
            and ($2::text is null or j.tenant_id = $2::text)`,
        [config.types, config.tenantId ?? null],
      );
      const ms = rows[0]?.ms;
      return ms === null || ms === undefined ? null : Math.max(0, Number(ms));
    },
  };
}

/** Options of {@linkcode createHttpBackend}. */
export interface HttpBackendOptions extends BackendConfig {
  /** The server's base URL, e.g. `http://127.0.0.1:8080` (the `/api/v1` prefix is added). */
  baseUrl: string;
  /** Extra request headers (for example an authorization header). */
  headers?: Record<string, string>;
  /** Listen to `GET /api/v1/events` for wake-ups and cancellations. Default true. */
  eventStream?: boolean;
}

/** How many acknowledged completions the HTTP backend remembers (cleared when full). */
const RECENT_COMPLETIONS = 10_000;

/** Maps a problem+json answer to the typed error the database path would have thrown. */
function problemToError(status: number, body: Record<string, unknown>, what: string): Error {
  const code = typeof body.code === "string" ? body.code : "";
  const detail = typeof body.detail === "string"
    ? body.detail
    : typeof body.title === "string"
    ? body.title
    : `HTTP ${status}`;
  const message = `${what} failed: ${detail}`;
  // The problem's own members (its `status` is the HTTP status) are not details of the job.
  const { type: _t, title: _ti, status: _s, detail: _d, instance: _i, ...details } = body;
  switch (code) {
    case "lease_mismatch":
      return new LeaseMismatchError(message, { details });
    case "not_found":
      return new JobNotFoundError(message, { details });
    case "invalid_transition":
      return new InvalidTransitionError(
        typeof body.from === "string" ? body.from : null,
        typeof body.to === "string" ? body.to : "unknown",
        { jobId: typeof body.jobId === "string" ? body.jobId : undefined },
      );
    case "sealed_mode":
      return new SealedModeError(message, { details });
    case "validation_failed":
      return new InvalidArgumentError(message, { details });
    case "database_unavailable":
      return new DatabaseUnavailableError(message);
  }
  if (status === 404) return new JobNotFoundError(message, { details });
  if (status >= 500) return new DatabaseUnavailableError(message);
  return new JobEngineError(code || "http_error", message, { details });
}

/** Creates the backend that talks to the HTTP API (SPEC section 6). */
export function createHttpBackend(options: HttpBackendOptions): WorkerBackend {
  /** Completions the API acknowledged (`id:leaseId`), so that a batch sent again skips them. */
  const recentlyCompleted = new Set<string>();
  const base = new URL(options.baseUrl);
  const prefix = `${base.origin}${base.pathname.replace(/\/+$/, "")}/api/v1`;
  const port = base.port !== "" ? Number(base.port) : base.protocol === "https:" ? 443 : 80;
  const headers: Record<string, string> = {
    "content-type": "application/json",
    accept: "application/json",
    ...(options.tenantId ? { "x-tenant-id": options.tenantId } : {}),
    ...options.headers,
  };

  /**
   * Sends one request. `tenantId` names the job's tenant for the routes that read the job first
   * (a worker that serves every tenant must say whose job it holds).
   */
  async function call(
    method: string,
    path: string,
    what: string,
    body?: unknown,
    tenantId?: string,
  ): Promise<unknown> {
    let response: Response;
    try {
      response = await fetch(`${prefix}${path}`, {
        method,
        headers: tenantId ? { ...headers, "x-tenant-id": tenantId } : headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new DatabaseUnavailableError(
        `${what} failed: cannot reach ${prefix}: ${String(error)}`,
        { cause: error },
      );
    }
    const text = await response.text();
    let parsed: unknown = null;
    try {
      parsed = text === "" ? null : JSON.parse(text);
    } catch {
      parsed = { detail: text.slice(0, 200) };
    }
    if (!response.ok) {
      const problem = parsed && typeof parsed === "object" ? parsed as Record<string, unknown> : {};
      throw problemToError(response.status, problem, what);
    }
    return parsed;
  }

  return {
    kind: "http",
    // URL.hostname keeps IPv6 brackets, which is the allowlist's form too.
    endpoints: [`${base.hostname}:${port}`],
    pushesCancellations: options.eventStream !== false,
    async claim(limit) {
      const body = await call("POST", "/jobs/claim", "Claim", {
        workerId: options.workerId,
        types: options.types,
        limit,
        leaseSeconds: options.leaseSeconds,
        // without a tenant, the worker serves them all (the route's default is `default`)
        ...(options.tenantId ? {} : { allTenants: true }),
      }) as { jobs?: ClaimedJob[] };
      return body.jobs ?? [];
    },
    async heartbeat(lease) {
      try {
        await call("POST", `/jobs/${lease.id}/heartbeat`, `Heartbeat of job ${lease.id}`, {
          leaseId: lease.leaseId,
          leaseSeconds: options.leaseSeconds,
        }, lease.tenantId);
      } catch (error) {
        if (!(error instanceof LeaseMismatchError)) throw error;
        // The problem document has no job status: read it, so that a cancel is told from a loss.
        const job = await call(
          "GET",
          `/jobs/${lease.id}`,
          `Reading job ${lease.id}`,
          undefined,
          lease.tenantId,
        ).catch(() => null) as { status?: unknown } | null;
        throw new LeaseMismatchError(error.message, {
          details: { ...error.details, status: job?.status ?? null },
          cause: error,
        });
      }
    },
    async completeMany(completions) {
      // The API completes one job per request: send them side by side, each retried a few
      // times while the server cannot be reached. When some still cannot be sent, throw
      // DatabaseUnavailableError: the worker sends the batch again while the leases may hold,
      // and the completions that went through are remembered, not sent twice (a second
      // request for a completed job would answer 409 and read as a lost lease).
      const done = new Set<string>();
      let unavailable: DatabaseUnavailableError | null = null;
      await Promise.all(completions.map(async (c) => {
        const key = `${c.id}:${c.leaseId}`;
        if (recentlyCompleted.has(key)) {
          done.add(c.id);
          return;
        }
        for (let attempt = 1;; attempt++) {
          try {
            await call("POST", `/jobs/${c.id}/complete`, `Completion of job ${c.id}`, {
              leaseId: c.leaseId,
              result: c.result ?? null,
            }, c.tenantId);
            done.add(c.id);
            if (recentlyCompleted.size >= RECENT_COMPLETIONS) recentlyCompleted.clear();
            recentlyCompleted.add(key);
            return;
          } catch (error) {
            if (!(error instanceof DatabaseUnavailableError)) return;
            if (attempt >= 3) {
              unavailable = error;
              return;
            }
            await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
          }
        }
      }));
      if (unavailable) throw unavailable;
      return done;
    },
    async fail(lease, error, retryable) {
      const { message, code, stack, details } = error;
      await call("POST", `/jobs/${lease.id}/fail`, `Failure of job ${lease.id}`, {
        leaseId: lease.leaseId,
        error: { message, code, stack, details },
        retryable,
      }, lease.tenantId);
    },
    recordEgressBlocked() {
      // The HTTP API has no route that writes timeline events; the refusal is stored in the
      // job's lastError (details: host, port, api) instead. See docs/worker.md.
      return Promise.resolve();
    },
    async isSealed() {
      const body = await call("GET", "/system", "Reading /system") as { sealed?: unknown };
      return body.sealed === true;
    },
    subscribe(hooks) {
      if (options.eventStream === false) return Promise.resolve(() => Promise.resolve());
      const controller = new AbortController();
      const done = followEvents(prefix, headers, hooks, controller.signal);
      return Promise.resolve(async () => {
        controller.abort();
        await done;
      });
    },
    checkLeases: () => Promise.resolve(new Map()),
    nextDueInMs: () => Promise.resolve(null),
  };
}

/**
 * Reads `GET /events` (Server-Sent Events) until `signal` aborts, reconnecting with backoff and
 * resuming after the last event id: `job.scheduled` / `job.retry_scheduled` wake the claim loop,
 * `job.cancelled` aborts a held job. A server without the route is simply not followed.
 */
async function followEvents(
  prefix: string,
  headers: Record<string, string>,
  hooks: BackendHooks,
  signal: AbortSignal,
): Promise<void> {
  let lastId: string | null = null;
  let backoffMs = 250;
  while (!signal.aborted) {
    try {
      const types = "job.scheduled,job.retry_scheduled,job.cancelled";
      const response = await fetch(`${prefix}/events?types=${types}`, {
        headers: {
          ...headers,
          accept: "text/event-stream",
          ...(lastId ? { "last-event-id": lastId } : {}),
        },
        signal,
      });
      if (response.status === 404 || response.status === 405) {
        await response.body?.cancel();
        return;
      }
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      backoffMs = 250;
      // After a reconnect, anything may have happened: look again.
      hooks.ready("reconnected");
      hooks.events();
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end: number;
        while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
          const event = parseSseBlock(block);
          if (event.id) lastId = event.id;
          if (event.data) dispatchEvent(event.data, hooks);
        }
      }
    } catch {
      if (signal.aborted) return;
    }
    await new Promise((resolve) => setTimeout(resolve, backoffMs));
    backoffMs = Math.min(backoffMs * 2, 5000);
  }
}

function parseSseBlock(block: string): { id: string | null; data: string } {
  let id: string | null = null;
  const data: string[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (line.startsWith("id:")) id = line.slice(3).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  return { id, data: data.join("\n") };
}

function dispatchEvent(data: string, hooks: BackendHooks): void {
  let event: { type?: unknown; subject?: { id?: unknown } };
  try {
    event = JSON.parse(data);
  } catch {
    return;
  }
  if (event.type === "job.scheduled" || event.type === "job.retry_scheduled") {
    hooks.ready("scheduled");
  } else if (event.type === "job.cancelled" && typeof event.subject?.id === "string") {
    hooks.cancelled?.(event.subject.id);
  }
}
