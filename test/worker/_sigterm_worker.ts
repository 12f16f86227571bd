/**
 * Test fixture: a worker process that drains on SIGTERM. Mode `finish`: the handler completes
 * 300 ms after it starts; mode `stuck`: it never does (the drain deadline releases it). Prints
 * `started <job id>` when the handler starts.
 *
 * @module
 */
import { createPostgresDatabase } from "../../src/db/postgres.ts";
import { createWorker } from "../../src/worker/mod.ts";

const mode = Deno.args[0] === "stuck" ? "stuck" : "finish";
const db = createPostgresDatabase(Deno.env.get("DATABASE_URL")!, { max: 2 });
const worker = createWorker({
  db,
  handlers: {
    [`sigterm-${mode}`]: async (job) => {
      console.log(`started ${job.id}`);
      if (mode === "stuck") return await new Promise(() => {});
      await new Promise((resolve) => setTimeout(resolve, 300));
      return { finished: true };
    },
  },
  logger: { info() {}, warn: console.error, error: console.error },
});
Deno.addSignalListener("SIGTERM", async () => {
  await worker.stop({ deadlineMs: mode === "stuck" ? 200 : 10_000 });
  await db.close();
  Deno.exit(0);
});
await worker.start();
