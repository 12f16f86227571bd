/**
 * A job created while one of its dependencies is ending in another transaction: two sessions,
 * both orders. Before the dependencies were locked (`create_job`, `create_workflow`: FOR SHARE
 * until commit), a dependent created beside its dependency's completion stayed `pending` for
 * good with `pending_dependencies = 1`.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { withStore } from "../_store.ts";

type Sql = postgres.Sql;

/** A claimed job of a type nothing else claims: its id and lease. */
async function claimed(sql: Sql): Promise<{ id: string; lease: string }> {
  const type = `race-${crypto.randomUUID()}`;
  const [job] = await sql`select id from jobengine.create_job(${type}, '{}', '{}')`;
  await sql`select jobengine.schedule_job(${job!.id})`;
  const [claim] = await sql`
    select id, lease_id from jobengine.claim_jobs('w', ${[type]}, 1, 60)`;
  return { id: claim!.id, lease: claim!.lease_id };
}

/** Resolves to whether `promise` settled within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  promise.then(() => settled = true, () => settled = true);
  await new Promise((resolve) => setTimeout(resolve, ms));
  return settled;
}

function sessions(url: string): [Sql, Sql] {
  const open = () => postgres(url, { max: 1, onnotice: () => {} });
  return [open(), open()];
}

Deno.test("a dependent created while its dependency's completion is uncommitted waits for it, then counts it completed", async () => {
  await withStore(async ({ url }) => {
    const [a, b] = sessions(url);
    let release: (() => void) | undefined;
    try {
      const parent = await claimed(a);
      const held = new Promise<void>((resolve) => release = resolve);
      let inside!: () => void;
      const written = new Promise<void>((resolve) => inside = resolve);
      const completing = a.begin(async (tx) => {
        await tx`select jobengine.complete_job(${parent.id}, ${parent.lease}, '{}')`;
        inside();
        await held;
      });
      await written;
      const creating = b`
        select id from jobengine.create_job('child', '{}', ${
        JSON.stringify({ dependsOn: [parent.id] })
      }::text::jsonb)`;
      assert.equal(
        await settlesWithin(creating, 300),
        false,
        "the create waits for the completion",
      );
      release!();
      await completing;
      const [child] = await creating;
      const [row] = await a`
        select status::text, pending_dependencies from jobengine.jobs where id = ${child!.id}`;
      assert.deepEqual({ ...row }, { status: "pending", pending_dependencies: 0 });
      // eligible: the scheduler's promotion takes it
      const [promoted] = await a`select jobengine.schedule_ready(100) as n`;
      assert.ok(Number(promoted!.n) >= 1);
      const [after] = await a`select status::text from jobengine.jobs where id = ${child!.id}`;
      assert.equal(after!.status, "scheduled");
    } finally {
      release?.();
      await a.end();
      await b.end();
    }
  });
});

Deno.test("a dependency completing while a dependent's creation is uncommitted waits for it, then schedules the dependent", async () => {
  await withStore(async ({ url }) => {
    const [a, b] = sessions(url);
    let release: (() => void) | undefined;
    try {
      const parent = await claimed(a);
      const held = new Promise<void>((resolve) => release = resolve);
      let inside!: () => void;
      const written = new Promise<void>((resolve) => inside = resolve);
      let childId = "";
      const creating = b.begin(async (tx) => {
        const [child] = await tx`
          select id from jobengine.create_job('child', '{}', ${
          JSON.stringify({ dependsOn: [parent.id] })
        }::text::jsonb)`;
        childId = child!.id;
        inside();
        await held;
      });
      await written;
      const completing = a`select jobengine.complete_job(${parent.id}, ${parent.lease}, '{}')`;
      assert.equal(
        await settlesWithin(completing, 300),
        false,
        "the completion waits for the create",
      );
      release!();
      await creating;
      await completing;
      const [row] = await a`
        select status::text, pending_dependencies from jobengine.jobs where id = ${childId}`;
      assert.deepEqual({ ...row }, { status: "scheduled", pending_dependencies: 0 });
    } finally {
      release?.();
      await a.end();
      await b.end();
    }
  });
});

Deno.test("a workflow naming an existing job whose cancellation is uncommitted is created cancelled after it", async () => {
  await withStore(async ({ url }) => {
    const [a, b] = sessions(url);
    let release: (() => void) | undefined;
    try {
      const parent = await claimed(a);
      const held = new Promise<void>((resolve) => release = resolve);
      let inside!: () => void;
      const written = new Promise<void>((resolve) => inside = resolve);
      const cancelling = a.begin(async (tx) => {
        await tx`select jobengine.cancel_job(${parent.id}, 'operator')`;
        inside();
        await held;
      });
      await written;
      const creating = b`
        select id from jobengine.create_workflow(
          ${
        JSON.stringify([{ ref: "x", type: "child", dependsOn: [parent.id] }])
      }::text::jsonb, '{}')`;
      assert.equal(await settlesWithin(creating, 300), false, "the workflow waits for the cancel");
      release!();
      await cancelling;
      const [child] = await creating;
      const [row] = await a`
        select status::text, status_reason from jobengine.jobs where id = ${child!.id}`;
      assert.deepEqual({ ...row }, { status: "cancelled", status_reason: "dependency_cancelled" });
    } finally {
      release?.();
      await a.end();
      await b.end();
    }
  });
});
