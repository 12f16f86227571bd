/**
 * Every valibot schema of the HTTP API: request bodies, query strings, path parameters and
 * headers (validated on every request), and the response shapes (documentation only). The
 * OpenAPI document (`openapi.ts`) is generated from exactly these; TypeScript types are derived
 * with `v.InferOutput`, never written twice.
 *
 * Bodies are strict: an unknown field is refused (400 `validation_failed`) rather than silently
 * ignored, so a misspelt option never goes unnoticed. Query strings ignore unknown parameters.
 *
 * @module
 */
import * as v from "valibot";
import { decodeCursor } from "../job/job_store.ts";
import { EVENT_TYPES } from "../job/job.ts";
import { BACKOFF_STRATEGIES, RetryPolicyInput } from "../job/retry_policy.ts";
import { JOB_STATUSES } from "../job/state_machine.ts";

// ---------------------------------------------------------------------------------------------
// Building blocks

/** Most elements of a list in a request (`dependsOn`, `types`). */
export const MAX_LIST_LENGTH = 1000;

const ISO_PARTS = /^(\d{4})-(\d{2})-(\d{2})[T ]/;

/** True when an ISO 8601 timestamp names a real calendar day in years 1..9999. */
function isCalendarTimestamp(value: string): boolean {
  const match = ISO_PARTS.exec(value);
  if (!match) return false;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  if (year < 1) return false;
  const date = new Date(Date.UTC(2000, month - 1, day));
  date.setUTCFullYear(year);
  return date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

/** A job id (UUID). */
export const JobId = v.pipe(
  v.string(),
  v.uuid("Must be a UUID"),
  v.description("Job id (UUID)"),
);

/** Whether `value` has no control character (C0, DEL, C1): none belongs in a tenant or an actor. */
function noControlCharacters(value: string): boolean {
  for (const ch of value) {
    const code = ch.codePointAt(0)!;
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) return false;
  }
  return true;
}

/** Unicode code points in `value`: what PostgreSQL's `char_length` and JSON Schema's `maxLength` count. */
function codePoints(value: string): number {
  let count = 0;
  for (const _ of value) count++;
  return count;
}

/**
 * A non-empty string of at most `max` characters, counted as the database counts them (code
 * points, not UTF-16 units: `v.maxLength` would refuse 150 emoji the database takes). The
 * metadata carries `maxLength` into the OpenAPI document (openapi.ts).
 */
function text(max: number, description?: string) {
  const base = v.pipe(
    v.string(),
    v.minLength(1, "Must not be empty"),
    v.check((value) => codePoints(value) <= max, `Must be at most ${max} characters`),
    v.metadata({ maxLength: max }),
  );
  return description ? v.pipe(base, v.description(description)) : base;
}

/** An ISO 8601 timestamp with a time zone (`2026-01-31T12:00:00Z`). */
export const Timestamp = v.pipe(
  v.string(),
  v.isoTimestamp("Must be an ISO 8601 timestamp with a time zone, e.g. 2026-01-31T12:00:00Z"),
  v.check(isCalendarTimestamp, "Must be a real calendar date in years 1 to 9999"),
);

/** A job type. */
export const JobType = text(200, "Job type: which handler runs it");

/** A priority: higher runs first. */
export const Priority = v.pipe(
  v.number(),
  v.integer("Must be a whole number"),
  v.minValue(-1_000_000),
  v.maxValue(1_000_000),
  v.description("Higher runs first (default 0)"),
);

/** Retries after the first run. */
export const MaxRetries = v.pipe(
  v.number(),
  v.integer("Must be a whole number"),
  v.minValue(0),
  v.maxValue(100),
  v.description("Retries after the first run; overrides retryPolicy.maxRetries"),
);

/** Any JSON value. */
export const JsonValue = v.pipe(v.unknown(), v.description("Any JSON value"));

/** A lease duration. */
export const LeaseSeconds = v.pipe(
  v.number(),
  v.integer("Must be a whole number"),
  v.minValue(1),
  v.maxValue(86_400),
  v.description("Lease duration in seconds (default 30)"),
);

/** The retry policy as clients send it (re-exported from the job layer, with a description). */
export const RetryPolicyBody = v.pipe(
  RetryPolicyInput,
  v.description(
    "Retry policy; every field optional: maxRetries 0..100 (3), backoff fixed|linear|exponential " +
      "(exponential), initialDelayMs (1000), maxDelayMs (300000), multiplier >= 1 (2), jitter 0..1 (0.1)",
  ),
);

// ---------------------------------------------------------------------------------------------
// Headers and path parameters

/** The request headers the API reads (names lowercase, as HTTP/2 sends them). */
export const RequestHeaders = v.object({
  "x-tenant-id": v.optional(
    v.pipe(
      text(200),
      v.regex(/^[^\s].*[^\s]$|^[^\s]$/, "Must not start or end with white space"),
      v.check(noControlCharacters, "Must not contain control characters"),
      v.description('Tenant; default "default". A job of another tenant is 404.'),
    ),
  ),
  "x-actor": v.optional(
    v.pipe(
      text(200, "Who is acting (recorded in history and events)"),
      v.check(noControlCharacters, "Must not contain control characters"),
    ),
  ),
});

/** The validated request headers. */
export type RequestHeaders = v.InferOutput<typeof RequestHeaders>;

/** The `:id` path parameter. */
export const JobIdParams = v.object({ id: JobId });

/** The validated `:id` path parameter. */
export type JobIdParams = v.InferOutput<typeof JobIdParams>;

// ---------------------------------------------------------------------------------------------
// Request bodies

/** `POST /jobs`. */
export const CreateJobBody = v.strictObject({
  type: JobType,
  payload: v.optional(JsonValue),
  priority: v.optional(Priority),
  dependsOn: v.optional(
    v.pipe(
      v.array(JobId),
      v.maxLength(MAX_LIST_LENGTH),
      v.description("Jobs of the same tenant that must complete first"),
    ),
  ),
  retryPolicy: v.optional(RetryPolicyBody),
  maxRetries: v.optional(MaxRetries),
  notBefore: v.nullish(
    v.pipe(Timestamp, v.description("Not claimed before this time (default, or null: now)")),
  ),
  requiresNetwork: v.optional(
    v.pipe(v.boolean(), v.description("Needs the network: held back while sealed")),
  ),
  idempotencyKey: v.optional(
    text(200, "Same key and same request: the same job again (200); different request: 409"),
  ),
  correlationId: v.optional(text(200, "Free-form id copied onto every event of the job")),
});

/** `POST /jobs` body. */
export type CreateJobBody = v.InferOutput<typeof CreateJobBody>;

/** One job of `POST /workflows`. */
export const WorkflowJobBody = v.strictObject({
  ref: text(200, "Client reference, unique within the workflow"),
  type: JobType,
  payload: v.optional(JsonValue),
  dependsOn: v.optional(
    v.pipe(
      v.array(text(200)),
      v.maxLength(MAX_LIST_LENGTH),
      v.description("refs of other jobs of this workflow, or ids of existing jobs"),
    ),
  ),
  priority: v.optional(Priority),
  retryPolicy: v.optional(RetryPolicyBody),
  maxRetries: v.optional(MaxRetries),
  notBefore: v.nullish(Timestamp),
  requiresNetwork: v.optional(v.boolean()),
  correlationId: v.optional(text(200)),
});

/** `POST /workflows`. */
export const CreateWorkflowBody = v.strictObject({
  jobs: v.pipe(
    v.array(WorkflowJobBody),
    v.minLength(1, "Must hold at least one job"),
    v.maxLength(10_000, "At most 10000 jobs per workflow"),
  ),
  correlationId: v.optional(text(200)),
});

/** `POST /workflows` body. */
export type CreateWorkflowBody = v.InferOutput<typeof CreateWorkflowBody>;

/** `POST /jobs/claim`. */
export const ClaimBody = v.strictObject({
  workerId: text(200, "The claiming worker (recorded as leaseOwner)"),
  types: v.optional(
    v.pipe(
      v.array(JobType),
      v.maxLength(MAX_LIST_LENGTH),
      v.description("Only these job types (default all)"),
    ),
  ),
  limit: v.optional(
    v.pipe(
      v.number(),
      v.integer(),
      v.minValue(1),
      v.maxValue(1000),
      v.description("Most jobs (default 1)"),
    ),
  ),
  leaseSeconds: v.optional(LeaseSeconds),
  allTenants: v.optional(
    v.pipe(
      v.boolean(),
      v.description(
        "Claim from every tenant (default false: only the X-Tenant-Id tenant, `default` when " +
          "the header is left out). For workers that serve all tenants; they send each job's " +
          "tenantId with its heartbeat, complete and fail.",
      ),
    ),
  ),
});

/** `POST /jobs/claim` body. */
export type ClaimBody = v.InferOutput<typeof ClaimBody>;

/** `POST /jobs/:id/heartbeat`. */
export const HeartbeatBody = v.strictObject({
  leaseId: JobId,
  leaseSeconds: v.optional(
    v.pipe(
      LeaseSeconds,
      v.description(
        "New lease duration in seconds from now (default: the length the lease was last granted for)",
      ),
    ),
  ),
});

/** `POST /jobs/:id/heartbeat` body. */
export type HeartbeatBody = v.InferOutput<typeof HeartbeatBody>;

/** `POST /jobs/:id/complete`. */
export const CompleteBody = v.strictObject({
  leaseId: v.pipe(JobId, v.description("The lease from the claim")),
  result: v.optional(JsonValue),
});

/** `POST /jobs/:id/complete` body. */
export type CompleteBody = v.InferOutput<typeof CompleteBody>;

/** The error of `POST /jobs/:id/fail`: an object, or just its message. */
export const JobErrorBody = v.union([
  v.pipe(v.string(), v.maxLength(100_000), v.description("The error message")),
  v.strictObject({
    message: v.pipe(v.string(), v.maxLength(100_000)),
    code: v.optional(text(200)),
    details: v.optional(JsonValue),
    stack: v.optional(v.pipe(v.string(), v.description("Stored, never returned"))),
  }),
]);

/** `POST /jobs/:id/fail`. */
export const FailBody = v.strictObject({
  leaseId: JobId,
  error: v.optional(
    v.pipe(JobErrorBody, v.description('The failure (default { message: "Job failed" })')),
  ),
  retryable: v.optional(
    v.pipe(v.boolean(), v.description("false: terminal at once (default true)")),
  ),
});

/** `POST /jobs/:id/fail` body. */
export type FailBody = v.InferOutput<typeof FailBody>;

/** `POST /jobs/:id/cancel` (the body is optional). */
export const CancelBody = v.strictObject({
  reason: v.optional(text(200, 'Recorded as the reason (default "cancelled")')),
});

/** `POST /jobs/:id/cancel` body. */
export type CancelBody = v.InferOutput<typeof CancelBody>;

/** `POST /jobs/:id/schedule` and `/retry` (the body is optional and has no fields). */
export const EmptyBody = v.strictObject({});

// ---------------------------------------------------------------------------------------------
// Query strings (values arrive as strings; a repeated parameter arrives as an array)

const OneOrMany = v.union([v.string(), v.array(v.string())]);

function splitList(value: string | string[]): string[] {
  return (Array.isArray(value) ? value : [value])
    .flatMap((item) => item.split(","))
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

function integerString(min: number, max: number, description: string) {
  return v.pipe(
    v.string(),
    v.regex(/^\d{1,16}$/, "Must be a whole number"),
    v.description(description),
    v.transform(Number),
    v.number(),
    v.minValue(min, `Must be at least ${min}`),
    v.maxValue(max, `Must be at most ${max}`),
  );
}

/** `GET /jobs` query. */
export const ListJobsQuery = v.object({
  status: v.optional(
    v.pipe(
      OneOrMany,
      v.description(`Comma-separated statuses: ${JOB_STATUSES.join(", ")}`),
      v.transform(splitList),
      v.array(v.picklist(JOB_STATUSES, `Must be one of ${JOB_STATUSES.join(", ")}`)),
      v.minLength(1, "Must name at least one status (leave the parameter out for every status)"),
    ),
  ),
  type: v.optional(
    v.pipe(
      OneOrMany,
      v.description("Job type; repeat the parameter for several"),
      v.transform((value) => Array.isArray(value) ? value : [value]),
      v.array(JobType),
    ),
  ),
  limit: v.optional(integerString(1, 500, "Page size, 1..500 (default 50)")),
  cursor: v.optional(
    v.pipe(
      v.string(),
      v.check((c) => decodeCursor(c) !== null, "Must be a nextCursor returned by this API"),
      v.description("nextCursor of the previous page"),
    ),
  ),
});

/** `GET /jobs` query, validated. */
export type ListJobsQuery = v.InferOutput<typeof ListJobsQuery>;

/** `GET /events` query. */
export const EventsQuery = v.object({
  after: v.optional(
    integerString(
      0,
      Number.MAX_SAFE_INTEGER,
      "Resume after this sequence (the Last-Event-ID header wins when both are sent)",
    ),
  ),
  types: v.optional(
    v.pipe(
      OneOrMany,
      v.description(`Comma-separated event types: ${EVENT_TYPES.join(", ")}`),
      v.transform(splitList),
      v.array(v.picklist(EVENT_TYPES, `Must be one of ${EVENT_TYPES.join(", ")}`)),
      v.minLength(1, "Must name at least one event type (leave the parameter out for every type)"),
    ),
  ),
});

/** `GET /events` query, validated. */
export type EventsQuery = v.InferOutput<typeof EventsQuery>;

/** `GET /events` headers. */
export const EventsHeaders = v.object({
  "last-event-id": v.optional(
    integerString(0, Number.MAX_SAFE_INTEGER, "The id of the last event received (resume)"),
  ),
});

// ---------------------------------------------------------------------------------------------
// Responses (documentation; tests check real responses against them)

const NullableTimestamp = v.nullable(v.pipe(v.string(), v.isoTimestamp()));
const Status = v.picklist(JOB_STATUSES);

/** A job as served (SPEC section 6). */
export const JobResponse = v.object({
  id: JobId,
  tenantId: v.string(),
  type: v.string(),
  status: Status,
  payload: JsonValue,
  priority: v.number(),
  attempt: v.number(),
  maxRetries: v.number(),
  retryPolicy: v.object({
    maxRetries: v.number(),
    backoff: v.picklist(BACKOFF_STRATEGIES),
    initialDelayMs: v.number(),
    maxDelayMs: v.number(),
    multiplier: v.number(),
    jitter: v.number(),
  }),
  dependsOn: v.array(JobId),
  notBefore: v.pipe(v.string(), v.isoTimestamp()),
  requiresNetwork: v.boolean(),
  terminal: v.boolean(),
  leaseOwner: v.nullable(v.string()),
  leaseExpiresAt: NullableTimestamp,
  lastError: v.nullable(
    v.pipe(
      v.record(v.string(), v.unknown()),
      v.description("The last failure: message, code, details (never the stack)"),
    ),
  ),
  result: JsonValue,
  idempotencyKey: v.nullable(v.string()),
  correlationId: v.nullable(v.string()),
  statusReason: v.nullable(v.string()),
  blockedReason: v.nullable(v.string()),
  version: v.number(),
  createdAt: v.pipe(v.string(), v.isoTimestamp()),
  scheduledAt: NullableTimestamp,
  startedAt: NullableTimestamp,
  completedAt: NullableTimestamp,
  failedAt: NullableTimestamp,
  cancelledAt: NullableTimestamp,
  updatedAt: v.pipe(v.string(), v.isoTimestamp()),
});

/** A claimed job: a job with its lease. */
export const ClaimedJobResponse = v.object({
  ...JobResponse.entries,
  leaseId: JobId,
  leaseOwner: v.string(),
  leaseExpiresAt: v.pipe(v.string(), v.isoTimestamp()),
});

/** `POST /jobs/claim` response. */
export const ClaimResponse = v.object({ jobs: v.array(ClaimedJobResponse) });

/** `GET /jobs` response. */
export const JobPageResponse = v.object({
  items: v.array(JobResponse),
  nextCursor: v.pipe(v.nullable(v.string()), v.description("null on the last page")),
});

/** `POST /workflows` response. */
export const WorkflowResponse = v.object({
  jobs: v.pipe(v.array(JobResponse), v.description("In the order sent")),
  refs: v.pipe(v.record(v.string(), JobId), v.description("Each ref's job id")),
});

/** One transition of a job. */
export const HistoryEntryResponse = v.object({
  jobId: JobId,
  seq: v.number(),
  fromStatus: v.nullable(Status),
  toStatus: Status,
  attempt: v.number(),
  reason: v.nullable(v.string()),
  actor: v.nullable(v.string()),
  details: v.record(v.string(), v.unknown()),
  occurredAt: v.pipe(v.string(), v.isoTimestamp()),
});

/** `GET /jobs/:id/history` response. */
export const HistoryResponse = v.object({ items: v.array(HistoryEntryResponse) });

/** An EventEnvelope (SPEC section 5). */
export const EventEnvelopeResponse = v.object({
  id: JobId,
  type: v.picklist(EVENT_TYPES),
  schemaVersion: v.literal(1),
  sequence: v.pipe(v.number(), v.description("Global, strictly increasing; the SSE id")),
  tenantId: v.string(),
  subject: v.object({ kind: v.string(), id: v.nullable(v.string()) }),
  occurredAt: v.pipe(v.string(), v.isoTimestamp()),
  correlationId: v.nullable(v.string()),
  actor: v.nullable(v.string()),
  data: v.record(v.string(), v.unknown()),
});

/** `GET /jobs/:id/timeline` response. */
export const TimelineResponse = v.object({ items: v.array(EventEnvelopeResponse) });

/** `GET /system` response. */
export const SystemResponse = v.object({
  version: v.string(),
  sealed: v.pipe(
    v.boolean(),
    v.description("jobengine.is_sealed(), or the process was started sealed"),
  ),
  database: v.picklist(["postgres", "pglite"]),
});

/** `GET /healthz` response. */
export const HealthResponse = v.object({ status: v.literal("ok") });

/** `GET /readyz` response. */
export const ReadyResponse = v.object({
  status: v.literal("ready"),
  database: v.picklist(["postgres", "pglite"]),
  migrations: v.number(),
});

/** A problem document (RFC 9457). */
export const ProblemResponse = v.object({
  type: v.string(),
  title: v.string(),
  status: v.number(),
  detail: v.string(),
  code: v.string(),
  instance: v.optional(v.string()),
  issues: v.optional(
    v.array(v.object({
      in: v.picklist(["body", "query", "path", "header"]),
      path: v.string(),
      message: v.string(),
    })),
  ),
  from: v.optional(v.nullable(Status)),
  to: v.optional(Status),
});
