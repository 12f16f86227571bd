/**
 * Chaos fixture: one JobScheduler in its own OS process, so that a test can SIGKILL the leader.
 *
 * Environment: `DATABASE_URL`; `CHAOS_INSTANCE_ID`; `CHAOS_LEASE_SECONDS` (leadership lease,
 * default 3); `CHAOS_INTERVAL_MS` (the steady tick, default 250). Prints `ready <id>` once
 * started, then `leader <id> <epoch ms>` when it takes leadership and `lost <id> <epoch ms>` when
 * it loses it. Stops (releasing leadership) on SIGTERM.
 *
 * @module
 */
import { createPostgresDatabase } from "../../src/db/postgres.ts";
import { JobScheduler } from "../../src/scheduler/job_scheduler.ts";

const instanceId = Deno.env.get("CHAOS_INSTANCE_ID") ?? `scheduler-${Deno.pid}`;
const db = createPostgresDatabase(Deno.env.get("DATABASE_URL")!, {
  max: 2,
  applicationName: instanceId,
});
const scheduler = new JobScheduler(db, {
  instanceId,
  leaseSeconds: Number(Deno.env.get("CHAOS_LEASE_SECONDS") ?? "3"),
  intervalMs: Number(Deno.env.get("CHAOS_INTERVAL_MS") ?? "250"),
  logger: {
    info(message) {
      if (message === "Scheduler took leadership") {
        console.log(`leader ${instanceId} ${Date.now()}`);
      }
    },
    warn(message, fields) {
      if (message === "Scheduler lost leadership") console.log(`lost ${instanceId} ${Date.now()}`);
      else console.error(`[${instanceId}] ${message}`, fields ?? "");
    },
    error: (message, fields) => console.error(`[${instanceId}] ${message}`, fields ?? ""),
  },
});
Deno.addSignalListener("SIGTERM", async () => {
  await scheduler.stop();
  await db.close();
  Deno.exit(0);
});
await scheduler.start();
console.log(`ready ${instanceId}`);
