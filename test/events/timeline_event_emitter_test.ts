/**
 * TimelineEventEmitter against real PostgreSQL (and PGlite): order, exactly-once delivery,
 * resume without gap or duplicate at the seam, and the two kinds of sequence gap (a rolled-back
 * transaction, a late-committing transaction holding a lower sequence).
 */
import assert from "node:assert/strict";
import { createPgliteDatabase } from "../../src/db/pglite.ts";
import { migrate } from "../../src/db/migrate.ts";
import type { Database } from "../../src/db/port.ts";
import { TimelineEventEmitter } from "../../src/events/timeline_event_emitter.ts";
import type { EventEnvelope } from "../../src/job/job.ts";
import { JobStore } from "../../src/job/job_store.ts";
import { withStore } from "../_store.ts";

async function waitFor(what: string, predicate: () => boolean, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function sleep(ms: number) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function allSequences(db: Database, after = 0): Promise<number[]> {
  const rows = await db.query<{ sequence: number }>(
    `select sequence from jobengine.timeline_events where sequence > $1::int8 order by sequence`,
    [after],
  );
  return rows.map((row) => Number(row.sequence));
}

function collector() {
  const events: EventEnvelope[] = [];
  return { events, onEvent: (event: EventEnvelope) => void events.push(event) };
}

function sequences(events: readonly EventEnvelope[]): number[] {
  return events.map((event) => event.sequence);
}

/** Opens a transaction on `db` that creates a job and stays open until `finish` is called. */
function openTransaction(db: Database, type: string) {
  let release!: (commit: boolean) => void;
  const decision = new Promise<boolean>((resolve) => release = resolve);
  let created!: () => void;
  const wrote = new Promise<void>((resolve) => created = resolve);
  const done = db.transaction(async (tx) => {
    await new JobStore(tx).create(type, {});
    created();
    if (!(await decision)) throw new Error("rollback on purpose");
  }).catch((error) => {
    if (!(error instanceof Error && error.message === "rollback on purpose")) throw error;
  });
  return { wrote, finish: (commit: boolean) => (release(commit), done) };
}

Deno.test("TimelineEventEmitter delivers new events in sequence order, each once", async () => {
  await withStore(async ({ db, store }) => {
    const emitter = new TimelineEventEmitter(db, { pollIntervalMs: 200 });
    await emitter.start();
    try {
      await emitter.ready();
      const start = emitter.position!;
      const { events, onEvent } = collector();
      emitter.subscribe({}, onEvent);
      const { job } = await store.create("a", {});
      await store.schedule(job.id);
      await store.create("b", {});
      const expected = await allSequences(db, start);
      await waitFor("three events", () => events.length >= expected.length);
      await sleep(100);
      assert.deepEqual(sequences(events), expected);
      assert.deepEqual(events.map((e) => e.type), ["job.created", "job.scheduled", "job.created"]);
      assert.equal(events[0]!.schemaVersion, 1);
      assert.equal(events[0]!.subject.id, job.id);
    } finally {
      await emitter.stop();
    }
  });
});

Deno.test("TimelineEventEmitter resume with after=N replays then goes live with no gap and no duplicate at the seam", async () => {
  await withStore(async ({ db, store }) => {
    for (let i = 0; i < 5; i++) await store.create("before", {});
    const emitter = new TimelineEventEmitter(db, { pollIntervalMs: 200, batchSize: 3 });
    await emitter.start();
    try {
      await emitter.ready();
      const [first] = await allSequences(db);
      const after = first! + 1;
      // writers keep going while the subscriber catches up
      let writing = true;
      const writer = (async () => {
        let n = 0;
        while (writing || n < 20) {
          await store.create("during", { n: n++ });
        }
      })();
      await sleep(20);
      const { events, onEvent } = collector();
      emitter.subscribe({ after }, onEvent);
      await sleep(300);
      writing = false;
      await writer;
      const expected = await allSequences(db, after);
      await waitFor("every event after N", () => events.length >= expected.length);
      await sleep(200);
      assert.deepEqual(sequences(events), expected);
    } finally {
      await emitter.stop();
    }
  });
});

Deno.test("TimelineEventEmitter skips a gap left by a rolled-back transaction only once it is settled", async () => {
  await withStore(async ({ db, store, connect }) => {
    const other = connect(2);
    const emitter = new TimelineEventEmitter(db, { pollIntervalMs: 200 });
    await emitter.start();
    try {
      await emitter.ready();
      const start = emitter.position!;
      const { events, onEvent } = collector();
      emitter.subscribe({}, onEvent);

      const a = openTransaction(other, "rolled-back");
      await a.wrote; // holds sequence start+1, uncommitted
      await store.create("committed", {}); // start+2, committed
      await sleep(400);
      assert.equal(events.length, 0, "nothing past the gap while its holder may still commit");

      await a.finish(false);
      const expected = await allSequences(db, start);
      assert.equal(expected[0]! > start + 1, true, "the rolled-back sequence is missing");
      await waitFor("the committed event", () => events.length >= expected.length);
      await sleep(100);
      assert.deepEqual(sequences(events), expected);
      assert.deepEqual(events.map((e) => e.data.type), ["committed"]);

      // a subscriber resuming from before the gap gets the same, once
      const late = collector();
      emitter.subscribe({ after: start }, late.onEvent);
      await waitFor("the replay", () => late.events.length >= expected.length);
      await sleep(100);
      assert.deepEqual(sequences(late.events), expected);
    } finally {
      await emitter.stop();
    }
  });
});

Deno.test("TimelineEventEmitter delivers a late-committing lower sequence before the higher ones", async () => {
  await withStore(async ({ db, store, connect }) => {
    const other = connect(2);
    const emitter = new TimelineEventEmitter(db, { pollIntervalMs: 200 });
    await emitter.start();
    try {
      await emitter.ready();
      const start = emitter.position!;
      const live = collector();
      emitter.subscribe({}, live.onEvent);

      const a = openTransaction(other, "late");
      await a.wrote;
      await store.create("early", {});
      await sleep(400);
      assert.equal(live.events.length, 0, "the higher sequence waits for the lower one");

      // a subscriber resuming mid-gap must not get the higher event twice either
      const resumed = collector();
      emitter.subscribe({ after: start }, resumed.onEvent);

      await a.finish(true);
      const expected = await allSequences(db, start);
      assert.equal(expected.length, 2);
      await waitFor("both events", () => live.events.length >= 2 && resumed.events.length >= 2);
      await sleep(200);
      assert.deepEqual(sequences(live.events), expected);
      assert.deepEqual(live.events.map((e) => e.data.type), ["late", "early"]);
      assert.deepEqual(sequences(resumed.events), expected);
    } finally {
      await emitter.stop();
    }
  });
});

Deno.test("TimelineEventEmitter filters by tenant and type, and resumes with the filters applied", async () => {
  await withStore(async ({ db, store }) => {
    const emitter = new TimelineEventEmitter(db, { pollIntervalMs: 200 });
    await emitter.start();
    try {
      await emitter.ready();
      const start = emitter.position!;
      const { job } = await store.create("x", {}, { tenantId: "acme" });
      await store.create("x", {}, { tenantId: "other" });
      await store.schedule(job.id);
      const [top] = (await allSequences(db, start)).slice(-1);
      await waitFor("the emitter to catch up", () => emitter.position! >= top!);
      const live = collector(); // "from now": after the emitter's position
      emitter.subscribe({ tenantId: "acme", types: ["job.scheduled"] }, live.onEvent);
      const replay = collector();
      emitter.subscribe(
        { after: start, tenantId: "acme", types: ["job.scheduled"] },
        replay.onEvent,
      );
      await store.cancel(job.id);
      const { job: second } = await store.create("y", {}, { tenantId: "acme" });
      await store.schedule(second.id);
      await waitFor("the replayed and live events", () => replay.events.length >= 2);
      await sleep(200);
      assert.deepEqual(replay.events.map((e) => [e.type, e.subject.id]), [
        ["job.scheduled", job.id],
        ["job.scheduled", second.id],
      ]);
      assert.deepEqual(live.events.map((e) => [e.type, e.subject.id]), [
        ["job.scheduled", second.id],
      ]);
      assert.ok(replay.events.every((e) => e.tenantId === "acme"));
    } finally {
      await emitter.stop();
    }
  });
});

Deno.test("TimelineEventEmitter unsubscribe stops delivery and stop() releases LISTEN", async () => {
  await withStore(async ({ db, store }) => {
    const emitter = new TimelineEventEmitter(db, { pollIntervalMs: 200 });
    await emitter.start();
    await emitter.ready();
    const { events, onEvent } = collector();
    const unsubscribe = emitter.subscribe({}, onEvent);
    await store.create("one", {});
    await waitFor("one event", () => events.length === 1);
    unsubscribe();
    assert.equal(emitter.subscriberCount, 0);
    await store.create("two", {});
    await sleep(300);
    assert.equal(events.length, 1);
    await emitter.stop();
    assert.equal(emitter.started, false);
  });
});

Deno.test("TimelineEventEmitter works on PGlite, including a rollback gap", async () => {
  const db = await createPgliteDatabase();
  try {
    await migrate(db);
    const store = new JobStore(db);
    await store.create("before", {});
    const emitter = new TimelineEventEmitter(db, { pollIntervalMs: 100 });
    await emitter.start();
    try {
      await emitter.ready();
      const live = collector();
      emitter.subscribe({}, live.onEvent);
      await db.transaction(async (tx) => {
        await new JobStore(tx).create("rolled-back", {});
        throw new Error("rollback on purpose");
      }).catch(() => {});
      await store.create("after", {});
      await waitFor("the committed event", () => live.events.length >= 1);
      await sleep(200);
      assert.deepEqual(live.events.map((e) => e.data.type), ["after"]);
      const resumed = collector();
      emitter.subscribe({ after: 0 }, resumed.onEvent);
      await waitFor("the replay", () => resumed.events.length >= 2);
      await sleep(100);
      assert.deepEqual(resumed.events.map((e) => e.data.type), ["before", "after"]);
    } finally {
      await emitter.stop();
    }
  } finally {
    await db.close();
  }
});

Deno.test("TimelineEventEmitter under concurrent writers with rollbacks: every subscriber gets exactly the committed events", async () => {
  await withStore(async ({ db, connect }) => {
    const writers = [connect(1), connect(1), connect(1), connect(1)];
    const emitter = new TimelineEventEmitter(db, { pollIntervalMs: 100, batchSize: 7 });
    await emitter.start();
    try {
      await emitter.ready();
      const start = emitter.position!;
      const live = collector();
      emitter.subscribe({}, live.onEvent);
      const resumed: Array<{ after: number; events: EventEnvelope[] }> = [];
      const until = Date.now() + 1500;
      await Promise.all([
        ...writers.map(async (writer, w) => {
          let i = 0;
          while (Date.now() < until) {
            await writer.transaction(async (tx) => {
              await new JobStore(tx).create(`w${w}`, { i: i++ });
              await sleep(Math.random() * 15);
              if (Math.random() < 0.3) throw new Error("rollback on purpose");
            }).catch(() => {});
          }
        }),
        (async () => {
          while (Date.now() < until) {
            await sleep(150);
            const seen = await allSequences(db, start);
            const after = seen.length ? seen[Math.floor(Math.random() * seen.length)]! : start;
            const c = collector();
            emitter.subscribe({ after }, c.onEvent);
            resumed.push({ after, events: c.events });
          }
        })(),
      ]);
      const expected = await allSequences(db, start);
      await waitFor("the live subscriber", () => live.events.length >= expected.length);
      for (const r of resumed) {
        const want = expected.filter((s) => s > r.after);
        await waitFor("a resumed subscriber", () => r.events.length >= want.length);
      }
      await sleep(300);
      assert.deepEqual(sequences(live.events), expected);
      for (const r of resumed) {
        assert.deepEqual(sequences(r.events), expected.filter((s) => s > r.after));
      }
      assert.ok(resumed.length >= 5);
    } finally {
      await emitter.stop();
    }
  });
});

Deno.test("TimelineEventEmitter logs once when an open transaction holds the stream back, and again when it flows", async () => {
  await withStore(async ({ db, store, connect }) => {
    const other = connect(2);
    const logged: Array<{ level: string; msg: string; fields?: Record<string, unknown> }> = [];
    const record = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
      void logged.push({ level, msg, fields });
    const logger = {
      debug: record("debug"),
      info: record("info"),
      warn: record("warn"),
      error: record("error"),
    };
    const emitter = new TimelineEventEmitter(db, { pollIntervalMs: 100, stallWarnMs: 300, logger });
    await emitter.start();
    try {
      await emitter.ready();
      const live = collector();
      emitter.subscribe({}, live.onEvent);
      const held = openTransaction(other, "held");
      await held.wrote;
      await store.create("behind", {});
      await waitFor("the stall warning", () => logged.some((l) => l.level === "warn"));
      await sleep(400);
      const warnings = logged.filter((l) => l.level === "warn");
      assert.equal(warnings.length, 1, "once per wait");
      assert.match(warnings[0]!.msg, /held back/);
      assert.equal(live.events.length, 0, "nothing delivered past the open transaction");
      await held.finish(true);
      await waitFor("both events", () => live.events.length >= 2);
      await waitFor("the all-clear", () => logged.some((l) => /flow again/.test(l.msg)));
      assert.equal(logged.filter((l) => l.level === "warn").length, 1);
    } finally {
      await emitter.stop();
    }
  });
});

Deno.test("pg_notify('jobengine_events') still follows a commit while another transaction that notified stays open", async () => {
  await withStore(async ({ db, store, connect }) => {
    const got: string[] = [];
    const unlisten = await db.listen("jobengine_events", (payload) => got.push(payload));
    // an operator's open transaction that wrote an event (and so took a notify slot)
    const held = openTransaction(connect(2), "held-open");
    try {
      await held.wrote;
      const { job } = await store.create("committed", {});
      const [row] = await db.query<{ sequence: number }>(
        `select sequence from jobengine.timeline_events where subject_id = $1::uuid`,
        [job.id],
      );
      await waitFor(
        "a NOTIFY for the committed event",
        () => got.some((payload) => Number(payload) >= Number(row!.sequence)),
        5_000,
      );
    } finally {
      await held.finish(false);
      await unlisten();
    }
  });
});
