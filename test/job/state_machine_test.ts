import assert from "node:assert/strict";
import {
  assertTransition,
  canTransition,
  JOB_STATUSES,
  type JobStatus,
  transitionPairs,
  TRANSITIONS,
} from "../../src/job/state_machine.ts";
import { InvalidTransitionError } from "../../src/errors.ts";
import { jobIn, withStore } from "../_store.ts";

const ALLOWED = new Set([
  "pending->scheduled",
  "pending->cancelled",
  "scheduled->running",
  "scheduled->cancelled",
  "running->completed",
  "running->failed",
  "running->cancelled",
  "failed->scheduled",
]);

Deno.test("TRANSITIONS holds exactly the SPEC's eight pairs", () => {
  assert.deepEqual(new Set(transitionPairs().map(([from, to]) => `${from}->${to}`)), ALLOWED);
});

Deno.test("TRANSITIONS names every status, and only statuses", () => {
  assert.deepEqual(Object.keys(TRANSITIONS).sort(), [...JOB_STATUSES].sort());
  for (const targets of Object.values(TRANSITIONS)) {
    for (const to of targets) assert.ok(JOB_STATUSES.includes(to));
  }
});

Deno.test("canTransition() answers all 36 pairs as the table says", () => {
  for (const from of JOB_STATUSES) {
    for (const to of JOB_STATUSES) {
      assert.equal(canTransition(from, to), ALLOWED.has(`${from}->${to}`), `${from} -> ${to}`);
    }
  }
});

Deno.test("assertTransition() rejects completed -> running", () => {
  assert.throws(
    () => assertTransition("completed", "running", "42"),
    (error: unknown) => {
      assert.ok(error instanceof InvalidTransitionError);
      assert.equal(error.from, "completed");
      assert.equal(error.to, "running");
      assert.equal(error.code, "invalid_transition");
      assert.equal(error.sqlstate, "JE001");
      assert.equal(
        error.message,
        'Cannot transition job 42 to "running": current status is "completed"',
      );
      return true;
    },
  );
});

Deno.test("assertTransition() accepts failed -> scheduled", () => {
  assertTransition("failed", "scheduled");
});

Deno.test("jobengine.job_transitions equals TRANSITIONS pair for pair", async () => {
  await withStore(async ({ db }) => {
    const rows = await db.query<{ from_status: string; to_status: string }>(
      "select from_status::text, to_status::text from jobengine.job_transitions",
    );
    const database = new Set(rows.map((r) => `${r.from_status}->${r.to_status}`));
    const typescript = new Set(transitionPairs().map(([from, to]) => `${from}->${to}`));
    assert.deepEqual(database, typescript);
    const statuses = await db.query<{ s: string }>(
      "select unnest(enum_range(null::jobengine.job_status))::text as s",
    );
    assert.deepEqual(statuses.map((r) => r.s), [...JOB_STATUSES]);
  });
});

Deno.test("the database trigger lets exactly the TypeScript pairs through, all 36 tried", async () => {
  await withStore(async ({ db, store }) => {
    const outcomes: string[] = [];
    for (const from of JOB_STATUSES) {
      for (const to of JOB_STATUSES) {
        const job = await jobIn(store, from);
        const lease = to === "running"
          ? `, lease_id = gen_random_uuid(), lease_owner = 'raw', lease_expires_at = now() + interval '1 minute'`
          : "";
        const before = await db.query<{ n: number }>(
          "select count(*)::int as n from jobengine.job_history where job_id = $1",
          [job.id],
        );
        try {
          await db.query(
            `update jobengine.jobs set status = $2::jobengine.job_status${lease} where id = $1`,
            [
              job.id,
              to,
            ],
          );
          outcomes.push(`${from}->${to}`);
          const after = await db.query<{ n: number }>(
            "select count(*)::int as n from jobengine.job_history where job_id = $1",
            [job.id],
          );
          assert.equal(after[0]!.n, before[0]!.n + 1, `${from} -> ${to} writes one history row`);
        } catch (error) {
          assert.ok(error instanceof InvalidTransitionError, `${from} -> ${to}: ${error}`);
          assert.equal(error.from, from);
          assert.equal(error.to, to as JobStatus);
        }
      }
    }
    assert.deepEqual(new Set(outcomes), new Set(transitionPairs().map(([f, t]) => `${f}->${t}`)));
  });
});
