/**
 * The handlers of the built-in worker when `JOBENGINE_HANDLERS` is not set, so that a fresh
 * `deno task start` runs jobs end to end with no code:
 *
 * - `noop`: completes at once with result `null`;
 * - `echo`: completes with the job's payload as its result;
 * - `sleep`: waits `payload.ms` milliseconds (0..3600000, default 1000), then completes with
 *   `{ sleptMs }`; it stops early (and the job is released or failed) when the job is cancelled,
 *   its lease is lost or the worker shuts down.
 *
 * The worker claims only these three types, so jobs of any other type wait for a worker that
 * handles them.
 *
 * @module
 */
import type { JobHandlers } from "../worker/worker.ts";

/** The most a `sleep` job waits, in milliseconds. */
export const MAX_SLEEP_MS = 3_600_000;

function sleepMs(payload: unknown): number {
  const ms = (payload as { ms?: unknown } | null)?.ms;
  if (typeof ms !== "number" || !Number.isFinite(ms)) return 1000;
  return Math.min(Math.max(0, Math.floor(ms)), MAX_SLEEP_MS);
}

/** The built-in handlers: `noop`, `echo`, `sleep`. */
export const BUILTIN_HANDLERS: JobHandlers = {
  noop: () => Promise.resolve(null),
  echo: (job) => Promise.resolve(job.payload),
  sleep: (job, ctx) => {
    const ms = sleepMs(job.payload);
    return new Promise((resolve, reject) => {
      if (ctx.signal.aborted) return reject(ctx.signal.reason);
      const timer = setTimeout(() => {
        ctx.signal.removeEventListener("abort", onAbort);
        resolve({ sleptMs: ms });
      }, ms);
      function onAbort() {
        clearTimeout(timer);
        reject(ctx.signal.reason);
      }
      ctx.signal.addEventListener("abort", onAbort, { once: true });
    });
  },
};
