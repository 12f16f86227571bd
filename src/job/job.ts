/**
 * The job as the rest of the program sees it: camelCase, JSON-ready (timestamps as ISO 8601
 * strings), mapped from a `jobengine.jobs` row in one place.
 *
 * @module
 */
import type { Row } from "../db/port.ts";
import type { JobStatus } from "./state_machine.ts";
import type { RetryPolicyOptions } from "./retry_policy.ts";

/** A job (SPEC section 6, "Job JSON"), plus `statusReason`, `blockedReason` and `version`. */
export interface Job {
  id: string;
  tenantId: string;
  type: string;
  status: JobStatus;
  payload: unknown;
  priority: number;
  attempt: number;
  maxRetries: number;
  retryPolicy: RetryPolicyOptions;
  dependsOn: string[];
  notBefore: string;
  requiresNetwork: boolean;
  terminal: boolean;
  leaseOwner: string | null;
  leaseExpiresAt: string | null;
  lastError: Record<string, unknown> | null;
  result: unknown;
  idempotencyKey: string | null;
  correlationId: string | null;
  statusReason: string | null;
  blockedReason: string | null;
  version: number;
  createdAt: string;
  scheduledAt: string | null;
  startedAt: string | null;
  completedAt: string | null;
  failedAt: string | null;
  cancelledAt: string | null;
  updatedAt: string;
}

/** A job just claimed by a worker: carries the lease that completes, fails or heartbeats it. */
export interface ClaimedJob extends Job {
  leaseId: string;
  leaseOwner: string;
  leaseExpiresAt: string;
}

/** One row of `jobengine.job_history`. */
export interface HistoryEntry {
  jobId: string;
  seq: number;
  fromStatus: JobStatus | null;
  toStatus: JobStatus;
  attempt: number;
  reason: string | null;
  actor: string | null;
  details: Record<string, unknown>;
  occurredAt: string;
}

/** The event types of SPEC section 5. */
export const EVENT_TYPES = [
  "job.created",
  "job.scheduled",
  "job.started",
  "job.completed",
  "job.failed",
  "job.retry_scheduled",
  "job.cancelled",
  "job.blocked",
  "sealed.egress_blocked",
] as const;

/** An event type. */
export type EventType = (typeof EVENT_TYPES)[number];

/** A `timeline_events` row as an EventEnvelope (SPEC section 5). */
export interface EventEnvelope {
  id: string;
  type: EventType;
  schemaVersion: 1;
  sequence: number;
  tenantId: string;
  subject: { kind: string; id: string | null };
  occurredAt: string;
  correlationId: string | null;
  actor: string | null;
  data: Record<string, unknown>;
}

/** Recently formatted timestamps (epoch milliseconds to ISO text; cleared when full). */
const isoCache = new Map<number, string>();
const ISO_CACHE_SIZE = 64;

/** ISO 8601 text of a timestamp; recent ones are remembered (a batch's rows share most of theirs). */
function iso(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  const date = value instanceof Date ? value : new Date(String(value));
  const ms = date.getTime();
  let text = isoCache.get(ms);
  if (text === undefined) {
    text = date.toISOString();
    if (isoCache.size >= ISO_CACHE_SIZE) isoCache.clear();
    isoCache.set(ms, text);
  }
  return text;
}

/** Maps a `jobengine.jobs` row to a {@linkcode Job}. */
export function rowToJob(row: Row): Job {
  return {
    id: row.id as string,
    tenantId: row.tenant_id as string,
    type: row.type as string,
    status: row.status as JobStatus,
    payload: row.payload,
    priority: Number(row.priority),
    attempt: Number(row.attempt),
    maxRetries: Number(row.max_retries),
    retryPolicy: row.retry_policy as RetryPolicyOptions,
    dependsOn: (row.depends_on as string[] | null) ?? [],
    notBefore: iso(row.not_before)!,
    requiresNetwork: Boolean(row.requires_network),
    terminal: Boolean(row.terminal),
    leaseOwner: (row.lease_owner as string | null) ?? null,
    leaseExpiresAt: iso(row.lease_expires_at),
    lastError: (row.last_error as Record<string, unknown> | null) ?? null,
    result: row.result ?? null,
    idempotencyKey: (row.idempotency_key as string | null) ?? null,
    correlationId: (row.correlation_id as string | null) ?? null,
    statusReason: (row.status_reason as string | null) ?? null,
    blockedReason: (row.blocked_reason as string | null) ?? null,
    version: Number(row.version),
    createdAt: iso(row.created_at)!,
    scheduledAt: iso(row.scheduled_at),
    startedAt: iso(row.started_at),
    completedAt: iso(row.completed_at),
    failedAt: iso(row.failed_at),
    cancelledAt: iso(row.cancelled_at),
    updatedAt: iso(row.updated_at)!,
  };
}

/** Maps a claimed `jobengine.jobs` row to a {@linkcode ClaimedJob}. */
export function rowToClaimedJob(row: Row): ClaimedJob {
  return { ...rowToJob(row), leaseId: row.lease_id as string } as ClaimedJob;
}

/** Maps a `jobengine.job_history` row to a {@linkcode HistoryEntry}. */
export function rowToHistoryEntry(row: Row): HistoryEntry {
  return {
    jobId: row.job_id as string,
    seq: Number(row.seq),
    fromStatus: (row.from_status as JobStatus | null) ?? null,
    toStatus: row.to_status as JobStatus,
    attempt: Number(row.attempt),
    reason: (row.reason as string | null) ?? null,
    actor: (row.actor as string | null) ?? null,
    details: (row.details as Record<string, unknown>) ?? {},
    occurredAt: iso(row.occurred_at)!,
  };
}

/** Maps a `jobengine.timeline_events` row to an {@linkcode EventEnvelope}. */
export function rowToEvent(row: Row): EventEnvelope {
  return {
    id: row.id as string,
    type: row.type as EventType,
    schemaVersion: 1,
    sequence: Number(row.sequence),
    tenantId: row.tenant_id as string,
    subject: { kind: row.subject_kind as string, id: (row.subject_id as string | null) ?? null },
    occurredAt: iso(row.occurred_at)!,
    correlationId: (row.correlation_id as string | null) ?? null,
    actor: (row.actor as string | null) ?? null,
    data: (row.data as Record<string, unknown>) ?? {},
  };
}

/** The job as served over HTTP: `lastError.stack` is stored but never returned. */
export function publicJob<T extends Job>(job: T): T {
  if (!job.lastError || !("stack" in job.lastError)) return job;
  const { stack: _stack, ...lastError } = job.lastError;
  return { ...job, lastError };
}
