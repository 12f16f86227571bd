/**
 * The job state machine in TypeScript: the single source of truth for the allowed transitions.
 *
 * `deno task gen` writes these pairs into `sql/repeatable/010_job_transitions.sql` (DO NOT EDIT),
 * which fills `jobengine.job_transitions`, the table the database trigger checks. A database
 * test walks all 36 pairs through the real trigger and checks that exactly this set succeeds.
 * See `docs/state_machine.md`.
 *
 * @module
 */
import { InvalidTransitionError } from "../errors.ts";

/** Every job status, in lifecycle order. */
export const JOB_STATUSES = [
  "pending",
  "scheduled",
  "running",
  "completed",
  "failed",
  "cancelled",
] as const;

/** A job status. */
export type JobStatus = (typeof JOB_STATUSES)[number];

/** The allowed transitions: for each status, the statuses it may move to. */
export const TRANSITIONS: Readonly<Record<JobStatus, readonly JobStatus[]>> = {
  pending: ["scheduled", "cancelled"],
  scheduled: ["running", "cancelled"],
  running: ["completed", "failed", "cancelled"],
  completed: [],
  failed: ["scheduled"],
  cancelled: [],
};

/** Statuses with no way out. `failed` is terminal only once no retry remains (`job.terminal`). */
export const TERMINAL_STATUSES: readonly JobStatus[] = ["completed", "cancelled"];

/** Returns true when `value` is a job status. */
export function isJobStatus(value: unknown): value is JobStatus {
  return typeof value === "string" && (JOB_STATUSES as readonly string[]).includes(value);
}

/** Returns true when a job may move from `from` to `to`. */
export function canTransition(from: JobStatus, to: JobStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Throws {@linkcode InvalidTransitionError} unless a job may move from `from` to `to`. */
export function assertTransition(from: JobStatus, to: JobStatus, jobId?: string): void {
  if (!canTransition(from, to)) throw new InvalidTransitionError(from, to, { jobId });
}

/** Every allowed `[from, to]` pair, in a stable order. */
export function transitionPairs(): Array<[JobStatus, JobStatus]> {
  return JOB_STATUSES.flatMap((from) =>
    TRANSITIONS[from].map((to): [JobStatus, JobStatus] => [from, to])
  );
}
