/**
 * The API behind a real `Deno.serve` on 127.0.0.1 (port 0), driven with `fetch`: the
 * lifecycle, a chunked body over the limit, and the SSE stream with resume by Last-Event-ID
 * and `?after=` (nothing lost, nothing repeated), filters, heartbeats and disconnect cleanup.
 */
import assert from "node:assert/strict";
import { type AppOptions, createApp } from "../../src/api/app.ts";
import { createPostgresDatabase } from "../../src/db/postgres.ts";
import type { Database } from "../../src/db/port.ts";
import { TimelineEventEmitter } from "../../src/events/timeline_event_emitter.ts";
import { freshDatabase } from "../_db.ts";
import { assertProblem, claimedJob, type Client, clientOf } from "./_client.ts";

interface ServerFixture {
  db: Database;
  base: string;
  client: Client;
}

async function withServer(
  fn: (fixture: ServerFixture) => Promise<void>,
  options: Omit<AppOptions, "db"> = {},
): Promise<void> {
  const fresh = await freshDatabase();
  const db = createPostgresDatabase(fresh.url, { max: 4 });
  const app = createApp({ db, ...options });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
  const base = `http://127.0.0.1:${server.addr.port}`;
  try {
    await fn({ db, base, client: clientOf((request) => fetch(request), base) });
  } finally {
    await server.shutdown();
    await db.close();
    await fresh.drop();
  }
}

interface SseMessage {
  id?: string;
  event?: string;
  data?: string;
  comment?: string;
}

/** Reads an SSE response frame by frame. */
function sseReader(response: Response) {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const messages: SseMessage[] = [];
  async function next(timeoutMs = 10_000): Promise<SseMessage> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const message = messages.shift();
      if (message) return message;
      const frame = buffer.indexOf("\n\n");
      if (frame >= 0) {
        const block = buffer.slice(0, frame);
        buffer = buffer.slice(frame + 2);
        const parsed: SseMessage = {};
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) parsed.comment = line.slice(1).trim();
          else {
            const colon = line.indexOf(":");
            const field = line.slice(0, colon);
            const value = line.slice(colon + 1).replace(/^ /, "");
            if (field === "id" || field === "event" || field === "data") {
              parsed[field] = field === "data" && parsed.data !== undefined
                ? `${parsed.data}\n${value}`
                : value;
            }
          }
        }
        messages.push(parsed);
        continue;
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error("Timed out waiting for an SSE message");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const chunk = await Promise.race([
        reader.read(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error("Timed out reading the SSE stream")),
            remaining,
          );
        }),
      ]).finally(() => clearTimeout(timer));
      if (chunk.done) throw new Error("The SSE stream ended");
      buffer += chunk.value;
    }
  }
  /** The next message carrying an event (skipping comments and retry hints). */
  async function nextEvent(timeoutMs?: number) {
    while (true) {
      const message = await next(timeoutMs);
      if (message.data !== undefined) {
        return {
          id: Number(message.id),
          event: message.event!,
          envelope: JSON.parse(message.data),
        };
      }
    }
  }
  return { next, nextEvent, close: () => reader.cancel() };
}

async function committedSequences(db: Database, tenant: string, after: number): Promise<number[]> {
  const rows = await db.query<{ sequence: number }>(
    `select sequence from jobengine.timeline_events where tenant_id = $1 and sequence > $2::int8 order by sequence`,
    [tenant, after],
  );
  return rows.map((row) => Number(row.sequence));
}

async function waitFor(what: string, predicate: () => boolean, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

Deno.test("server: the lifecycle over a real socket", async () => {
  await withServer(async ({ client }) => {
    const job = await claimedJob(client);
    const done = await client.post(`/api/v1/jobs/${job.id}/complete`, {
      leaseId: job.leaseId,
      result: 42,
    });
    assert.equal(done.status, 200);
    assert.equal(done.body.status, "completed");
    assert.equal(done.body.result, 42);
    assertProblem(await client.post(`/api/v1/jobs/${job.id}/cancel`), 409, "invalid_transition");
    const health = await client.get("/healthz");
    assert.equal(health.status, 200);
  });
});

Deno.test("server: a chunked body over the limit is 413, never buffered whole", async () => {
  await withServer(async ({ base }) => {
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent === 0) controller.enqueue(new TextEncoder().encode('{"type":"x","payload":"'));
        if (sent > 64) return controller.close();
        sent++;
        controller.enqueue(new TextEncoder().encode("z".repeat(1024)));
      },
    });
    const res = await fetch(`${base}/api/v1/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      // @ts-ignore: Deno accepts `duplex` for streaming request bodies
      duplex: "half",
    });
    assert.equal(res.status, 413);
    assert.equal((await res.json()).code, "payload_too_large");
  }, { bodyLimitBytes: 16 * 1024 });
});

Deno.test("server: SSE delivers id = sequence, event = type, data = EventEnvelope, for the tenant only", async () => {
  await withServer(async ({ base, client, db }) => {
    const tenant = { "x-tenant-id": "acme" };
    const res = await fetch(`${base}/api/v1/events`, { headers: tenant });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
    const sse = sseReader(res);
    assert.equal((await sse.next()).comment, "connected");
    const other = await client.post("/api/v1/jobs", { type: "noise" }); // default tenant
    assert.equal(other.status, 201);
    const job = await client.post("/api/v1/jobs", { type: "sse", correlationId: "c-1" }, tenant);
    await client.post(`/api/v1/jobs/${job.body.id}/schedule`, undefined, tenant);
    const first = await sse.nextEvent();
    const second = await sse.nextEvent();
    assert.equal(first.event, "job.created");
    assert.equal(second.event, "job.scheduled");
    assert.equal(first.envelope.sequence, first.id);
    assert.equal(first.envelope.subject.id, job.body.id);
    assert.equal(first.envelope.tenantId, "acme");
    assert.equal(first.envelope.correlationId, "c-1");
    assert.equal(first.envelope.schemaVersion, 1);
    assert.deepEqual(
      [first.id, second.id],
      await committedSequences(db, "acme", 0),
    );
    await sse.close();
  });
});

Deno.test("server: SSE resume with Last-Event-ID and ?after= loses nothing and repeats nothing", async () => {
  await withServer(async ({ base, client, db }) => {
    const created: string[] = [];
    for (let i = 0; i < 3; i++) {
      created.push((await client.post("/api/v1/jobs", { type: "r", payload: { i } })).body.id);
    }
    // from the beginning: a replay of the table
    const first = sseReader(await fetch(`${base}/api/v1/events?after=0`));
    const got: number[] = [];
    for (let i = 0; i < 2; i++) got.push((await first.nextEvent()).id);
    await first.close();

    // events written while disconnected
    for (const id of created) await client.post(`/api/v1/jobs/${id}/schedule`);
    const resumed = sseReader(
      await fetch(`${base}/api/v1/events?after=0`, {
        headers: { "last-event-id": String(got.at(-1)) }, // the header wins over ?after=
      }),
    );
    // more while connected (the seam between replay and live)
    const writer = (async () => {
      for (let i = 0; i < 5; i++) await client.post("/api/v1/jobs", { type: "live" });
    })();
    await writer;
    const expected = await committedSequences(db, "default", 0);
    while (got.length < expected.length) got.push((await resumed.nextEvent()).id);
    assert.deepEqual(got, expected);
    await resumed.close();

    // ?after= alone, with a type filter
    const filtered = sseReader(
      await fetch(`${base}/api/v1/events?after=${expected[1]}&types=job.scheduled`),
    );
    const scheduled: string[] = [];
    for (let i = 0; i < 3; i++) {
      const event = await filtered.nextEvent();
      assert.equal(event.event, "job.scheduled");
      scheduled.push(event.envelope.subject.id);
    }
    assert.deepEqual(scheduled, created);
    await filtered.close();
  });
});

Deno.test("server: SSE heartbeats, and the subscription ends when the client disconnects", async () => {
  const fresh = await freshDatabase();
  const db = createPostgresDatabase(fresh.url, { max: 4 });
  const emitter = new TimelineEventEmitter(db, { pollIntervalMs: 200 });
  const app = createApp({ db, emitter, sseHeartbeatMs: 100 });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
  try {
    const controller = new AbortController();
    const res = await fetch(`http://127.0.0.1:${server.addr.port}/api/v1/events`, {
      signal: controller.signal,
    });
    const sse = sseReader(res);
    assert.equal((await sse.next()).comment, "connected");
    assert.equal((await sse.next(2000)).comment, "heartbeat");
    await waitFor("the subscription", () => emitter.subscriberCount === 1);
    controller.abort();
    await sse.close().catch(() => {});
    await waitFor("the subscription to end", () => emitter.subscriberCount === 0);
  } finally {
    await server.shutdown();
    await emitter.stop();
    await db.close();
    await fresh.drop();
  }
});

Deno.test("server: SSE from now delivers an event that commits after the client connected though a committed event is numbered above it", async () => {
  const fresh = await freshDatabase();
  const db = createPostgresDatabase(fresh.url, { max: 4 });
  const holder = createPostgresDatabase(fresh.url, { max: 1 });
  const emitter = new TimelineEventEmitter(db, { pollIntervalMs: 200 });
  await emitter.start(); // as the engine runs it: started at boot, read up to the end
  await emitter.ready();
  const app = createApp({ db, emitter });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
  const base = `http://127.0.0.1:${server.addr.port}`;
  const client = clientOf((request) => fetch(request), base);
  const tenant = { "x-tenant-id": "fn" };
  let commit!: () => void;
  const committing = new Promise<void>((resolve) => commit = resolve);
  let created!: (id: string) => void;
  const heldId = new Promise<string>((resolve) => created = resolve);
  let sse: ReturnType<typeof sseReader> | undefined;
  try {
    // a create whose transaction stays open: its job.created takes a sequence and waits
    const held = holder.transaction(async (tx) => {
      const [row] = await tx.query<{ id: string }>(
        `select id from jobengine.create_job('held', '{}', '{"tenantId": "fn"}')`,
      );
      created(row!.id);
      await committing;
    });
    const id = await heldId;
    // another create commits, numbered after the held one
    const other = await client.post("/api/v1/jobs", { type: "other" }, tenant);
    assert.equal(other.status, 201);
    const [{ max }] = await db.query<{ max: number }>(
      "select max(sequence)::int8 as max from jobengine.timeline_events",
    ) as [{ max: number }];
    sse = sseReader(await fetch(`${base}/api/v1/events`, { headers: tenant }));
    assert.equal((await sse.next()).comment, "connected");
    commit(); // after the client connected
    await held;
    const seen: Array<{ event?: string; subject: string; id: number }> = [];
    while (!seen.some((e) => e.subject === id)) {
      const event = await sse.nextEvent();
      seen.push({ event: event.event, subject: event.envelope.subject.id, id: event.id });
    }
    const late = seen.find((e) => e.subject === id)!;
    assert.equal(late.event, "job.created");
    assert.ok(late.id < Number(max), `the held event (${late.id}) is numbered below ${max}`);
  } finally {
    commit();
    await sse?.close().catch(() => {}); // (the server's shutdown waits for open streams)
    await server.shutdown();
    await emitter.stop();
    await holder.close();
    await db.close();
    await fresh.drop();
  }
});
