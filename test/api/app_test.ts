/**
 * The HTTP API driven in-process (`app.request`) against real PostgreSQL: the lifecycle end to
 * end, tenants, pagination, and every error code of SPEC section 6 provoked for real.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import * as v from "valibot";
import { createApp } from "../../src/api/app.ts";
import {
  ClaimResponse,
  HistoryResponse,
  JobPageResponse,
  JobResponse,
  TimelineResponse,
} from "../../src/api/schemas.ts";
import { createPgliteDatabase } from "../../src/db/pglite.ts";
import { createPostgresDatabase } from "../../src/db/postgres.ts";
import { migrate } from "../../src/db/migrate.ts";
import type { Database } from "../../src/db/port.ts";
import { TimelineEventEmitter } from "../../src/events/timeline_event_emitter.ts";
import { adminSql, adminUrl } from "../_db.ts";
import {
  assertProblem,
  claimedJob,
  clientOf,
  closedPort,
  startTcpProxy,
  withApp,
} from "./_client.ts";

const FAST_RETRY = { initialDelayMs: 0, jitter: 0 };
const JSON_TYPE = { "content-type": "application/json" };

Deno.test("HTTP lifecycle: create -> schedule -> claim -> complete, with history and timeline", async () => {
  await withApp(async ({ client }) => {
    const created = await client.post("/api/v1/jobs", {
      type: "e2e",
      payload: { n: 1 },
      correlationId: "corr-1",
    }, { "x-actor": "alice" });
    assert.equal(created.status, 201);
    assert.equal(created.body.status, "pending");
    assert.equal(created.headers.get("location"), `/api/v1/jobs/${created.body.id}`);
    v.parse(JobResponse, created.body);
    const id = created.body.id;

    const scheduled = await client.post(`/api/v1/jobs/${id}/schedule`);
    assert.equal(scheduled.status, 200);
    assert.equal(scheduled.body.status, "scheduled");
    const timeline = await client.get(`/api/v1/jobs/${id}/timeline`);
    assert.equal(timeline.status, 200);
    v.parse(TimelineResponse, timeline.body);
    assert.deepEqual(timeline.body.items.map((e: { type: string }) => e.type), [
      "job.created",
      "job.scheduled",
    ]);
    assert.equal(timeline.body.items[0].correlationId, "corr-1");
    assert.equal(timeline.body.items[0].actor, "alice");

    const claim = await client.post("/api/v1/jobs/claim", {
      workerId: "w1",
      types: ["e2e"],
      leaseSeconds: 60,
    });
    assert.equal(claim.status, 200);
    v.parse(ClaimResponse, claim.body);
    const [job] = claim.body.jobs;
    assert.equal(job.id, id);
    assert.equal(job.status, "running");
    assert.equal(job.attempt, 1);
    assert.equal(job.leaseOwner, "w1");
    assert.match(job.leaseId, /^[0-9a-f-]{36}$/);
    assert.ok(Date.parse(job.leaseExpiresAt) > Date.now() + 30_000);

    const beat = await client.post(`/api/v1/jobs/${id}/heartbeat`, {
      leaseId: job.leaseId,
      leaseSeconds: 120,
    });
    assert.equal(beat.status, 200);
    assert.ok(Date.parse(beat.body.leaseExpiresAt) > Date.parse(job.leaseExpiresAt));
    // without leaseSeconds: renewed for the length last granted (120 s), not cut to 30 s
    const keepAlive = await client.post(`/api/v1/jobs/${id}/heartbeat`, { leaseId: job.leaseId });
    assert.equal(keepAlive.status, 200);
    assert.ok(
      Date.parse(keepAlive.body.leaseExpiresAt) >= Date.parse(beat.body.leaseExpiresAt),
      `${keepAlive.body.leaseExpiresAt} >= ${beat.body.leaseExpiresAt}`,
    );
    assert.ok(Date.parse(keepAlive.body.leaseExpiresAt) > Date.now() + 110_000);

    const completed = await client.post(`/api/v1/jobs/${id}/complete`, {
      leaseId: job.leaseId,
      result: { ok: true },
    });
    assert.equal(completed.status, 200);
    assert.equal(completed.body.status, "completed");
    assert.deepEqual(completed.body.result, { ok: true });
    assert.ok(completed.body.completedAt);

    const history = await client.get(`/api/v1/jobs/${id}/history`);
    assert.equal(history.status, 200);
    v.parse(HistoryResponse, history.body);
    const steps = history.body.items.map((h: { fromStatus: string; toStatus: string }) =>
      `${h.fromStatus}->${h.toStatus}`
    );
    assert.deepEqual(steps, [
      "null->pending",
      "pending->scheduled",
      "scheduled->running",
      "running->completed",
    ]);
    const last = history.body.items.at(-1);
    assert.equal(last.details.completedAt !== undefined, true, "completion time in history");
    assert.equal(
      new Date(last.details.completedAt).toISOString(),
      completed.body.completedAt,
    );

    const read = await client.get(`/api/v1/jobs/${id}`);
    assert.equal(read.status, 200);
    assert.equal(read.body.status, "completed");
  });
});

Deno.test("HTTP fail: attempt incremented; retryable failure goes running -> failed -> scheduled", async () => {
  await withApp(async ({ client }) => {
    const job = await claimedJob(client, { retryPolicy: { maxRetries: 2, ...FAST_RETRY } });
    const failed = await client.post(`/api/v1/jobs/${job.id}/fail`, {
      leaseId: job.leaseId,
      error: { message: "boom", code: "E_BOOM", details: { x: 1 } },
    });
    assert.equal(failed.status, 200);
    assert.equal(failed.body.attempt, 1);
    assert.equal(failed.body.status, "scheduled");
    assert.equal(failed.body.lastError.message, "boom");
    const history = await client.get(`/api/v1/jobs/${job.id}/history`);
    const steps = history.body.items.map((h: { toStatus: string }) => h.toStatus);
    assert.deepEqual(steps.slice(-3), ["running", "failed", "scheduled"]);

    // non-retryable: failed and terminal at once
    const again = await client.post("/api/v1/jobs/claim", {
      workerId: "w",
      types: [job.type],
    });
    assert.equal(again.body.jobs[0].attempt, 2);
    const terminal = await client.post(`/api/v1/jobs/${job.id}/fail`, {
      leaseId: again.body.jobs[0].leaseId,
      error: "fatal",
      retryable: false,
    });
    assert.equal(terminal.status, 200);
    assert.equal(terminal.body.status, "failed");
    assert.equal(terminal.body.terminal, true);
    assert.equal(terminal.body.attempt, 2);
    assert.deepEqual(terminal.body.lastError, { message: "fatal" });
  });
});

Deno.test("HTTP fail without an error body records a generic failure", async () => {
  await withApp(async ({ client }) => {
    const created = await client.post("/api/v1/jobs", { type: "bare-fail", maxRetries: 0 });
    await client.post(`/api/v1/jobs/${created.body.id}/schedule`);
    const claim = await client.post("/api/v1/jobs/claim", { workerId: "w", types: ["bare-fail"] });
    const failed = await client.post(`/api/v1/jobs/${created.body.id}/fail`, {
      leaseId: claim.body.jobs[0].leaseId,
    });
    assert.equal(failed.status, 200);
    assert.equal(failed.body.status, "failed");
    assert.equal(failed.body.terminal, true);
    assert.deepEqual(failed.body.lastError, { message: "Job failed" });
  });
});

Deno.test("HTTP retry policy maxRetries=3: re-enters scheduled 3 times, then the 4th failure is terminal", async () => {
  await withApp(async ({ client }) => {
    const job = await claimedJob(client, { retryPolicy: { maxRetries: 3, ...FAST_RETRY } });
    let lease = job.leaseId;
    for (let attempt = 1; attempt <= 4; attempt++) {
      const failed = await client.post(`/api/v1/jobs/${job.id}/fail`, {
        leaseId: lease,
        error: { message: `failure ${attempt}` },
      });
      assert.equal(failed.status, 200, failed.text);
      assert.equal(failed.body.attempt, attempt);
      if (attempt < 4) {
        assert.equal(failed.body.status, "scheduled");
        assert.equal(failed.body.terminal, false);
        const claim = await client.post("/api/v1/jobs/claim", {
          workerId: "w",
          types: [job.type],
        });
        assert.equal(claim.body.jobs.length, 1);
        lease = claim.body.jobs[0].leaseId;
      } else {
        assert.equal(failed.body.status, "failed");
        assert.equal(failed.body.terminal, true);
      }
    }
    const history = await client.get(`/api/v1/jobs/${job.id}/history`);
    const pairs = history.body.items.map((h: { fromStatus: string; toStatus: string }) =>
      `${h.fromStatus}->${h.toStatus}`
    );
    assert.equal(pairs.filter((p: string) => p === "failed->scheduled").length, 3);
    assert.equal(pairs.filter((p: string) => p === "running->failed").length, 4);
    assert.equal(pairs.at(-1), "running->failed");
    const timeline = await client.get(`/api/v1/jobs/${job.id}/timeline`);
    const types = timeline.body.items.map((e: { type: string }) => e.type);
    assert.equal(types.filter((t: string) => t === "job.retry_scheduled").length, 3);

    // an operator may still retry a terminally failed job by hand
    const manual = await client.post(`/api/v1/jobs/${job.id}/retry`, undefined, {
      "x-actor": "ops",
    });
    assert.equal(manual.status, 200);
    assert.equal(manual.body.status, "scheduled");
  });
});

Deno.test("HTTP invalid transitions are 409 invalid_transition with from and to", async () => {
  await withApp(async ({ client }) => {
    const job = await claimedJob(client);
    await client.post(`/api/v1/jobs/${job.id}/complete`, { leaseId: job.leaseId });
    const schedule = await client.post(`/api/v1/jobs/${job.id}/schedule`);
    const p1 = assertProblem(schedule, 409, "invalid_transition");
    assert.equal(p1.from, "completed");
    assert.equal(p1.to, "scheduled");
    const cancel = await client.post(`/api/v1/jobs/${job.id}/cancel`, { reason: "late" });
    const p2 = assertProblem(cancel, 409, "invalid_transition");
    assert.deepEqual([p2.from, p2.to], ["completed", "cancelled"]);
    const retry = await client.post(`/api/v1/jobs/${job.id}/retry`);
    const p3 = assertProblem(retry, 409, "invalid_transition");
    assert.deepEqual([p3.from, p3.to], ["completed", "scheduled"]);
    // completed -> running: a lease operation on a job that is no longer running
    const complete = await client.post(`/api/v1/jobs/${job.id}/complete`, {
      leaseId: job.leaseId,
    });
    const p4 = assertProblem(complete, 409, "invalid_transition");
    assert.equal(p4.from, "completed");
  });
});

Deno.test("HTTP cancel: with and without a body; the reason is recorded", async () => {
  await withApp(async ({ client }) => {
    const a = await client.post("/api/v1/jobs", { type: "c" });
    const cancelled = await client.post(`/api/v1/jobs/${a.body.id}/cancel`, {
      reason: "no longer needed",
    });
    assert.equal(cancelled.status, 200);
    assert.equal(cancelled.body.status, "cancelled");
    assert.equal(cancelled.body.statusReason, "no longer needed");
    const b = await client.post("/api/v1/jobs", { type: "c" });
    const bare = await client.request("POST", `/api/v1/jobs/${b.body.id}/cancel`);
    assert.equal(bare.status, 200);
    assert.equal(bare.body.status, "cancelled");
  });
});

Deno.test("HTTP idempotent create: same key and request -> 200 same job; different request -> 409", async () => {
  await withApp(async ({ client }) => {
    const body = { type: "idem", payload: { a: 1 }, idempotencyKey: "k-1" };
    const first = await client.post("/api/v1/jobs", body);
    assert.equal(first.status, 201);
    const replay = await client.post("/api/v1/jobs", body);
    assert.equal(replay.status, 200);
    assert.equal(replay.body.id, first.body.id);
    const conflict = await client.post("/api/v1/jobs", { ...body, payload: { a: 2 } });
    assertProblem(conflict, 409, "idempotency_conflict");
    // keys are per tenant
    const otherTenant = await client.post("/api/v1/jobs", body, { "x-tenant-id": "acme" });
    assert.equal(otherTenant.status, 201);
    assert.notEqual(otherTenant.body.id, first.body.id);
  });
});

Deno.test("HTTP: a JSON array where a body or a field must be an object is 400 and changes nothing", async () => {
  await withApp(async ({ client }) => {
    const created = await client.post("/api/v1/jobs", { type: "arr" });
    const id = created.body.id;
    for (const action of ["cancel", "schedule", "retry"]) {
      const reply = await client.post(`/api/v1/jobs/${id}/${action}`, []);
      assertProblem(reply, 400, "validation_failed");
      assert.equal(reply.body.issues[0].path, "");
    }
    assert.equal((await client.get(`/api/v1/jobs/${id}`)).body.status, "pending");

    const policy = await client.post("/api/v1/jobs", { type: "arr", retryPolicy: [] });
    assertProblem(policy, 400, "validation_failed");
    assert.equal(policy.body.issues[0].path, "retryPolicy");
    const workflow = await client.post("/api/v1/workflows", {
      jobs: [{ ref: "a", type: "arr" }, [{ ref: "b", type: "arr" }]],
    });
    assertProblem(workflow, 400, "validation_failed");
    assert.equal(workflow.body.issues[0].path, "jobs.1");
    const nested = await client.post("/api/v1/workflows", {
      jobs: [{ ref: "a", type: "arr", retryPolicy: [] }],
    });
    assertProblem(nested, 400, "validation_failed");
    assert.equal(nested.body.issues[0].path, "jobs.0.retryPolicy");
    const claimed = await claimedJob(client);
    const failed = await client.post(`/api/v1/jobs/${claimed.id}/fail`, {
      leaseId: claimed.leaseId,
      error: [],
    });
    assertProblem(failed, 400, "validation_failed");
    assert.equal(failed.body.issues[0].path, "error");
    assert.equal((await client.get(`/api/v1/jobs/${claimed.id}`)).body.status, "running");

    // arrays stay fine where the body takes any JSON or a list
    const listPayload = await client.post("/api/v1/jobs", { type: "arr", payload: [1, [2]] });
    assert.equal(listPayload.status, 201);
    assert.deepEqual(listPayload.body.payload, [1, [2]]);
    const claim = await client.post("/api/v1/jobs/claim", { workerId: "w", types: ["none"] });
    assert.equal(claim.status, 200);
  });
});

Deno.test("HTTP: payload null is kept as null; a payload left out is {}", async () => {
  await withApp(async ({ client }) => {
    const explicit = await client.post("/api/v1/jobs", { type: "nul", payload: null });
    assert.equal(explicit.status, 201);
    assert.equal(explicit.body.payload, null);
    assert.equal((await client.get(`/api/v1/jobs/${explicit.body.id}`)).body.payload, null);
    const omitted = await client.post("/api/v1/jobs", { type: "nul" });
    assert.deepEqual(omitted.body.payload, {});
    // concurrent creates go through group intake: the same answers
    const burst = await Promise.all(
      Array.from(
        { length: 6 },
        (_, i) =>
          client.post("/api/v1/jobs", i % 2 ? { type: "nul", payload: null } : { type: "nul" }),
      ),
    );
    assert.deepEqual(burst.map((reply) => reply.body.payload), [{}, null, {}, null, {}, null]);
  });
});

Deno.test("HTTP 409 lease_mismatch, sealed_mode and dependencies_pending, provoked for real", async () => {
  await withApp(async ({ client, store }) => {
    const job = await claimedJob(client);
    const wrongLease = await client.post(`/api/v1/jobs/${job.id}/complete`, {
      leaseId: crypto.randomUUID(),
    });
    assertProblem(wrongLease, 409, "lease_mismatch");
    const wrongBeat = await client.post(`/api/v1/jobs/${job.id}/heartbeat`, {
      leaseId: crypto.randomUUID(),
    });
    assertProblem(wrongBeat, 409, "lease_mismatch");

    const parent = await client.post("/api/v1/jobs", { type: "parent" });
    const child = await client.post("/api/v1/jobs", {
      type: "child",
      dependsOn: [parent.body.id],
    });
    assert.equal(child.status, 201);
    assertProblem(
      await client.post(`/api/v1/jobs/${child.body.id}/schedule`),
      409,
      "dependencies_pending",
    );

    await store.setSealed(true);
    const system = await client.get("/api/v1/system");
    assert.equal(system.body.sealed, true);
    const networked = await client.post("/api/v1/jobs", { type: "net", requiresNetwork: true });
    assertProblem(
      await client.post(`/api/v1/jobs/${networked.body.id}/schedule`),
      409,
      "sealed_mode",
    );
    await store.setSealed(false);
    const now = await client.post(`/api/v1/jobs/${networked.body.id}/schedule`);
    assert.equal(now.status, 200);
  });
});

Deno.test("HTTP 400 validation_failed (reason invalid_dependency): unknown dependency, other tenant's job, workflow cycle", async () => {
  await withApp(async ({ client }) => {
    assertProblem(
      await client.post("/api/v1/jobs", { type: "x", dependsOn: [crypto.randomUUID()] }),
      400,
      "validation_failed",
    );
    const foreign = await client.post("/api/v1/jobs", { type: "x" }, { "x-tenant-id": "acme" });
    assertProblem(
      await client.post("/api/v1/jobs", { type: "x", dependsOn: [foreign.body.id] }),
      400,
      "validation_failed",
    );
    const cycle = await client.post("/api/v1/workflows", {
      jobs: [
        { ref: "a", type: "x", dependsOn: ["b"] },
        { ref: "b", type: "x", dependsOn: ["a"] },
      ],
    });
    assertProblem(cycle, 400, "validation_failed");
    assert.equal(cycle.body.reason, "invalid_dependency");
    const unknown = await client.post("/api/v1/workflows", {
      jobs: [{ ref: "a", type: "x", dependsOn: ["nope"] }],
    });
    assertProblem(unknown, 400, "validation_failed");
    const list = await client.get("/api/v1/jobs");
    assert.equal(list.body.items.length, 0, "nothing written by a refused workflow");
  });
});

Deno.test("HTTP workflows: 201 with the jobs in order and their refs; dependents wait", async () => {
  await withApp(async ({ client }) => {
    const res = await client.post("/api/v1/workflows", {
      correlationId: "wf-1",
      jobs: [
        { ref: "fetch", type: "fetch" },
        { ref: "build", type: "build", dependsOn: ["fetch"] },
        { ref: "ship", type: "ship", dependsOn: ["build", "fetch"], priority: 5 },
      ],
    }, { "x-tenant-id": "acme" });
    assert.equal(res.status, 201, res.text);
    assert.deepEqual(res.body.jobs.map((j: { type: string }) => j.type), [
      "fetch",
      "build",
      "ship",
    ]);
    assert.equal(res.body.refs.fetch, res.body.jobs[0].id);
    assert.deepEqual(res.body.jobs[1].dependsOn, [res.body.refs.fetch]);
    assert.ok(res.body.jobs.every((j: { tenantId: string }) => j.tenantId === "acme"));
    assert.ok(res.body.jobs.every((j: { correlationId: string }) => j.correlationId === "wf-1"));
    assertProblem(
      await client.post(`/api/v1/jobs/${res.body.refs.build}/schedule`, undefined, {
        "x-tenant-id": "acme",
      }),
      409,
      "dependencies_pending",
    );
  });
});

Deno.test("HTTP tenants: X-Tenant-Id scopes reads and writes; another tenant's job is 404", async () => {
  await withApp(async ({ client }) => {
    const acme = { "x-tenant-id": "acme" };
    const job = await client.post("/api/v1/jobs", { type: "t" }, acme);
    assert.equal(job.body.tenantId, "acme");
    assert.equal((await client.get(`/api/v1/jobs/${job.body.id}`, acme)).status, 200);
    for (
      const reply of [
        await client.get(`/api/v1/jobs/${job.body.id}`),
        await client.get(`/api/v1/jobs/${job.body.id}`, { "x-tenant-id": "globex" }),
        await client.get(`/api/v1/jobs/${job.body.id}/history`),
        await client.get(`/api/v1/jobs/${job.body.id}/timeline`),
        await client.post(`/api/v1/jobs/${job.body.id}/schedule`),
        await client.post(`/api/v1/jobs/${job.body.id}/cancel`),
      ]
    ) {
      assertProblem(reply, 404, "not_found");
    }
    assert.equal((await client.get(`/api/v1/jobs/${job.body.id}`, acme)).body.status, "pending");
    assert.equal((await client.get("/api/v1/jobs")).body.items.length, 0);
    assert.equal((await client.get("/api/v1/jobs", acme)).body.items.length, 1);

    // claim: the header's tenant, `default` without it; every tenant only when asked
    await client.post(`/api/v1/jobs/${job.body.id}/schedule`, undefined, acme);
    const scoped = await client.post("/api/v1/jobs/claim", { workerId: "w", types: ["t"] }, {
      "x-tenant-id": "globex",
    });
    assert.equal(scoped.body.jobs.length, 0);
    const unnamed = await client.post("/api/v1/jobs/claim", { workerId: "w", types: ["t"] });
    assert.deepEqual(unnamed.body, { jobs: [] });
    const any = await client.post("/api/v1/jobs/claim", {
      workerId: "w",
      types: ["t"],
      allTenants: true,
    });
    assert.equal(any.body.jobs.length, 1);
    assert.equal(any.body.jobs[0].tenantId, "acme");
    // the lease operations are tenant-scoped too
    assertProblem(
      await client.post(`/api/v1/jobs/${job.body.id}/complete`, {
        leaseId: any.body.jobs[0].leaseId,
      }),
      404,
      "not_found",
    );
    const done = await client.post(`/api/v1/jobs/${job.body.id}/complete`, {
      leaseId: any.body.jobs[0].leaseId,
    }, acme);
    assert.equal(done.status, 200);
  });
});

Deno.test("HTTP concurrent POST /jobs share statements (group intake); each answer is its own job, tenant and actor", async () => {
  await withApp(async ({ client, db }) => {
    const replies = await Promise.all(
      Array.from(
        { length: 24 },
        (_, i) =>
          client.post("/api/v1/jobs", { type: "t", payload: { i }, priority: i }, {
            "x-tenant-id": i % 2 === 0 ? "acme" : "globex",
            "x-actor": `user-${i % 3}`,
          }),
      ),
    );
    replies.forEach((reply, i) => {
      assert.equal(reply.status, 201);
      assert.equal(reply.headers.get("location"), `/api/v1/jobs/${reply.body.id}`);
      assert.deepEqual(reply.body.payload, { i });
      assert.equal(reply.body.priority, i);
      assert.equal(reply.body.tenantId, i % 2 === 0 ? "acme" : "globex");
    });
    const ids = replies.map((r) => r.body.id as string);
    const rows = await db.query<{ id: string; status_actor: string; created_at: Date }>(
      `select id, status_actor, created_at from jobengine.jobs where id = any ($1::uuid[])`,
      [ids],
    );
    assert.equal(rows.length, 24);
    for (const row of rows) {
      assert.equal(row.status_actor, `user-${ids.indexOf(row.id) % 3}`);
    }
    // jobs of one statement share its transaction's now(): fewer statements than jobs
    assert.ok(new Set(rows.map((r) => r.created_at.getTime())).size < 24);
  });
});

Deno.test("HTTP GET /jobs: newest first, cursor pages without duplicates under concurrent inserts, filters", async () => {
  await withApp(async ({ client }) => {
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      const res = await client.post("/api/v1/jobs", { type: i % 2 ? "odd" : "even" });
      ids.push(res.body.id);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = cursor ? `?limit=3&cursor=${encodeURIComponent(cursor)}` : "?limit=3";
      const page = await client.get(`/api/v1/jobs${query}`);
      assert.equal(page.status, 200);
      v.parse(JobPageResponse, page.body);
      seen.push(...page.body.items.map((j: { id: string }) => j.id));
      cursor = page.body.nextCursor;
      pages++;
      // a concurrent insert lands before the cursor and never shifts later pages
      await client.post("/api/v1/jobs", { type: "late" });
    } while (cursor);
    assert.equal(pages, 3);
    assert.deepEqual(seen, [...ids].reverse());

    const odd = await client.get("/api/v1/jobs?type=odd");
    assert.equal(odd.body.items.length, 3);
    const two = await client.get("/api/v1/jobs?type=odd&type=even");
    assert.equal(two.body.items.length, 7);
    await client.post(`/api/v1/jobs/${ids[0]}/cancel`);
    const cancelled = await client.get("/api/v1/jobs?status=cancelled");
    assert.deepEqual(cancelled.body.items.map((j: { id: string }) => j.id), [ids[0]]);
    const several = await client.get("/api/v1/jobs?status=pending,cancelled&limit=500");
    assert.equal(several.body.items.length, 10);
    assert.equal(several.body.nextCursor, null);
  });
});

Deno.test("HTTP 400 validation_failed with issues: bodies, queries, path ids, headers", async () => {
  await withApp(async ({ client }) => {
    const missing = assertProblem(
      await client.post("/api/v1/jobs", { payload: {} }),
      400,
      "validation_failed",
    );
    assert.deepEqual(missing.issues[0].in, "body");
    assert.deepEqual(missing.issues[0].path, "type");
    const unknown = assertProblem(
      await client.post("/api/v1/jobs", { type: "x", tenantId: "sneaky" }),
      400,
      "validation_failed",
    );
    assert.equal(unknown.issues[0].path, "tenantId");
    const policy = assertProblem(
      await client.post("/api/v1/jobs", { type: "x", retryPolicy: { maxRetries: 101 } }),
      400,
      "validation_failed",
    );
    assert.equal(policy.issues[0].path, "retryPolicy.maxRetries");
    for (
      const body of [
        { type: "" },
        { type: "x".repeat(201) },
        { type: 5 },
        { type: "x", priority: 1.5 },
        { type: "x", priority: 1e9 },
        { type: "x", notBefore: "tomorrow" },
        { type: "x", notBefore: "2026-02-30T00:00:00Z" },
        { type: "x", notBefore: "0000-01-01T00:00:00Z" },
        { type: "x", dependsOn: ["not-a-uuid"] },
        { type: "x", requiresNetwork: "yes" },
        { type: "x", retryPolicy: { backoff: "random" } },
        [],
        "a string",
        null,
      ]
    ) {
      assertProblem(await client.post("/api/v1/jobs", body), 400, "validation_failed");
    }
    assertProblem(await client.post("/api/v1/jobs"), 400, "validation_failed");
    assertProblem(
      await client.request("POST", "/api/v1/jobs", {
        raw: '{"type": "x",',
        headers: { "content-type": "application/json" },
      }),
      400,
      "validation_failed",
    );
    assertProblem(
      await client.request("POST", "/api/v1/jobs", {
        raw: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]),
        headers: { "content-type": "application/json" },
      }),
      400,
      "validation_failed",
    );
    const deep = "[".repeat(5000) + "]".repeat(5000);
    assertProblem(
      await client.request("POST", "/api/v1/jobs", {
        raw: `{"type":"x","payload":${deep}}`,
        headers: { "content-type": "application/json" },
      }),
      400,
      "validation_failed",
    );
    // a NUL character is valid JSON but not storable in PostgreSQL text/jsonb
    assertProblem(
      await client.post("/api/v1/jobs", { type: "a\u0000b" }),
      400,
      "validation_failed",
    );
    assertProblem(
      await client.post("/api/v1/jobs", { type: "x", payload: { s: "a\u0000b" } }),
      400,
      "validation_failed",
    );

    const path = assertProblem(
      await client.get("/api/v1/jobs/not-a-uuid"),
      400,
      "validation_failed",
    );
    assert.deepEqual(path.issues[0], { in: "path", path: "id", message: "Must be a UUID" });
    assertProblem(await client.post("/api/v1/jobs/42/cancel"), 400, "validation_failed");
    for (
      const query of [
        "?status=bogus",
        "?status=pending,nope",
        "?status=",
        "?status=,",
        "?type=",
        "?limit=0",
        "?limit=501",
        "?limit=ten",
        "?cursor=garbage",
      ]
    ) {
      const res = assertProblem(await client.get(`/api/v1/jobs${query}`), 400, "validation_failed");
      assert.equal(res.issues[0].in, "query");
    }
    const header = assertProblem(
      await client.get("/api/v1/jobs", { "x-tenant-id": "x".repeat(201) }),
      400,
      "validation_failed",
    );
    assert.equal(header.issues[0].in, "header");
    // a field inside the error object is named, not "Expected (string | Object)"
    const failPath = `/api/v1/jobs/${crypto.randomUUID()}/fail`;
    const extra = assertProblem(
      await client.post(failPath, {
        leaseId: crypto.randomUUID(),
        error: { message: "m", foo: 1 },
      }),
      400,
      "validation_failed",
    );
    assert.deepEqual(extra.issues, [{ in: "body", path: "error.foo", message: "Unknown field" }]);
    const badCode = assertProblem(
      await client.post(failPath, { leaseId: crypto.randomUUID(), error: { code: 5 } }),
      400,
      "validation_failed",
    );
    assert.deepEqual(badCode.issues.map((i: { path: string }) => i.path), [
      "error.message",
      "error.code",
    ]);
    assertProblem(
      await client.post("/api/v1/jobs/claim", { workerId: "w", limit: 0 }),
      400,
      "validation_failed",
    );
    assertProblem(
      await client.post("/api/v1/jobs/claim", { types: ["x"] }),
      400,
      "validation_failed",
    );
    assertProblem(
      await client.post(`/api/v1/jobs/${crypto.randomUUID()}/fail`, { error: "no lease given" }),
      400,
      "validation_failed",
    );
    assertProblem(await client.get("/api/v1/events?after=-1"), 400, "validation_failed");
    assertProblem(await client.get("/api/v1/events?types=job.nope"), 400, "validation_failed");
    assertProblem(await client.get("/api/v1/events?types="), 400, "validation_failed");
  });
});

Deno.test("HTTP 404 not_found: unknown job, unknown route; 405 for a wrong method", async () => {
  await withApp(async ({ client }) => {
    const id = crypto.randomUUID();
    for (
      const reply of [
        await client.get(`/api/v1/jobs/${id}`),
        await client.get(`/api/v1/jobs/${id}/history`),
        await client.get(`/api/v1/jobs/${id}/timeline`),
        await client.post(`/api/v1/jobs/${id}/schedule`),
        await client.post(`/api/v1/jobs/${id}/retry`),
        await client.post(`/api/v1/jobs/${id}/complete`, { leaseId: crypto.randomUUID() }),
        await client.get("/api/v1/nothing-here"),
        await client.get("/"),
      ]
    ) {
      assertProblem(reply, 404, "not_found");
    }
    const wrong = await client.request("DELETE", `/api/v1/jobs/${id}`);
    assertProblem(wrong, 405, "method_not_allowed");
    assert.match(wrong.headers.get("allow") ?? "", /GET/);
    assertProblem(await client.request("PUT", "/api/v1/jobs"), 405, "method_not_allowed");
    // a literal path that a parameter route also matches: 405, not /jobs/:id's 400 for "claim"
    for (const method of ["GET", "DELETE"]) {
      const claim = await client.request(method, "/api/v1/jobs/claim");
      assert.equal(claim.status, 405, `${method} /api/v1/jobs/claim`);
      assert.equal(claim.headers.get("allow"), "POST");
    }
    // request metrics: the literal route's pattern; unknown methods as one `other` series
    for (let i = 0; i < 3; i++) await client.request(`BREW${i}`, "/api/v1/jobs");
    const metrics = (await client.get("/metrics")).text;
    assert.match(
      metrics,
      /^jobengine_http_requests_total\{route="\/api\/v1\/jobs\/claim",method="GET",status="405"\} 1$/m,
    );
    assert.match(
      metrics,
      /^jobengine_http_requests_total\{route="[^"]*",method="other",status="\d+"\} 3$/m,
    );
    assert.doesNotMatch(metrics, /BREW/);
  });
});

Deno.test("HTTP a database that stops answering: 503 after the request timeout, /readyz 503, /metrics 200 with jobengine_database_up 0, then recovery", async () => {
  await withApp(async ({ client, url }) => {
    const job = await client.post("/api/v1/jobs", { type: "hang" });
    assert.equal(job.status, 201);
    // the tables the routes read, locked by a transaction that does not end: their queries
    // wait, as they would on a frozen host
    const locker = createPostgresDatabase(url, { max: 1 });
    let release!: () => void;
    const released = new Promise<void>((resolve) => release = resolve);
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => locked = resolve);
    const holding = locker.transaction(async (tx) => {
      await tx.query(
        "lock table jobengine.jobs, jobengine.schema_migrations, jobengine.timeline_events in access exclusive mode",
      );
      locked();
      await released;
    });
    try {
      await isLocked;
      const read = await client.get(`/api/v1/jobs/${job.body.id}`);
      assertProblem(read, 503, "database_unavailable");
      assert.equal(read.headers.get("retry-after"), "5");
      assertProblem(
        await client.post("/api/v1/jobs", { type: "hang" }),
        503,
        "database_unavailable",
      );
      assertProblem(await client.get("/readyz"), 503, "database_unavailable");
      assert.equal((await client.get("/healthz")).status, 200);
      const metrics = await client.get("/metrics");
      assert.equal(metrics.status, 200);
      assert.match(metrics.text, /^jobengine_database_up 0$/m);
      assert.doesNotMatch(metrics.text, /^jobengine_jobs\{/m);
      assert.match(
        metrics.text,
        /^jobengine_http_requests_total\{route="\/api\/v1\/jobs\/:id",method="GET",status="503"\} 1$/m,
      );
    } finally {
      release();
      await holding;
      await locker.close();
    }
    assert.equal((await client.get(`/api/v1/jobs/${job.body.id}`)).status, 200);
    assert.equal((await client.get("/readyz")).status, 200);
    const after = (await client.get("/metrics")).text;
    assert.match(after, /^jobengine_database_up 1$/m);
    assert.match(after, /^jobengine_jobs\{status="pending"\} [12]$/m);
  }, { requestTimeoutMs: 400 });
});

Deno.test("HTTP 413 payload_too_large by Content-Length and by counting a chunked body; 415 for non-JSON", async () => {
  await withApp(async ({ client }) => {
    const big = JSON.stringify({ type: "x", payload: "y".repeat(3000) });
    assertProblem(
      await client.request("POST", "/api/v1/jobs", {
        raw: big,
        headers: { "content-type": "application/json" },
      }),
      413,
      "payload_too_large",
    );
    // no Content-Length: a stream of chunks, counted as it arrives
    const chunks = Array.from({ length: 10 }, () => new TextEncoder().encode("y".repeat(500)));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"type":"x","payload":"'));
        for (const chunk of chunks) controller.enqueue(chunk);
        controller.enqueue(new TextEncoder().encode('"}'));
        controller.close();
      },
    });
    assertProblem(
      await client.request("POST", "/api/v1/jobs", {
        raw: stream,
        headers: { "content-type": "application/json" },
      }),
      413,
      "payload_too_large",
    );
    // a small body is fine; charset=utf-8 and +json are accepted
    const ok = await client.request("POST", "/api/v1/jobs", {
      raw: JSON.stringify({ type: "x" }),
      headers: { "content-type": "application/json; charset=UTF-8" },
    });
    assert.equal(ok.status, 201);

    for (
      const type of [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin1",
      ]
    ) {
      assertProblem(
        await client.request("POST", "/api/v1/jobs", {
          raw: JSON.stringify({ type: "x" }),
          headers: { "content-type": type },
        }),
        415,
        "unsupported_media_type",
      );
    }
    assertProblem(
      await client.request("POST", "/api/v1/jobs", { raw: JSON.stringify({ type: "x" }) }),
      415,
      "unsupported_media_type",
    );
    // a compressed body is not read as JSON (it was 400 "not valid UTF-8")
    const gzip = await client.request("POST", "/api/v1/jobs", {
      raw: JSON.stringify({ type: "x" }),
      headers: { "content-type": "application/json", "content-encoding": "gzip" },
    });
    assertProblem(gzip, 415, "unsupported_media_type");
    assert.match(gzip.body.detail, /Content-Encoding "gzip"/);
  }, { bodyLimitBytes: 2048 });
});

Deno.test("HTTP error responses never carry lastError.stack", async () => {
  await withApp(async ({ client }) => {
    const job = await claimedJob(client, { retryPolicy: { maxRetries: 0 } });
    const failed = await client.post(`/api/v1/jobs/${job.id}/fail`, {
      leaseId: job.leaseId,
      error: { message: "boom", stack: "Error: boom\n    at secret (/srv/app.ts:1:1)" },
    });
    assert.equal(failed.status, 200);
    assert.equal(failed.body.status, "failed");
    assert.deepEqual(failed.body.lastError, { message: "boom" });
    for (
      const path of [
        `/api/v1/jobs/${job.id}`,
        `/api/v1/jobs/${job.id}/history`,
        `/api/v1/jobs/${job.id}/timeline`,
        "/api/v1/jobs",
      ]
    ) {
      const res = await client.get(path);
      assert.ok(!res.text.includes("secret"), `${path} leaks the stack`);
    }
  });
});

Deno.test("HTTP never answers 500 to arbitrary JSON bodies (property)", async () => {
  await withApp(async ({ client }) => {
    const routes = [
      "/api/v1/jobs",
      "/api/v1/workflows",
      "/api/v1/jobs/claim",
      `/api/v1/jobs/${crypto.randomUUID()}/fail`,
      `/api/v1/jobs/${crypto.randomUUID()}/complete`,
      `/api/v1/jobs/${crypto.randomUUID()}/cancel`,
    ];
    const jobLike = fc.record({
      type: fc.oneof(fc.string(), fc.constant("t")),
      payload: fc.jsonValue(),
      priority: fc.oneof(fc.integer(), fc.double()),
      notBefore: fc.oneof(
        fc.string(),
        fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
      ),
      retryPolicy: fc.dictionary(
        fc.constantFrom("maxRetries", "backoff", "jitter", "initialDelayMs", "x"),
        fc.jsonValue(),
      ),
      dependsOn: fc.array(fc.oneof(fc.uuid(), fc.string())),
    }, { requiredKeys: [] });
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...routes),
        fc.oneof(jobLike, fc.jsonValue()),
        async (route, body) => {
          const res = await client.post(route, body);
          assert.ok(res.status < 500, `${route} answered ${res.status}: ${res.text}`);
        },
      ),
      { numRuns: 150 },
    );
  });
});

Deno.test("HTTP 500 internal_error for an unexpected failure: logged, with no message or stack", async () => {
  const logged: Array<Record<string, unknown> | undefined> = [];
  const broken: Database = {
    kind: "postgres",
    query: () => Promise.reject(new TypeError("secret internals at db.ts:12:3")),
    transaction: () => Promise.reject(new TypeError("secret internals")),
    listen: () => Promise.reject(new TypeError("secret internals")),
    close: () => Promise.resolve(),
  };
  const app = createApp({
    db: broken,
    logger: { debug() {}, info() {}, warn() {}, error: (_msg, fields) => void logged.push(fields) },
  });
  const client = clientOf((request) => app.request(request));
  const res = assertProblem(await client.get("/api/v1/jobs"), 500, "internal_error");
  assert.equal(res.detail, "An internal error occurred");
  assert.ok(!JSON.stringify(res).includes("secret"));
  assert.equal(logged.length, 1);
  assert.match(String((logged[0]?.error as Error).message), /secret internals/);
});

Deno.test("HTTP HEAD on a GET route answers like GET without a body; HEAD /events opens no stream", async () => {
  await withApp(async ({ app, db }) => {
    const res = await app.request("/healthz", { method: "HEAD" });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "");
    const own = new TimelineEventEmitter(db);
    const withEmitter = createApp({ db, emitter: own });
    const head = await withEmitter.request("/api/v1/events", { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.match(head.headers.get("content-type") ?? "", /^text\/event-stream/);
    assert.equal(head.body, null);
    assert.equal(own.subscriberCount, 0);
    assert.equal(own.started, false);
  });
});

Deno.test("HTTP system routes: /system, /healthz, /readyz, /metrics", async () => {
  await withApp(async ({ client }) => {
    const system = await client.get("/api/v1/system");
    assert.deepEqual(system.body, { version: "0.1.0", sealed: false, database: "postgres" });
    for (const prefix of ["", "/api/v1"]) {
      const health = await client.get(`${prefix}/healthz`);
      assert.equal(health.status, 200);
      assert.deepEqual(health.body, { status: "ok" });
      const ready = await client.get(`${prefix}/readyz`);
      assert.equal(ready.status, 200, ready.text);
      assert.equal(ready.body.status, "ready");
    }
    const job = await claimedJob(client);
    await client.post(`/api/v1/jobs/${job.id}/complete`, { leaseId: job.leaseId });
    await client.get(`/api/v1/jobs/${job.id}`);
    await client.get(`/api/v1/jobs/${crypto.randomUUID()}`);
    const metrics = await client.get("/metrics");
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const text = metrics.text;
    assert.match(text, /^jobengine_jobs\{status="completed"\} 1$/m);
    assert.match(text, /^jobengine_jobs\{status="pending"\} 0$/m);
    assert.match(text, /^jobengine_transitions_total\{from="none",to="pending"\} 1$/m);
    assert.match(text, /^jobengine_transitions_total\{from="running",to="completed"\} 1$/m);
    assert.match(text, /^jobengine_claim_duration_seconds_count 1$/m);
    assert.match(text, /^jobengine_claim_duration_seconds_bucket\{le="\+Inf"\} 1$/m);
    assert.match(
      text,
      /^jobengine_http_requests_total\{route="\/api\/v1\/jobs\/:id",method="GET",status="200"\} 1$/m,
    );
    assert.match(
      text,
      /^jobengine_http_requests_total\{route="\/api\/v1\/jobs\/:id",method="GET",status="404"\} 1$/m,
    );
    assert.ok(!text.includes(job.id), "route patterns, never raw paths");
    // counters only grow, and new transitions are added on the next scrape
    const again = await client.post("/api/v1/jobs", { type: "more" });
    await client.post(`/api/v1/jobs/${again.body.id}/cancel`);
    const next = (await client.get("/metrics")).text;
    assert.match(next, /^jobengine_transitions_total\{from="none",to="pending"\} 2$/m);
    assert.match(next, /^jobengine_transitions_total\{from="pending",to="cancelled"\} 1$/m);
  });
});

Deno.test("HTTP /readyz is 503 while migrations are pending", async () => {
  const name = `je_t_empty_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const admin = adminSql();
  await admin.unsafe(`create database ${name}`);
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  const db = createPostgresDatabase(url.toString(), { max: 2 });
  try {
    const client = clientOf((request) => createApp({ db }).request(request));
    const before = assertProblem(await client.get("/readyz"), 503, "migrations_pending");
    assert.ok(before.pending.length > 0);
    assert.equal((await client.get("/healthz")).status, 200);
    await migrate(db);
    assert.equal((await client.get("/readyz")).status, 200);
  } finally {
    await db.close();
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  }
});

Deno.test("HTTP 503 database_unavailable with Retry-After when the database is on a closed port", async () => {
  const db = createPostgresDatabase(`postgres://postgres@127.0.0.1:${closedPort()}/jobengine`, {
    max: 1,
    connectTimeout: 2,
  });
  try {
    const client = clientOf((request) => createApp({ db }).request(request));
    const res = assertProblem(await client.get("/api/v1/jobs"), 503, "database_unavailable");
    assert.ok(!("stack" in res));
    const created = await client.post("/api/v1/jobs", { type: "x" });
    assertProblem(created, 503, "database_unavailable");
    assert.equal(created.headers.get("retry-after"), "5");
    assertProblem(await client.get("/readyz"), 503, "database_unavailable");
    assert.equal((await client.get("/healthz")).status, 200, "alive without a database");
  } finally {
    await db.close();
  }
});

Deno.test("HTTP 503 when the database goes away, and recovery when it returns", async () => {
  await withApp(async ({ url }) => {
    const target = new URL(url);
    const proxy = startTcpProxy({ hostname: target.hostname, port: Number(target.port) });
    const viaProxy = new URL(url);
    viaProxy.hostname = "127.0.0.1";
    viaProxy.port = String(proxy.port);
    const db = createPostgresDatabase(viaProxy.toString(), { max: 2, connectTimeout: 2 });
    try {
      const client = clientOf((request) => createApp({ db }).request(request));
      const before = await client.post("/api/v1/jobs", { type: "x" });
      assert.equal(before.status, 201);
      proxy.cut();
      const down = await client.get(`/api/v1/jobs/${before.body.id}`);
      assertProblem(down, 503, "database_unavailable");
      assert.equal(down.headers.get("retry-after"), "5");
      assertProblem(await client.post("/api/v1/jobs", { type: "x" }), 503, "database_unavailable");
      proxy.restore();
      let recovered = await client.get(`/api/v1/jobs/${before.body.id}`);
      for (let i = 0; i < 20 && recovered.status === 503; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        recovered = await client.get(`/api/v1/jobs/${before.body.id}`);
      }
      assert.equal(recovered.status, 200, recovered.text);
      assert.equal(recovered.body.id, before.body.id);
    } finally {
      await db.close();
      proxy.close();
    }
  });
});

Deno.test("HTTP lifecycle on the embedded default (PGlite, in memory)", async () => {
  const db = await createPgliteDatabase();
  try {
    await migrate(db);
    const client = clientOf((request) => createApp({ db }).request(request));
    const system = await client.get("/api/v1/system");
    assert.equal(system.body.database, "pglite");
    assert.equal((await client.get("/readyz")).status, 200);
    const job = await claimedJob(client, { retryPolicy: { maxRetries: 0 } });
    assert.equal(job.status, "running");
    const done = await client.post(`/api/v1/jobs/${job.id}/complete`, { leaseId: job.leaseId });
    assert.equal(done.body.status, "completed");
    const history = await client.get(`/api/v1/jobs/${job.id}/history`);
    assert.deepEqual(
      history.body.items.map((h: { toStatus: string }) => h.toStatus),
      ["pending", "scheduled", "running", "completed"],
    );
    assertProblem(await client.post(`/api/v1/jobs/${job.id}/schedule`), 409, "invalid_transition");
    assertProblem(await client.get(`/api/v1/jobs/${crypto.randomUUID()}`), 404, "not_found");
    const metrics = await client.get("/metrics");
    assert.match(metrics.text, /^jobengine_jobs\{status="completed"\} 1$/m);
  } finally {
    await db.close();
  }
});

Deno.test("HTTP: a number JavaScript cannot hold exactly is 400 and writes nothing; exact spellings are kept", async () => {
  await withApp(async ({ client, db }) => {
    const count = async () =>
      Number((await db.query<{ n: string }>("select count(*) as n from jobengine.jobs"))[0]!.n);
    for (
      const raw of [
        '{"type":"num","payload":{"big":12345678901234567890}}',
        '{"type":"num","payload":{"inf":1e400}}',
        '{"type":"num","payload":{"digits":0.12345678901234567890123}}',
        '{"type":"num","payload":{"split":12345678.123456789}}',
      ]
    ) {
      const reply = await client.request("POST", "/api/v1/jobs", { raw, headers: JSON_TYPE });
      assertProblem(reply, 400, "validation_failed");
      assert.match(reply.body.issues[0].message, /cannot be kept exactly/);
    }
    assert.equal(await count(), 0, "nothing written");
    const exact = await client.request("POST", "/api/v1/jobs", {
      headers: JSON_TYPE,
      raw:
        '{"type":"num","payload":{"a":9007199254740991,"b":1.50,"c":1E2,"d":-0,"e":1234567890123456e3}}',
    });
    assert.equal(exact.status, 201, exact.text);
    assert.deepEqual(exact.body.payload, {
      a: 9007199254740991,
      b: 1.5,
      c: 100,
      d: 0,
      e: 1234567890123456e3,
    });
  });
});

Deno.test("HTTP: X-Tenant-Id and X-Actor are read as UTF-8 (Latin-1 when the bytes are not UTF-8); control characters are 400", async () => {
  await withApp(async ({ client }) => {
    // what a client sends for "tenantü": its UTF-8 bytes, which reach the server one per character
    const utf8 = (text: string) => String.fromCharCode(...new TextEncoder().encode(text));
    const created = await client.post("/api/v1/jobs", { type: "t" }, {
      "x-tenant-id": utf8("tenantü"),
      "x-actor": utf8("opérateur"),
    });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.body.tenantId, "tenantü");
    const read = await client.get(`/api/v1/jobs/${created.body.id}`, {
      "x-tenant-id": utf8("tenantü"),
    });
    assert.equal(read.status, 200);
    const history = await client.get(`/api/v1/jobs/${created.body.id}/history`, {
      "x-tenant-id": utf8("tenantü"),
    });
    assert.equal(history.body.items[0].actor, "opérateur");

    // a client that sends the Latin-1 byte (fetch does) names the same tenant
    const latin1 = await client.get(`/api/v1/jobs/${created.body.id}`, {
      "x-tenant-id": "tenant\xfc",
    });
    assert.equal(latin1.status, 200);
    assert.equal(latin1.body.tenantId, "tenantü");
    const tab = await client.post("/api/v1/jobs", { type: "t" }, { "x-tenant-id": "a\tb" });
    assertProblem(tab, 400, "validation_failed");
    const list = await client.get("/api/v1/jobs", { "x-tenant-id": "a\tb" });
    assertProblem(list, 400, "validation_failed");
  });
});

Deno.test("HTTP: the 200-character limits count characters as the database does (code points)", async () => {
  await withApp(async ({ client }) => {
    const type = "😀".repeat(150); // 150 characters, 300 UTF-16 units
    const created = await client.post("/api/v1/jobs", { type });
    assert.equal(created.status, 201, created.text);
    const listed = await client.get(`/api/v1/jobs?type=${encodeURIComponent(type)}`);
    assert.equal(listed.status, 200);
    assert.equal(listed.body.items.length, 1);
    const tooLong = await client.post("/api/v1/jobs", { type: "😀".repeat(201) });
    assertProblem(tooLong, 400, "validation_failed");
    const doc = await client.get("/api/v1/openapi.json");
    const body = doc.body.paths["/api/v1/jobs"].post.requestBody.content["application/json"].schema;
    assert.equal(body.properties.type.maxLength, 200, "the OpenAPI document keeps the bound");
  });
});

Deno.test("HTTP /events takes every resume position up to 2^53 - 1 (16 digits), and refuses one above", async () => {
  await withApp(async ({ client }) => {
    const max = await client.request("HEAD", `/api/v1/events?after=${Number.MAX_SAFE_INTEGER}`);
    assert.equal(max.status, 200);
    const above = await client.get("/api/v1/events?after=9007199254740992");
    assertProblem(above, 400, "validation_failed");
  });
});

Deno.test("HTTP notBefore null means now, as in create_job: a job and a workflow job are due at once, and null replays a request that left it out", async () => {
  await withApp(async ({ client }) => {
    const before = Date.now();
    const created = await client.post("/api/v1/jobs", {
      type: "nb.null",
      notBefore: null,
      idempotencyKey: "nb-null",
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.ok(Math.abs(Date.parse(created.body.notBefore) - before) < 60_000);
    const replay = await client.post("/api/v1/jobs", {
      type: "nb.null",
      idempotencyKey: "nb-null",
    });
    assert.equal(replay.status, 200, JSON.stringify(replay.body));
    assert.equal(replay.body.id, created.body.id);
    const workflow = await client.post("/api/v1/workflows", {
      jobs: [{ ref: "a", type: "nb.null.wf", notBefore: null }],
    });
    assert.equal(workflow.status, 201, JSON.stringify(workflow.body));
    assert.ok(Math.abs(Date.parse(workflow.body.jobs[0].notBefore) - before) < 60_000);
  });
});
