/**
 * Chaos fixture: one worker in its own OS process, so that a test can SIGKILL it.
 *
 * Environment: `DATABASE_URL`; `CHAOS_WORKER_ID`; `CHAOS_JOB_TYPE` (default `chaos`);
 * `CHAOS_HANDLER_MS` (how long each handler takes, default 20); `CHAOS_LEASE_SECONDS` (default
 * 2); `CHAOS_CONCURRENCY` (default 8). Prints `ready <worker id>` once claiming, and drains on
 * SIGTERM. Each handler returns `{ workerId }`.
 *
 * @module
 */
import { createPostgresDatabase } from "../../src/db/postgres.ts";
import { createWorker } from "../../src/worker/mod.ts";

const env = (name: string, fallback: string) => Deno.env.get(name) ?? fallback;
const workerId = env("CHAOS_WORKER_ID", `chaos-${Deno.pid}`);
const handlerMs = Number(env("CHAOS_HANDLER_MS", "20"));
const concurrency = Number(env("CHAOS_CONCURRENCY", "8"));
const db = createPostgresDatabase(Deno.env.get("DATABASE_URL")!, {
  max: 3,
  applicationName: workerId,
});
const worker = createWorker({
  db,
  workerId,
  concurrency,
  leaseSeconds: Number(env("CHAOS_LEASE_SECONDS", "2")),
  pollIntervalMs: 250,
  handlers: {
    [env("CHAOS_JOB_TYPE", "chaos")]: async () => {
      await new Promise((resolve) => setTimeout(resolve, handlerMs));
      return { workerId };
    },
  },
  logger: {
    info() {},
    warn: (message, fields) => console.error(`[${workerId}] ${message}`, fields ?? ""),
    error: (message, fields) => console.error(`[${workerId}] ${message}`, fields ?? ""),
  },
});
Deno.addSignalListener("SIGTERM", async () => {
  await worker.stop({ deadlineMs: 2000 });
  await db.close();
  Deno.exit(0);
});
await worker.start();
console.log(`ready ${workerId}`);
