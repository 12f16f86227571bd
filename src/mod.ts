/**
 * jobengine: a job lifecycle engine for sealed sites. The public entry point: the state
 * machine, the retry policy, the lifecycle store, the scheduler, the worker runtime, the
 * timeline event emitter, the HTTP app, the database adapters and the typed errors.
 *
 * @module
 */
export * from "./errors.ts";
export * from "./job/state_machine.ts";
export * from "./job/retry_policy.ts";
export * from "./job/job.ts";
export * from "./job/job_store.ts";
export * from "./scheduler/job_scheduler.ts";
export * from "./events/timeline_event_emitter.ts";
export * from "./worker/mod.ts";
export * from "./db/mod.ts";
export { createApp, createFetchHandler } from "./api/app.ts";
