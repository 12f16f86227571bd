/**
 * The worker runtime: {@linkcode createWorker} runs job handlers against the database or the
 * HTTP API.
 *
 * @module
 */

export {
  type AbortReason,
  createWorker,
  currentJob,
  defaultWorkerId,
  JobAbortedError,
  type JobContext,
  type JobHandler,
  type JobHandlers,
  type StopOptions,
  type Worker,
  type WorkerEvent,
  type WorkerEventMap,
  type WorkerLogger,
  type WorkerOptions,
  type WorkerStats,
} from "./worker.ts";
export { HandlersModuleError, loadHandlers } from "./load_handlers.ts";
