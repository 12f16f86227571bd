/**
 * Test helpers for the HTTP API: an app over a fresh PostgreSQL database, and a tiny client
 * that sends JSON and reads JSON (or problem+json) back, in-process (`app.request`) or over a
 * real socket (`fetch`).
 *
 * @module
 */
import assert from "node:assert/strict";
import * as v from "valibot";
import { ProblemResponse } from "../../src/api/schemas.ts";
import { type AppOptions, createApp } from "../../src/api/app.ts";
import { createPostgresDatabase } from "../../src/db/postgres.ts";
import type { Database } from "../../src/db/port.ts";
import { JobStore } from "../../src/job/job_store.ts";
import { freshDatabase } from "../_db.ts";

/** One response, read. */
export interface Reply {
  status: number;
  headers: Headers;
  // deno-lint-ignore no-explicit-any
  body: any;
  text: string;
}

/** Sends requests to an app or a server. */
export interface Client {
  request(method: string, path: string, options?: RequestOptions): Promise<Reply>;
  get(path: string, headers?: Record<string, string>): Promise<Reply>;
  post(path: string, body?: unknown, headers?: Record<string, string>): Promise<Reply>;
}

/** Options of {@linkcode Client.request}. */
export interface RequestOptions {
  /** Sent as JSON (with `content-type: application/json`) unless `raw` is set. */
  json?: unknown;
  /** Sent as is. */
  raw?: BodyInit;
  headers?: Record<string, string>;
}

/** Makes a client over a `fetch`-like function. */
export function clientOf(
  send: (request: Request) => Response | Promise<Response>,
  base = "http://jobengine.test",
): Client {
  async function request(method: string, path: string, options: RequestOptions = {}) {
    const headers = new Headers(options.headers);
    let body: BodyInit | undefined = options.raw;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      if (!headers.has("content-type")) headers.set("content-type", "application/json");
    }
    const res = await send(new Request(new URL(path, base), { method, headers, body }));
    const text = await res.text();
    let parsed: unknown = text;
    const type = res.headers.get("content-type") ?? "";
    if (type.includes("json")) parsed = JSON.parse(text);
    return { status: res.status, headers: res.headers, body: parsed, text };
  }
  return {
    request,
    get: (path, headers) => request("GET", path, { headers }),
    post: (path, json, headers) => request("POST", path, { json, headers }),
  };
}

/** What {@linkcode withApp} hands to a test. */
export interface AppFixture {
  db: Database;
  store: JobStore;
  url: string;
  app: ReturnType<typeof createApp>;
  client: Client;
}

/** Runs `fn` with an app over a fresh migrated PostgreSQL database. */
export async function withApp(
  fn: (fixture: AppFixture) => Promise<void>,
  options: Omit<AppOptions, "db"> = {},
): Promise<void> {
  const fresh = await freshDatabase();
  const db = createPostgresDatabase(fresh.url, { max: 4 });
  try {
    const app = createApp({ db, ...options });
    await fn({
      db,
      store: new JobStore(db),
      url: fresh.url,
      app,
      client: clientOf((request) => app.request(request)),
    });
  } finally {
    await db.close();
    await fresh.drop();
  }
}

/** Asserts a problem+json response with `status` and `code`; returns its body. */
// deno-lint-ignore no-explicit-any
export function assertProblem(reply: Reply, status: number, code: string): any {
  assert.equal(
    reply.status,
    status,
    `expected ${status} ${code}, got ${reply.status}: ${reply.text.slice(0, 500)}`,
  );
  assert.match(reply.headers.get("content-type") ?? "", /^application\/problem\+json/);
  assert.equal(reply.body.code, code);
  assert.equal(reply.body.status, status);
  assert.equal(typeof reply.body.title, "string");
  assert.equal(typeof reply.body.type, "string");
  assert.equal(typeof reply.body.detail, "string");
  assert.ok(!/\bat .+:\d+:\d+/.test(reply.text), "no stack trace in a response");
  v.parse(ProblemResponse, reply.body); // the documented shape
  return reply.body;
}

/** A job created, scheduled and claimed over HTTP; returns the claimed job (with leaseId). */
// deno-lint-ignore no-explicit-any
export async function claimedJob(client: Client, body: Record<string, unknown> = {}): Promise<any> {
  const type = `t-${crypto.randomUUID()}`;
  const created = await client.post("/api/v1/jobs", { type, ...body });
  assert.equal(created.status, 201, created.text);
  const scheduled = await client.post(`/api/v1/jobs/${created.body.id}/schedule`);
  assert.equal(scheduled.status, 200, scheduled.text);
  const claim = await client.post("/api/v1/jobs/claim", { workerId: "w-test", types: [type] });
  assert.equal(claim.status, 200, claim.text);
  assert.equal(claim.body.jobs.length, 1);
  return claim.body.jobs[0];
}

/** A loopback TCP proxy that can cut every connection and come back on the same port. */
export interface TcpProxy {
  /** The proxy's port on 127.0.0.1. */
  port: number;
  /** Stops listening and resets every open connection (the "database goes away"). */
  cut(): void;
  /** Listens again on the same port (the "database returns"). */
  restore(): void;
  /** Stops for good. */
  close(): void;
}

/** Starts a proxy from 127.0.0.1:<random> to `target`. */
export function startTcpProxy(target: { hostname: string; port: number }): TcpProxy {
  let listener: Deno.Listener | null = null;
  const open = new Set<Deno.Conn>();
  let port = 0;
  function listen() {
    listener = Deno.listen({ hostname: "127.0.0.1", port });
    port = (listener.addr as Deno.NetAddr).port;
    const current = listener;
    (async () => {
      try {
        for await (const conn of current) {
          open.add(conn);
          (async () => {
            let upstream: Deno.Conn | undefined;
            try {
              upstream = await Deno.connect(target);
              open.add(upstream);
              await Promise.all([
                conn.readable.pipeTo(upstream.writable).catch(() => {}),
                upstream.readable.pipeTo(conn.writable).catch(() => {}),
              ]);
            } catch {
              // connection cut
            } finally {
              for (const c of [conn, upstream]) {
                if (!c) continue;
                open.delete(c);
                try {
                  c.close();
                } catch {
                  // already closed
                }
              }
            }
          })();
        }
      } catch {
        // listener closed
      }
    })();
  }
  function cut() {
    try {
      listener?.close();
    } catch {
      // already closed
    }
    listener = null;
    for (const conn of open) {
      try {
        conn.close();
      } catch {
        // already closed
      }
    }
    open.clear();
  }
  listen();
  return {
    get port() {
      return port;
    },
    cut,
    restore: listen,
    close: cut,
  };
}

/** Returns a TCP port on 127.0.0.1 that nothing listens on (bound, then released). */
export function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
