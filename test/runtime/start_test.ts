/**
 * `src/runtime/start.ts` as a real process (what `deno task start` runs): migrations, API,
 * scheduler and the built-in worker in one process; JSON-line logs; graceful shutdown on
 * SIGTERM that drains a running job and ends open event streams.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { freshDatabase } from "../_db.ts";
import { countingListener } from "../_listener.ts";

const START = new URL("../../src/runtime/start.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

interface Running {
  url: string;
  lines: Array<Record<string, unknown>>;
  raw: string[];
  process: Deno.ChildProcess;
  /** Resolves with the exit code once the process ends and its output is read. */
  exited: Promise<number>;
}

async function startProcess(env: Record<string, string>): Promise<Running> {
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, START],
    env: { PORT: "0", JOBENGINE_LOG_LEVEL: "info", ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  let listening!: (url: string) => void;
  const ready = new Promise<string>((resolve) => listening = resolve);
  const read = async (stream: ReadableStream<Uint8Array>) => {
    let buffer = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (!line.trim()) continue;
        raw.push(line);
        try {
          const parsed = JSON.parse(line);
          lines.push(parsed);
          if (parsed.msg === "Listening") listening(parsed.url);
        } catch {
          // asserted below: every line must be JSON
        }
      }
    }
  };
  const output = Promise.all([read(process.stdout), read(process.stderr)]);
  const exited = (async () => {
    const status = await process.status;
    await output;
    return status.code;
  })();
  const url = await Promise.race([
    ready,
    exited.then((code) => {
      throw new Error(`start.ts exited with ${code} before listening:\n${raw.join("\n")}`);
    }),
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`start.ts did not listen:\n${raw.join("\n")}`)), 60_000)
    ),
  ]);
  return { url, lines, raw, process, exited };
}

async function waitForStatus(url: string, id: string, status: string) {
  const deadline = Date.now() + 15_000;
  while (true) {
    const job = await (await fetch(`${url}/api/v1/jobs/${id}`)).json();
    if (job.status === status) return job;
    if (Date.now() > deadline) throw new Error(`Job ${id} is ${job.status}, not ${status}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function post(url: string, path: string, body: unknown) {
  const res = await fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

Deno.test("start.ts runs API, scheduler and built-in worker on PostgreSQL; SIGTERM drains and exits 0", async () => {
  const fresh = await freshDatabase();
  let engine: Running | undefined;
  try {
    engine = await startProcess({ DATABASE_URL: fresh.url, JOBENGINE_SEALED: "0" });
    const { url } = engine;
    assert.equal((await (await fetch(`${url}/healthz`)).json()).status, "ok");
    const ready = await (await fetch(`${url}/readyz`)).json();
    assert.equal(ready.status, "ready");
    const system = await (await fetch(`${url}/api/v1/system`)).json();
    assert.deepEqual(system, { version: "0.1.0", sealed: false, database: "postgres" });

    // the scheduler promotes, the built-in worker runs: no explicit schedule, no claim
    const echo = await post(url, "/api/v1/jobs", { type: "echo", payload: { hello: "world" } });
    assert.equal(echo.status, 201);
    const done = await waitForStatus(url, echo.body.id, "completed");
    assert.deepEqual(done.result, { hello: "world" });

    // concurrent creates go through group intake: jobs written together share their
    // transaction's time, so there are fewer distinct creation times than jobs
    const burst = await Promise.all(
      Array.from(
        { length: 16 },
        (_, i) => post(url, "/api/v1/jobs", { type: "burst", payload: { i } }),
      ),
    );
    assert.ok(burst.every((reply) => reply.status === 201));
    assert.ok(
      new Set(burst.map((reply) => reply.body.createdAt)).size < 16,
      "some of 16 concurrent creates shared a statement",
    );

    // an event stream open at shutdown must not hold the process
    const stream = await fetch(`${url}/api/v1/events`);
    const reader = stream.body!.getReader();
    await reader.read();

    // a job still running at SIGTERM finishes within the drain deadline; the same signal again
    // at once (Ctrl-C reaches the launcher, which forwards it, and the engine) does not cut the
    // drain short
    const sleep = await post(url, "/api/v1/jobs", { type: "sleep", payload: { ms: 800 } });
    await waitForStatus(url, sleep.body.id, "running");
    engine.process.kill("SIGTERM");
    await new Promise((resolve) => setTimeout(resolve, 20));
    engine.process.kill("SIGTERM");
    const code = await engine.exited;
    assert.equal(code, 0, engine.raw.join("\n"));
    while (!(await reader.read()).done) { /* drained by the server closing the stream */ }

    for (const line of engine.raw) {
      const parsed = JSON.parse(line);
      assert.equal(typeof parsed.level, "string");
      assert.equal(typeof parsed.msg, "string");
      assert.ok(!Number.isNaN(Date.parse(parsed.time)));
    }
    const messages = engine.lines.map((line) => line.msg);
    for (
      const msg of ["jobengine starting", "Database ready", "Listening", "Shutting down", "Stopped"]
    ) {
      assert.ok(messages.includes(msg), `logs "${msg}"`);
    }

    // the drained job completed (read through a fresh connection)
    const check = await import("../../src/db/postgres.ts");
    const db = check.createPostgresDatabase(fresh.url, { max: 1 });
    try {
      const [row] = await db.query<{ status: string }>(
        `select status::text as status from jobengine.jobs where id = $1::uuid`,
        [sleep.body.id],
      );
      assert.equal(row?.status, "completed");
    } finally {
      await db.close();
    }
  } finally {
    if (engine) {
      try {
        engine.process.kill("SIGKILL");
      } catch {
        // already exited
      }
      await engine.exited;
    }
    await fresh.drop();
  }
});

Deno.test("start.ts: a second signal after the first second exits at once with 130", async () => {
  const fresh = await freshDatabase();
  let engine: Running | undefined;
  try {
    engine = await startProcess({ DATABASE_URL: fresh.url, JOBENGINE_DRAIN_MS: "60000" });
    const sleep = await post(engine.url, "/api/v1/jobs", {
      type: "sleep",
      payload: { ms: 60_000 },
    });
    await waitForStatus(engine.url, sleep.body.id, "running");
    engine.process.kill("SIGINT");
    await new Promise((resolve) => setTimeout(resolve, 1_300));
    engine.process.kill("SIGINT");
    assert.equal(await engine.exited, 130, engine.raw.join("\n"));
    assert.ok(engine.lines.some((line) => line.msg === "Second signal: exiting now"));
  } finally {
    try {
      engine?.process.kill("SIGKILL");
    } catch {
      // already exited
    }
    await engine?.exited;
    await fresh.drop();
  }
});

Deno.test("start.ts: a request whose client never finishes does not hold the shutdown past the drain", async () => {
  const fresh = await freshDatabase();
  let engine: Running | undefined;
  const stalled = new AbortController();
  try {
    engine = await startProcess({ DATABASE_URL: fresh.url, JOBENGINE_DRAIN_MS: "500" });
    // a body that never ends: the request stays in progress
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"type":'));
      },
    });
    const pending = fetch(`${engine.url}/api/v1/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      signal: stalled.signal,
    }).catch(() => null);
    await new Promise((resolve) => setTimeout(resolve, 300));
    engine.process.kill("SIGTERM");
    const exited = await Promise.race([
      engine.exited,
      new Promise<"still running">((resolve) => setTimeout(() => resolve("still running"), 10_000)),
    ]);
    assert.equal(exited, 0, engine.raw.join("\n"));
    assert.ok(
      engine.lines.some((line) =>
        line.msg === "Requests still open at the end of the drain: closing them"
      ),
    );
    stalled.abort();
    await pending;
  } finally {
    stalled.abort();
    try {
      engine?.process.kill("SIGKILL");
    } catch {
      // already exited
    }
    await engine?.exited;
    await fresh.drop();
  }
});

Deno.test("start.ts with JOBENGINE_SEALED=0 is sealed by a later set_sealed(true): handlers' fetch is refused from then on", async () => {
  const fresh = await freshDatabase();
  const listener = countingListener();
  const sql = postgres(fresh.url, { max: 1, onnotice: () => {} });
  let engine: Running | undefined;
  try {
    engine = await startProcess({
      DATABASE_URL: fresh.url,
      JOBENGINE_SEALED: "0",
      JOBENGINE_HANDLERS: "test/runtime/_fetch_handlers.ts",
      JOBENGINE_WORKER_CONCURRENCY: "1",
      FETCH_PORT: String(listener.port),
    });
    const { url } = engine;
    const open = await post(url, "/api/v1/jobs", { type: "fetch", retryPolicy: { maxRetries: 0 } });
    const reached = await waitForStatus(url, open.body.id, "completed");
    assert.deepEqual(reached.result, { status: 200 });
    assert.equal(listener.count(), 1, "unsealed, the handler reaches the listener");

    // an operator seals the running engine from psql
    await sql`select jobengine.set_sealed(true)`;
    const deadline = Date.now() + 15_000;
    while (!(await (await fetch(`${url}/api/v1/system`)).json()).sealed) {
      if (Date.now() > deadline) throw new Error("/system never reported sealed");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const sealed = await post(url, "/api/v1/jobs", {
      type: "fetch",
      retryPolicy: { maxRetries: 0 },
    });
    const refused = await waitForStatus(url, sealed.body.id, "failed");
    assert.equal(refused.lastError.code, "egress_denied", JSON.stringify(refused.lastError));
    assert.equal(refused.terminal, true);
    assert.equal(listener.count(), 1, "sealed, the listener saw no new connection");
  } finally {
    engine?.process.kill("SIGTERM");
    await engine?.exited;
    await sql.end();
    await listener.close();
    await fresh.drop();
  }
});

Deno.test("start.ts defaults to the embedded PGlite under JOBENGINE_DATA_DIR, and seals from JOBENGINE_SEALED", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jobengine-start-" });
  let engine: Running | undefined;
  try {
    engine = await startProcess({
      JOBENGINE_DATA_DIR: `${dir}/pglite`,
      JOBENGINE_SEALED: "1",
      DATABASE_URL: "",
    });
    const { url } = engine;
    const system = await (await fetch(`${url}/api/v1/system`)).json();
    assert.deepEqual(system, { version: "0.1.0", sealed: true, database: "pglite" });
    const noop = await post(url, "/api/v1/jobs", { type: "noop" });
    await waitForStatus(url, noop.body.id, "completed");
    const blocked = await post(url, "/api/v1/jobs", { type: "echo", requiresNetwork: true });
    const schedule = await post(url, `/api/v1/jobs/${blocked.body.id}/schedule`, {});
    assert.equal(schedule.status, 409);
    assert.equal(schedule.body.code, "sealed_mode");
    engine.process.kill("SIGINT");
    assert.equal(await engine.exited, 0, engine.raw.join("\n"));
    const files = [...Deno.readDirSync(`${dir}/pglite`)].map((entry) => entry.name);
    assert.ok(files.length > 0, "PGlite persisted its files");
  } finally {
    if (engine) {
      try {
        engine.process.kill("SIGKILL");
      } catch {
        // already exited
      }
      await engine.exited;
    }
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("start.ts refuses an invalid configuration with exit code 2 and a JSON log line", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, START],
    env: { PORT: "not-a-port" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 2);
  const line = JSON.parse(new TextDecoder().decode(output.stderr).trim().split("\n").at(-1)!);
  assert.equal(line.level, "error");
  assert.match(JSON.stringify(line.problems), /PORT/);
});
