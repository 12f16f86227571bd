/**
 * The job routes (`/api/v1/jobs...`): create, list, read, history, timeline, and the
 * lifecycle operations. Each handler validates its input (schemas.ts), scopes it to the
 * `X-Tenant-Id` tenant, and calls one JobStore method, that is one SQL function: no rule of the
 * lifecycle is re-implemented here.
 *
 * Tenant scoping: every route that names a job first reads it for the caller's tenant, so a job
 * of another tenant is 404 exactly like a missing one (a job's tenant never changes, so the read
 * and the operation cannot disagree). `POST /jobs/claim` is the exception by design: it claims
 * from every tenant unless `X-Tenant-Id` is sent (workers usually serve all tenants).
 *
 * @module
 */
import { publicJob } from "../../job/job.ts";
import {
  CancelBody,
  ClaimBody,
  ClaimResponse,
  CompleteBody,
  CreateJobBody,
  EmptyBody,
  FailBody,
  HeartbeatBody,
  HistoryResponse,
  JobIdParams,
  JobPageResponse,
  JobResponse,
  ListJobsQuery,
  TimelineResponse,
} from "../schemas.ts";
import { type ApiDeps, defineRoute, type Route } from "../_route.ts";

/** The path prefix of the API. */
export const API_PREFIX = "/api/v1";

const JOB = { status: 200, description: "The job", schema: JobResponse };

/** The job routes. */
export function jobRoutes(deps: ApiDeps): Route[] {
  const { store } = deps;
  return [
    defineRoute({
      method: "POST",
      path: `${API_PREFIX}/jobs`,
      operationId: "createJob",
      summary: "Create a job (pending)",
      description: "201 with the new job; 200 with the same job when `idempotencyKey` replays " +
        "an identical request; 409 `idempotency_conflict` when it was used for another one.",
      tag: "jobs",
      tenant: true,
      body: CreateJobBody,
      responses: [
        { status: 201, description: "Created", schema: JobResponse },
        {
          status: 200,
          description: "Idempotent replay: the job created before",
          schema: JobResponse,
        },
      ],
      errors: [400, 409, 413, 415, 503],
      handler: async (c, { body, tenantId, actor }) => {
        const { type, payload, ...options } = body!;
        const { job, created } = await store.create(type, payload, {
          ...options,
          tenantId,
          actor,
        });
        if (created) c.header("location", `${API_PREFIX}/jobs/${job.id}`);
        return c.json(publicJob(job), created ? 201 : 200);
      },
    }),
    defineRoute({
      method: "GET",
      path: `${API_PREFIX}/jobs`,
      operationId: "listJobs",
      summary: "List the tenant's jobs, newest first",
      description: "Cursor pagination, stable under concurrent inserts: pass `nextCursor` as " +
        "`cursor` until it is null.",
      tag: "jobs",
      tenant: true,
      query: ListJobsQuery,
      responses: [{ status: 200, description: "One page", schema: JobPageResponse }],
      errors: [400, 503],
      handler: async (c, { query, tenantId }) => {
        const page = await store.list({
          tenantId,
          status: query.status,
          type: query.type,
          limit: query.limit ?? 50,
          cursor: query.cursor,
        });
        return c.json({ items: page.items.map(publicJob), nextCursor: page.nextCursor });
      },
    }),
    defineRoute({
      method: "POST",
      path: `${API_PREFIX}/jobs/claim`,
      operationId: "claimJobs",
      summary: "Claim due scheduled jobs (scheduled -> running), each with a lease",
      description: "Highest priority first, then oldest. Claims from the `X-Tenant-Id` tenant " +
        "(`default` without the header), or from every tenant with `allTenants: true`.",
      tag: "jobs",
      tenant: true,
      body: ClaimBody,
      responses: [{
        status: 200,
        description: "The claimed jobs (maybe none)",
        schema: ClaimResponse,
      }],
      errors: [400, 413, 415, 503],
      handler: async (c, { body, tenantId }) => {
        const started = performance.now();
        const jobs = await store.claim({
          workerId: body!.workerId,
          types: body!.types,
          limit: body!.limit ?? 1,
          leaseSeconds: body!.leaseSeconds,
          tenantId: body!.allTenants ? null : tenantId,
        });
        deps.metrics.observeClaim((performance.now() - started) / 1000);
        return c.json({ jobs: jobs.map(publicJob) });
      },
    }),
    defineRoute({
      method: "GET",
      path: `${API_PREFIX}/jobs/:id`,
      operationId: "getJob",
      summary: "Read a job",
      tag: "jobs",
      tenant: true,
      params: JobIdParams,
      responses: [JOB],
      errors: [400, 404, 503],
      handler: async (c, { params, tenantId }) => {
        return c.json(publicJob(await store.get(params.id, tenantId)));
      },
    }),
    defineRoute({
      method: "GET",
      path: `${API_PREFIX}/jobs/:id/history`,
      operationId: "getJobHistory",
      summary: "The job's transitions, oldest first",
      tag: "jobs",
      tenant: true,
      params: JobIdParams,
      responses: [{ status: 200, description: "Every transition", schema: HistoryResponse }],
      errors: [400, 404, 503],
      handler: async (c, { params, tenantId }) => {
        const items = await store.history(params.id, tenantId);
        return c.json({ items: items.map(stripHistoryStack) });
      },
    }),
    defineRoute({
      method: "GET",
      path: `${API_PREFIX}/jobs/:id/timeline`,
      operationId: "getJobTimeline",
      summary: "The job's timeline events (EventEnvelopes), oldest first",
      tag: "jobs",
      tenant: true,
      params: JobIdParams,
      responses: [{ status: 200, description: "Every event of the job", schema: TimelineResponse }],
      errors: [400, 404, 503],
      handler: async (c, { params, tenantId }) => {
        const items = await store.timeline(params.id, tenantId);
        return c.json({ items: items.map(stripEventStack) });
      },
    }),
    defineRoute({
      method: "POST",
      path: `${API_PREFIX}/jobs/:id/schedule`,
      operationId: "scheduleJob",
      summary: "Schedule a pending job (pending -> scheduled)",
      description: "409 `dependencies_pending` until every dependency completed; 409 " +
        "`sealed_mode` for a job that requires the network while sealed.",
      tag: "lifecycle",
      tenant: true,
      params: JobIdParams,
      body: EmptyBody,
      bodyOptional: true,
      responses: [JOB],
      errors: [400, 404, 409, 413, 415, 503],
      handler: async (c, { params, tenantId, actor }) => {
        await store.get(params.id, tenantId);
        return c.json(publicJob(await store.schedule(params.id, actor)));
      },
    }),
    defineRoute({
      method: "POST",
      path: `${API_PREFIX}/jobs/:id/cancel`,
      operationId: "cancelJob",
      summary: "Cancel a pending, scheduled or running job",
      tag: "lifecycle",
      tenant: true,
      params: JobIdParams,
      body: CancelBody,
      bodyOptional: true,
      responses: [JOB],
      errors: [400, 404, 409, 413, 415, 503],
      handler: async (c, { params, body, tenantId, actor }) => {
        await store.get(params.id, tenantId);
        return c.json(publicJob(await store.cancel(params.id, body?.reason, actor)));
      },
    }),
    defineRoute({
      method: "POST",
      path: `${API_PREFIX}/jobs/:id/retry`,
      operationId: "retryJob",
      summary: "Retry a failed job now (failed -> scheduled), by an operator",
      tag: "lifecycle",
      tenant: true,
      params: JobIdParams,
      body: EmptyBody,
      bodyOptional: true,
      responses: [JOB],
      errors: [400, 404, 409, 413, 415, 503],
      handler: async (c, { params, tenantId, actor }) => {
        await store.get(params.id, tenantId);
        return c.json(publicJob(await store.retry(params.id, actor)));
      },
    }),
    defineRoute({
      method: "POST",
      path: `${API_PREFIX}/jobs/:id/heartbeat`,
      operationId: "heartbeatJob",
      summary: "Extend the lease of a running job (lease holder only)",
      tag: "lifecycle",
      tenant: true,
      params: JobIdParams,
      body: HeartbeatBody,
      responses: [JOB],
      errors: [400, 404, 409, 413, 415, 503],
      handler: async (c, { params, body, tenantId }) => {
        await store.get(params.id, tenantId);
        const job = await store.heartbeat(params.id, body!.leaseId, body!.leaseSeconds);
        return c.json(publicJob(job));
      },
    }),
    defineRoute({
      method: "POST",
      path: `${API_PREFIX}/jobs/:id/complete`,
      operationId: "completeJob",
      summary: "Complete a running job (running -> completed, lease holder only)",
      tag: "lifecycle",
      tenant: true,
      params: JobIdParams,
      body: CompleteBody,
      responses: [JOB],
      errors: [400, 404, 409, 413, 415, 503],
      handler: async (c, { params, body, tenantId }) => {
        await store.get(params.id, tenantId);
        const job = await store.complete(params.id, body!.leaseId, body!.result);
        return c.json(publicJob(job));
      },
    }),
    defineRoute({
      method: "POST",
      path: `${API_PREFIX}/jobs/:id/fail`,
      operationId: "failJob",
      summary: "Fail a running job (lease holder only)",
      description: "running -> failed; while retries remain and `retryable` is not false the " +
        "job moves straight on to scheduled with `notBefore = now + backoff` (history shows " +
        "running -> failed -> scheduled). `error.stack` is stored but never returned.",
      tag: "lifecycle",
      tenant: true,
      params: JobIdParams,
      body: FailBody,
      responses: [JOB],
      errors: [400, 404, 409, 413, 415, 503],
      handler: async (c, { params, body, tenantId }) => {
        await store.get(params.id, tenantId);
        const { leaseId, error, retryable } = body!;
        const detail = error === undefined
          ? { message: "Job failed" }
          : typeof error === "string"
          ? { message: error }
          : { ...error };
        const job = await store.fail(params.id, leaseId, detail, retryable ?? true);
        return c.json(publicJob(job));
      },
    }),
  ];
}

function withoutStack(value: unknown): unknown {
  if (!value || typeof value !== "object" || Array.isArray(value) || !("stack" in value)) {
    return value;
  }
  const { stack: _stack, ...rest } = value as Record<string, unknown>;
  return rest;
}

/** History details of a failure carry the error: drop its stack as `publicJob` does. */
function stripHistoryStack<T extends { details: Record<string, unknown> }>(entry: T): T {
  if (!("error" in entry.details)) return entry;
  return { ...entry, details: { ...entry.details, error: withoutStack(entry.details.error) } };
}

/** Failure events carry the error in `data.error`: drop its stack. */
export function stripEventStack<T extends { data: Record<string, unknown> }>(event: T): T {
  if (!("error" in event.data)) return event;
  return { ...event, data: { ...event.data, error: withoutStack(event.data.error) } };
}
