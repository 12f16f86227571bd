/**
 * Test fixture: a fresh migrated PostgreSQL database per call, with a postgres.js adapter and a
 * JobStore over it. Real PostgreSQL only; `deno task test` provides `DATABASE_URL`.
 *
 * @module
 */
import { freshDatabase } from "./_db.ts";
import { createPostgresDatabase } from "../src/db/postgres.ts";
import type { Database } from "../src/db/port.ts";
import { JobStore } from "../src/job/job_store.ts";
import type { ClaimedJob, Job } from "../src/job/job.ts";
import type { JobStatus } from "../src/job/state_machine.ts";

/** What {@linkcode withStore} hands to a test. */
export interface StoreFixture {
  db: Database;
  store: JobStore;
  url: string;
  /** Opens another connection pool to the same database (closed with the fixture). */
  connect(max?: number): Database;
}

/** Runs `fn` against a fresh database; drops it afterwards. */
export async function withStore(fn: (fixture: StoreFixture) => Promise<void>): Promise<void> {
  const fresh = await freshDatabase();
  const extra: Database[] = [];
  const db = createPostgresDatabase(fresh.url, { max: 4 });
  try {
    await fn({
      db,
      store: new JobStore(db),
      url: fresh.url,
      connect(max = 2) {
        const other = createPostgresDatabase(fresh.url, { max });
        extra.push(other);
        return other;
      },
    });
  } finally {
    for (const other of extra) await other.close();
    await db.close();
    await fresh.drop();
  }
}

/** Puts a new job into `status` through the lifecycle functions; returns it (with its lease when running). */
export async function jobIn(
  store: JobStore,
  status: JobStatus,
  options: { type?: string; tenantId?: string } = {},
): Promise<Job | ClaimedJob> {
  const type = options.type ?? `t-${crypto.randomUUID()}`;
  const { job } = await store.create(type, {}, {
    tenantId: options.tenantId,
    retryPolicy: { maxRetries: 0, initialDelayMs: 0, jitter: 0 },
  });
  if (status === "pending") return job;
  if (status === "cancelled") return store.cancel(job.id);
  await store.schedule(job.id);
  if (status === "scheduled") return store.get(job.id);
  const [claimed] = await store.claim({ workerId: "fixture", types: [type], limit: 1 });
  if (!claimed) throw new Error(`Fixture could not claim job ${job.id}`);
  if (status === "running") return claimed;
  if (status === "completed") return store.complete(job.id, claimed.leaseId, { ok: true });
  return store.fail(job.id, claimed.leaseId, { message: "fixture failure" }, false);
}
