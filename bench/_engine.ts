/**
 * The engine parts the benchmarks drive: worker instances with a no-op handler, the scheduler,
 * and the HTTP app.
 *
 * @module
 */
import { createApp } from "../src/api/app.ts";
import type { Database } from "../src/db/port.ts";
import { JobScheduler } from "../src/scheduler/job_scheduler.ts";
import { createWorker, type JobHandler, type Worker } from "../src/worker/mod.ts";
import { NOOP } from "./_db.ts";

const QUIET = {
  info() {},
  warn(message: string, fields?: Record<string, unknown>) {
    console.error(`[bench worker] ${message}`, fields ?? "");
  },
  error(message: string, fields?: Record<string, unknown>) {
    console.error(`[bench worker] ${message}`, fields ?? "");
  },
};

/** Options of {@linkcode startWorkers}. */
export interface WorkerSetup {
  /** Worker instances (each with its own pool). */
  instances: number;
  /** Slots per instance. */
  concurrency: number;
  /** Connections per instance's pool. */
  poolSize: number;
  /** The worker's `completionBatchMs` (default: the runtime's own, 2 ms). */
  completionBatchMs?: number;
  /** The worker's `prefetch`: jobs claimed ahead of free slots (local queue). */
  prefetch?: number;
  /** The handler of `noop` jobs (default: resolves at once). */
  handler?: JobHandler;
}

/** Running workers and their pools. */
export interface Workers {
  readonly workers: Worker[];
  /** Completions written so far, all instances. */
  completed(): number;
  /** Stops every worker (drains) and closes their pools. */
  stop(): Promise<void>;
}

/** Starts `setup.instances` workers on pools opened by `open`. */
export async function startWorkers(
  open: (max: number, name: string) => Database,
  setup: WorkerSetup,
): Promise<Workers> {
  const pools: Database[] = [];
  const workers: Worker[] = [];
  const handler = setup.handler ?? (() => Promise.resolve(null));
  for (let i = 0; i < setup.instances; i++) {
    const db = open(setup.poolSize, `bench-worker-${i}`);
    pools.push(db);
    workers.push(createWorker({
      db,
      handlers: { [NOOP]: handler },
      concurrency: setup.concurrency,
      leaseSeconds: 120,
      workerId: `bench-worker-${i}`,
      sealed: false,
      logger: QUIET,
      ...(setup.completionBatchMs === undefined
        ? {}
        : { completionBatchMs: setup.completionBatchMs }),
      prefetch: setup.prefetch ?? 0,
    }));
  }
  await Promise.all(workers.map((w) => w.start()));
  return {
    workers,
    completed: () => workers.reduce((sum, w) => sum + w.stats.completed, 0),
    async stop() {
      await Promise.all(workers.map((w) => w.stop({ deadlineMs: 5000 })));
      await Promise.allSettled(pools.map((db) => db.close()));
    },
  };
}

/** Starts a JobScheduler (the leader at once, on a fresh database) on its own pool. */
export async function startScheduler(
  open: (max: number, name: string) => Database,
): Promise<{ scheduler: JobScheduler; stop(): Promise<void> }> {
  const db = open(2, "bench-scheduler");
  const scheduler = new JobScheduler(db, { instanceId: "bench-scheduler" });
  await scheduler.start();
  return {
    scheduler,
    async stop() {
      await scheduler.stop();
      await db.close();
    },
  };
}

/** The HTTP app over `db`, as `deno task start` builds it (no logger, no metrics scraping). */
export function buildApp(db: Database): { fetch(request: Request): Response | Promise<Response> } {
  return createApp({ db });
}
