import assert from "node:assert/strict";
import { rowToEvent, rowToHistoryEntry, rowToJob } from "../../src/job/job.ts";

const base = {
  id: "01a226c4-1fa8-7a96-a3b0-9c73d531ddf1",
  tenant_id: "default",
  type: "t",
  status: "scheduled",
  payload: {},
  priority: 0,
  attempt: 0,
  max_retries: 3,
  retry_policy: {},
  depends_on: [],
  requires_network: false,
  terminal: false,
  version: 2,
};

Deno.test("rowToJob writes each row's own timestamps when consecutive rows share or differ in them", () => {
  const a = new Date("2026-01-01T00:00:00.001Z");
  const b = new Date("2026-01-01T00:00:00.002Z");
  const rows = [
    { ...base, not_before: a, created_at: a, updated_at: b, scheduled_at: b },
    { ...base, not_before: a, created_at: b, updated_at: b, scheduled_at: a },
    { ...base, not_before: b, created_at: b, updated_at: a, scheduled_at: null },
  ];
  const jobs = rows.map(rowToJob);
  assert.deepEqual(
    jobs.map((j) => [j.notBefore, j.createdAt, j.updatedAt, j.scheduledAt]),
    [
      [a.toISOString(), a.toISOString(), b.toISOString(), b.toISOString()],
      [a.toISOString(), b.toISOString(), b.toISOString(), a.toISOString()],
      [b.toISOString(), b.toISOString(), a.toISOString(), null],
    ],
  );
  assert.equal(jobs[2]!.startedAt, null);
  const entry = rowToHistoryEntry({
    job_id: base.id,
    seq: 1,
    to_status: "pending",
    attempt: 0,
    occurred_at: a,
  });
  assert.equal(entry.occurredAt, "2026-01-01T00:00:00.001Z");
  const event = rowToEvent({
    id: base.id,
    type: "job.created",
    sequence: 7,
    tenant_id: "default",
    subject_kind: "job",
    subject_id: base.id,
    occurred_at: "2026-01-01T00:00:00.003Z",
    data: {},
  });
  assert.equal(event.occurredAt, "2026-01-01T00:00:00.003Z");
});
