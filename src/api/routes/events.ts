/**
 * `GET /api/v1/events`: the timeline as Server-Sent Events, fed by the TimelineEventEmitter.
 *
 * Each event is `id: <sequence>`, `event: <type>`, `data: <EventEnvelope JSON>`. Resume with
 * the `Last-Event-ID` header (what browsers send on reconnect; it wins) or `?after=<sequence>`:
 * every later event of the tenant comes exactly once, in order, with no gap at the seam
 * between the replay from the table and the live stream. Without either, the stream starts
 * "now": at the emitter's position once it has read up to the table's end (see `fromNow`; it
 * may repeat a few events committed just before the request, never skip one committed after
 * it). `?types=job.completed,job.failed` filters; the tenant is `X-Tenant-Id` (default
 * `default`). A comment line (`: heartbeat`) is written every 15 s to keep proxies from closing
 * an idle stream. When the client disconnects (or the app's shutdown signal aborts), the
 * subscription ends. A client that reads too
 * slowly (more than {@linkcode MAX_QUEUED_EVENTS} events behind, or a write not taken within
 * {@linkcode WRITE_TIMEOUT_MS}) is disconnected; it resumes where it stopped with
 * `Last-Event-ID`. `HEAD` answers the headers without opening a stream.
 *
 * @module
 */
import { streamSSE } from "hono/streaming";
import type { Database } from "../../db/port.ts";
import type { EventEnvelope } from "../../job/job.ts";
import type { Logger } from "../../runtime/logger.ts";
import { TimelineEventEmitter } from "../../events/timeline_event_emitter.ts";
import { withDeadline } from "../../deadline.ts";
import { EventsHeaders, EventsQuery } from "../schemas.ts";
import { type ApiDeps, defineRoute, type Route } from "../_route.ts";
import { API_PREFIX, stripEventStack } from "./jobs.ts";

/** Events buffered for one slow client before it is disconnected (it then resumes). */
export const MAX_QUEUED_EVENTS = 10_000;

/** A write the client does not take within this long (or twice the heartbeat) ends the stream. */
export const WRITE_TIMEOUT_MS = 60_000;

/** Gives the SSE route a running emitter, and takes it back. */
export interface EventHub {
  /** Returns a started emitter; pair with {@linkcode EventHub.release}. */
  acquire(): Promise<TimelineEventEmitter>;
  /** Gives back what {@linkcode EventHub.acquire} returned. */
  release(): Promise<void>;
}

/**
 * Creates the hub. With an emitter from the caller, that one is used (started if needed, never
 * stopped here). Without, the hub creates its own on first use and stops it when the last
 * stream closes, so an app that never streams holds no LISTEN connection or timer.
 */
export function createEventHub(
  db: Database,
  options: { emitter?: TimelineEventEmitter; logger?: Logger } = {},
): EventHub {
  const owned = !options.emitter;
  const emitter = options.emitter ?? new TimelineEventEmitter(db, { logger: options.logger });
  let users = 0;
  let transition: Promise<void> = Promise.resolve();
  return {
    acquire() {
      users++;
      const step = transition.then(async () => {
        if (!emitter.started) await emitter.start();
      });
      transition = step.catch(() => {});
      return step.then(() => emitter, (error) => {
        users--;
        throw error;
      });
    },
    release() {
      users--;
      const step = transition.then(async () => {
        if (owned && users === 0 && emitter.started) await emitter.stop();
      });
      transition = step.catch(() => {});
      return step;
    },
  };
}

/** How long "from now" waits for the emitter to read up to the table's end (see fromNow). */
const FROM_NOW_WAIT_MS = 2_000;

/**
 * Where a stream without a resume position starts. The emitter's position once it has read up
 * to the table's end: every event after it is still to come, including one whose transaction
 * commits after the client connected but took its sequence before a committed event's (commit
 * order is not sequence order; the largest committed sequence would skip it for good). When the
 * emitter has not read that far in time (it is starting, or waits for an open transaction), the
 * largest sequence now, as before: nothing allocated after this read is lost.
 */
async function fromNow(deps: ApiDeps, emitter: TimelineEventEmitter): Promise<number> {
  const latest = latestSequence(deps);
  latest.catch(() => {}); // awaited below unless the emitter answers first
  const current = await withDeadline(
    emitter.current().then(() => true),
    FROM_NOW_WAIT_MS,
    () => false,
  );
  const position = emitter.position;
  return current && position !== null ? position : await latest;
}

async function latestSequence(deps: ApiDeps): Promise<number> {
  const [row] = await deps.db.query<{ max: number | null }>(
    `select coalesce(max(sequence), 0) as max from jobengine.timeline_events`,
  );
  return Number(row?.max ?? 0);
}

function encode(event: EventEnvelope): string {
  return JSON.stringify(stripEventStack(event));
}

/** The event stream route. */
export function eventRoutes(deps: ApiDeps): Route[] {
  return [
    defineRoute({
      method: "GET",
      path: `${API_PREFIX}/events`,
      operationId: "streamEvents",
      summary: "Timeline events as Server-Sent Events (resume with Last-Event-ID or ?after=)",
      description: "`id` is the event's sequence, `event` its type, `data` the EventEnvelope. " +
        "Resuming loses nothing and repeats nothing. Heartbeat comments every 15 s.",
      tag: "events",
      tenant: true,
      query: EventsQuery,
      headers: EventsHeaders,
      responses: [{
        status: 200,
        description: "An endless text/event-stream",
        contentType: "text/event-stream",
      }],
      errors: [400, 503],
      handler: async (c, { query, headers, tenantId }) => {
        if (c.req.method === "HEAD") {
          // no stream for HEAD: its body would never be read, nor its subscription ended
          return c.body(null, 200, {
            "content-type": "text/event-stream",
            "cache-control": "no-cache",
          });
        }
        const emitter = await deps.events.acquire();
        let after: number;
        try {
          after = headers["last-event-id"] ?? query.after ?? await fromNow(deps, emitter);
        } catch (error) {
          await deps.events.release();
          throw error;
        }
        const queue: EventEnvelope[] = [];
        let overflow = false;
        let closed = false;
        let notify: (() => void) | null = null;
        const wake = () => {
          const resolve = notify;
          notify = null;
          resolve?.();
        };
        let giveUp!: () => void;
        const givenUp = new Promise<"give-up">((resolve) => giveUp = () => resolve("give-up"));
        const unsubscribe = emitter.subscribe(
          { after, tenantId, types: query.types },
          (event) => {
            if (overflow) return;
            if (queue.length >= MAX_QUEUED_EVENTS) overflow = true;
            else queue.push(event);
            wake();
          },
        );
        let cleaned = false;
        const cleanup = async () => {
          if (cleaned) return;
          cleaned = true;
          closed = true;
          deps.signal?.removeEventListener("abort", onShutdown);
          unsubscribe();
          wake();
          await deps.events.release();
        };
        // A client disconnect cancels the response body, which aborts the stream (Deno, Bun,
        // Node adapters alike); request.signal is not used: Deno aborts it on normal completion too.
        const onAbort = () => void cleanup();
        // At shutdown the stream ends even if a write is stuck on a client that stopped reading.
        const onShutdown = () => {
          giveUp();
          void cleanup();
        };
        deps.signal?.addEventListener("abort", onShutdown, { once: true });
        if (deps.signal?.aborted) onShutdown();
        c.header("x-accel-buffering", "no");
        return streamSSE(c, async (stream) => {
          stream.onAbort(onAbort);
          const writeTimeoutMs = Math.max(WRITE_TIMEOUT_MS, 2 * deps.sseHeartbeatMs);
          /** Writes, or aborts the stream when the client stops reading (or at shutdown). */
          const write = async (send: () => Promise<unknown>): Promise<void> => {
            let timer: ReturnType<typeof setTimeout> | undefined;
            const outcome = await Promise.race([
              send().then(() => "written" as const),
              givenUp,
              new Promise<"timeout">((resolve) => {
                timer = setTimeout(() => resolve("timeout"), writeTimeoutMs);
              }),
            ]);
            clearTimeout(timer);
            if (outcome !== "written") {
              closed = true;
              stream.abort();
            }
          };
          try {
            await write(() => stream.write("retry: 2000\n: connected\n\n"));
            while (!closed && !stream.aborted) {
              const event = queue.shift();
              if (event) {
                await write(() =>
                  stream.writeSSE({
                    id: String(event.sequence),
                    event: event.type,
                    data: encode(event),
                  })
                );
                continue;
              }
              if (overflow) break;
              let timer: ReturnType<typeof setTimeout> | undefined;
              const beat = await new Promise<boolean>((resolve) => {
                notify = () => resolve(false);
                timer = setTimeout(() => resolve(true), deps.sseHeartbeatMs);
              });
              clearTimeout(timer);
              notify = null;
              if (beat && !closed) await write(() => stream.write(": heartbeat\n\n"));
            }
          } catch (error) {
            // logged, never written to the client (no message leaks)
            deps.logger.warn("Event stream failed", { error });
          } finally {
            await cleanup();
          }
        });
      },
    }),
  ];
}
