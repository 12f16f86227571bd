/**
 * The TimelineEventEmitter: reads `jobengine.timeline_events` in sequence order and fans the
 * events out to subscribers, losing nothing and repeating nothing.
 *
 * ## Wake-ups
 *
 * `LISTEN jobengine_events` wakes it after each commit that wrote events; a slow poll (default
 * every second) is the fallback for a missed NOTIFY (for example across a reconnect). The NOTIFY
 * payload is never trusted: every wake reads rows from the table.
 *
 * ## Why gaps happen, and when one may be skipped
 *
 * `sequence` values are allocated when a row is inserted, not when its transaction commits, so
 * a lower sequence can become visible after a higher one (a late commit), and a rolled-back
 * transaction leaves a hole forever. The emitter therefore delivers only the contiguous prefix
 * after its position `P`: with `P + 1` missing, it waits.
 *
 * On finding a gap it takes a *horizon*: `pg_current_xact_id()` in a transaction of its own,
 * an xid larger than that of every transaction that had an xid at that moment, together with
 * the largest sequence seen by the read that found the gap (`covers`). Every transaction that
 * holds a sequence at or below `covers` allocated it before that read, and had taken its xid
 * before allocating it (every writer of `timeline_events` writes to `jobs` first or calls
 * `pg_current_xact_id()` first, see `record_egress_blocked`). Once
 * `pg_snapshot_xmin(pg_current_snapshot())` is greater than the horizon, no transaction with an
 * xid at or below it is still running: every sequence at or below `covers` is now committed
 * (and visible to a read started after that check) or rolled back for good. Only then are the
 * missing sequences at or below `covers` skipped. Each wake re-checks; while a gap is pending,
 * the emitter also re-checks on a short backoff (25 ms doubling to the poll interval).
 *
 * This deliberately uses a fresh xid rather than `pg_snapshot_xmax(pg_current_snapshot())`:
 * `xmax` is "latest completed xid + 1", and a transaction that took its xid later but is still
 * running can have an xid at or above it, so `xmin > xmax` does not prove that transaction ended.
 * The fresh xid costs one xid per gap found, not per event.
 *
 * A transaction that stays open (`idle in transaction` with an xid, in any database of the
 * cluster) holds `xmin` back and so delays delivery past a gap until it ends: correctness first.
 *
 * ## Subscribers and resume
 *
 * `subscribe({ after, tenantId, types }, onEvent)` delivers every event with
 * `sequence > after` that matches the filters, in order, exactly once. A subscriber behind the
 * emitter's position first catches up from the table (rows in `(after, P]`, all settled, so the
 * table read is final), then switches to live delivery at the instant its position equals the
 * emitter's, in the same tick, so the seam has no gap and no duplicate. Without `after` it starts
 * at the emitter's position ("from now"). The emitter's starting position is the largest
 * sequence at start-up, taken only once every transaction that might still fill a gap below it
 * has ended (the same horizon rule).
 *
 * On PGlite (one connection, queries serialised) gaps only come from rollbacks and the rule
 * resolves at once; `pg_current_snapshot()` and `pg_current_xact_id()` exist there too.
 *
 * @module
 */
import type { Database, Queryable, Row } from "../db/port.ts";
import { trailingWaker } from "../db/wake.ts";
import { type EventEnvelope, rowToEvent } from "../job/job.ts";
import type { Logger } from "../runtime/logger.ts";

/** The NOTIFY channel written after each commit that wrote timeline events. */
export const EVENTS_CHANNEL = "jobengine_events";

/** What a subscriber wants. */
export interface SubscribeOptions {
  /** Deliver events with `sequence > after`; default: from the emitter's current position. */
  after?: number;
  /** Only this tenant's events. */
  tenantId?: string | null;
  /** Only these event types. */
  types?: readonly string[] | null;
}

/** Receives one event; must not throw (errors are logged and swallowed). */
export type EventListener = (event: EventEnvelope) => void;

/** Options of {@linkcode TimelineEventEmitter}. */
export interface TimelineEventEmitterOptions {
  /** The poll fallback, in milliseconds (default 1000). */
  pollIntervalMs?: number;
  /** Rows read per query (default 500). */
  batchSize?: number;
  /** Where problems are logged (default silent). */
  logger?: Logger;
  /**
   * After how long delivery held back behind an open transaction is logged as a warning (and
   * its end as info), in milliseconds (default 10000).
   */
  stallWarnMs?: number;
}

interface Subscriber {
  /** The last sequence this subscriber has been given (or skipped by its filters). */
  position: number;
  tenantId: string | null;
  types: ReadonlySet<string> | null;
  onEvent: EventListener;
  /** Receiving from the live fan-out (false while catching up from the table). */
  live: boolean;
  closed: boolean;
  /** Where the subscriber wanted to start; null = at the emitter's position. */
  after: number | null;
}

/** A horizon: once `xmin > xid`, every sequence at or below `covers` is settled. */
interface Horizon {
  xid: string;
  covers: number;
  /** When delivery started waiting on it (`Date.now()`). */
  since: number;
  /** Whether the wait was logged as a stall. */
  warned: boolean;
}

const SILENT: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * Takes a horizon xid: a fresh transaction id, larger than that of every transaction that had
 * one when this was called (see the module doc).
 */
export async function takeHorizon(db: Queryable): Promise<string> {
  const [row] = await db.query<{ xid: string }>(`select pg_current_xact_id()::text as xid`);
  return row!.xid;
}

/** Whether every transaction with an xid at or below `xid` has ended. */
export async function horizonPassed(db: Queryable, xid: string): Promise<boolean> {
  const [row] = await db.query<{ passed: boolean }>(
    `select pg_snapshot_xmin(pg_current_snapshot()) > $1::text::xid8 as passed`,
    [xid],
  );
  return row?.passed === true;
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/** Reads timeline events in sequence order and fans them out; see the module doc. */
export class TimelineEventEmitter {
  readonly #db: Database;
  readonly #pollIntervalMs: number;
  readonly #stallWarnMs: number;
  readonly #batchSize: number;
  readonly #logger: Logger;
  readonly #subscribers = new Set<Subscriber>();

  /** All sequences at or below this are delivered (or known never to exist). */
  #position: number | null = null;
  /** Sequences at or below this are settled: a missing one will never appear. */
  #settledThrough = 0;
  #horizon: Horizon | null = null;
  #gapDelayMs = 25;

  #started = false;
  #stopping = new AbortController();
  #unlisten: (() => Promise<void>) | null = null;
  #pollTimer: ReturnType<typeof setInterval> | null = null;
  readonly #trail = trailingWaker(() => this.#wake());
  #gapTimer: ReturnType<typeof setTimeout> | null = null;
  #pumping: Promise<void> | null = null;
  #again = false;
  #failing = false;
  #resolveReady!: () => void;
  #ready: Promise<void>;
  /** Whether a read has reached the table's end (or an unsettled gap) since the last start. */
  #current = false;
  #whenCurrent: Array<() => void> = [];
  #tasks = new Set<Promise<void>>();

  /** Creates an emitter over `db`; call {@linkcode TimelineEventEmitter.start}. */
  constructor(db: Database, options: TimelineEventEmitterOptions = {}) {
    this.#db = db;
    this.#pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.#stallWarnMs = options.stallWarnMs ?? 10_000;
    this.#batchSize = options.batchSize ?? 500;
    this.#logger = options.logger ?? SILENT;
    this.#ready = new Promise((resolve) => this.#resolveReady = resolve);
  }

  /** The delivered position: every event at or below it has been handed out; null before ready. */
  get position(): number | null {
    return this.#position;
  }

  /** How many subscribers are attached. */
  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  /** Whether {@linkcode TimelineEventEmitter.start} ran and stop did not. */
  get started(): boolean {
    return this.#started;
  }

  /** Resolves once the starting position is settled and events flow. */
  ready(): Promise<void> {
    return this.#ready;
  }

  /**
   * Resolves once the emitter has read up to the table's end, or to an unsettled gap, since it
   * last started: its {@linkcode TimelineEventEmitter.position} is then "now" (every event after
   * it is still to come, including one numbered lower than a committed event whose transaction
   * has not yet committed), not where it stopped before an idle spell.
   */
  current(): Promise<void> {
    if (this.#current) return Promise.resolve();
    return new Promise((resolve) => this.#whenCurrent.push(resolve));
  }

  #markCurrent(): void {
    this.#current = true;
    for (const resolve of this.#whenCurrent.splice(0)) resolve();
  }

  /**
   * Starts listening; resolves once LISTEN is in place. The starting position settles in the
   * background ({@linkcode TimelineEventEmitter.ready}); subscribers may attach at any time.
   */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    this.#current = false;
    this.#stopping = new AbortController();
    try {
      // NOTIFYs are coalesced across concurrent transactions (jobengine._notify): the trail
      // re-reads shortly after each one for the transactions that committed just after it
      this.#unlisten = await this.#db.listen(EVENTS_CHANNEL, () => this.#trail.poke());
    } catch (error) {
      this.#started = false;
      throw error;
    }
    this.#pollTimer = setInterval(() => this.#wake(), this.#pollIntervalMs);
    if (this.#position === null) {
      this.#track(this.#initialize());
    } else {
      this.#wake(); // a restart continues from where it stopped
    }
  }

  /** Stops listening and polling; subscribers stay attached but receive nothing more. */
  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    this.#stopping.abort();
    if (this.#pollTimer !== null) clearInterval(this.#pollTimer);
    if (this.#gapTimer !== null) clearTimeout(this.#gapTimer);
    this.#trail.stop();
    this.#pollTimer = null;
    this.#gapTimer = null;
    const unlisten = this.#unlisten;
    this.#unlisten = null;
    await Promise.allSettled([...this.#tasks, this.#pumping ?? Promise.resolve()]);
    if (unlisten) {
      try {
        await unlisten();
      } catch (error) {
        this.#logger.warn("Timeline emitter could not UNLISTEN", { error });
      }
    }
  }

  /**
   * Subscribes to events matching `options`; returns the function that unsubscribes. See the
   * module doc for the resume guarantee.
   */
  subscribe(options: SubscribeOptions, onEvent: EventListener): () => void {
    const sub: Subscriber = {
      position: 0,
      tenantId: options.tenantId ?? null,
      types: options.types?.length ? new Set(options.types) : null,
      onEvent,
      live: false,
      closed: false,
      after: options.after ?? null,
    };
    this.#subscribers.add(sub);
    if (this.#position !== null) this.#attach(sub);
    return () => {
      sub.closed = true;
      this.#subscribers.delete(sub);
    };
  }

  /** Places a new subscriber: live at once, or catching up from the table first. */
  #attach(sub: Subscriber): void {
    const position = this.#position!;
    if (sub.after === null || sub.after >= position) {
      sub.position = sub.after ?? position;
      sub.live = true;
      return;
    }
    sub.position = sub.after;
    this.#track(this.#catchUp(sub));
  }

  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
  }

  async #initialize(): Promise<void> {
    const signal = this.#stopping.signal;
    let waitMs = 10;
    while (!signal.aborted) {
      try {
        const [row] = await this.#db.query<{ max: number | null }>(
          `select max(sequence) as max from jobengine.timeline_events`,
        );
        const max = row?.max ?? 0;
        const xid = await takeHorizon(this.#db);
        const since = Date.now();
        let warned = false;
        while (!signal.aborted && !(await horizonPassed(this.#db, xid))) {
          if (!warned && Date.now() - since > 5000) {
            warned = true;
            this.#logger.warn(
              "Timeline emitter waits for an old open transaction before delivering events",
              { horizon: xid },
            );
          }
          await delay(waitMs, signal);
          waitMs = Math.min(waitMs * 2, this.#pollIntervalMs);
        }
        if (signal.aborted) return;
        this.#position = max;
        this.#settledThrough = max;
        for (const sub of this.#subscribers) this.#attach(sub);
        this.#resolveReady();
        this.#wake();
        return;
      } catch (error) {
        this.#logger.warn("Timeline emitter could not read its starting position", { error });
        await delay(this.#pollIntervalMs, signal);
      }
    }
  }

  /** Asks for a pump; coalesces wakes that arrive while one runs. */
  #wake(): void {
    if (!this.#started || this.#position === null) return;
    if (this.#pumping) {
      this.#again = true;
      return;
    }
    this.#pumping = (async () => {
      try {
        do {
          this.#again = false;
          await this.#pump();
        } while (this.#again && this.#started);
        if (this.#failing) {
          this.#failing = false;
          this.#logger.info("Timeline emitter reads events again");
        }
      } catch (error) {
        // once per outage, not once per poll
        if (!this.#failing) {
          this.#failing = true;
          this.#logger.warn("Timeline emitter could not read events; retrying", { error });
        }
      } finally {
        this.#pumping = null;
      }
    })();
  }

  /** Reads and delivers until caught up or stopped at an unsettled gap. */
  async #pump(): Promise<void> {
    while (this.#started) {
      // 1. A pending horizon that has passed settles everything it covers. Checked BEFORE the
      //    read below, so the read sees every sequence <= covers that will ever exist.
      if (this.#horizon && await horizonPassed(this.#db, this.#horizon.xid)) {
        if (this.#horizon.warned) {
          this.#logger.info("Timeline events flow again: the open transaction ended", {
            position: this.#position,
            waitedMs: Date.now() - this.#horizon.since,
          });
        }
        this.#settledThrough = Math.max(this.#settledThrough, this.#horizon.covers);
        this.#horizon = null;
        this.#gapDelayMs = 25;
      }
      // 2. Read the next rows after the delivered position.
      const rows = await this.#db.query<Row>(
        `select * from jobengine.timeline_events where sequence > $1::int8 order by sequence limit $2::int`,
        [this.#position!, this.#batchSize],
      );
      if (!this.#started) return;
      // 3. Deliver the contiguous prefix, stepping over settled holes.
      let gap = false;
      for (const row of rows) {
        const sequence = Number(row.sequence);
        const position = this.#position!;
        if (sequence > position + 1 && position < this.#settledThrough) {
          this.#position = Math.min(this.#settledThrough, sequence - 1);
        }
        if (sequence !== this.#position! + 1) {
          gap = true;
          break;
        }
        this.#position = sequence;
        this.#deliver(rowToEvent(row));
      }
      if (!gap && rows.length < this.#batchSize) {
        // Caught up: trailing holes below the settled mark are gone for good.
        if (this.#position! < this.#settledThrough) this.#position = this.#settledThrough;
        this.#markCurrent();
        return;
      }
      if (!gap) continue;
      // 4. An unsettled gap: take a horizon (once per gap), then re-check soon.
      if (!this.#horizon) {
        const covers = Number(rows.at(-1)!.sequence);
        this.#horizon = {
          xid: await takeHorizon(this.#db),
          covers,
          since: Date.now(),
          warned: false,
        };
        // The holders may all have ended already (a rollback): step 1 checks again at once.
        continue;
      }
      if (!this.#horizon.warned && Date.now() - this.#horizon.since >= this.#stallWarnMs) {
        // Every subscriber waits: an event numbered after the position may still commit, and
        // delivering past it would lose it. Whatever holds a transaction id open (anywhere in
        // the cluster) holds the stream back; say so once per wait.
        this.#horizon.warned = true;
        this.#logger.warn(
          "Timeline events are held back: an open transaction may still commit an event " +
            "numbered after the position (any transaction holding an xid in the cluster delays " +
            "the stream until it ends)",
          { position: this.#position, waitingMs: Date.now() - this.#horizon.since },
        );
      }
      this.#scheduleGapCheck();
      this.#markCurrent(); // held at the gap: the position is below every event still to come
      return;
    }
  }

  #scheduleGapCheck(): void {
    if (this.#gapTimer !== null || !this.#started) return;
    const wait = this.#gapDelayMs;
    this.#gapDelayMs = Math.min(this.#gapDelayMs * 2, this.#pollIntervalMs);
    this.#gapTimer = setTimeout(() => {
      this.#gapTimer = null;
      this.#wake();
    }, wait);
  }

  /** Hands one event (the next in sequence) to every live subscriber. */
  #deliver(event: EventEnvelope): void {
    for (const sub of this.#subscribers) {
      if (!sub.live || sub.closed || event.sequence <= sub.position) continue;
      sub.position = event.sequence;
      if (matches(sub, event)) this.#call(sub, event);
    }
  }

  #call(sub: Subscriber, event: EventEnvelope): void {
    try {
      sub.onEvent(event);
    } catch (error) {
      this.#logger.warn("Timeline subscriber threw; event dropped for it", {
        error,
        sequence: event.sequence,
      });
    }
  }

  /** Replays `(sub.position, emitter position]` from the table, then goes live. */
  async #catchUp(sub: Subscriber): Promise<void> {
    const signal = this.#stopping.signal;
    while (!sub.closed && !signal.aborted) {
      const upTo = this.#position!;
      if (sub.position >= upTo) {
        sub.live = true; // same tick as the comparison: nothing can slip in between
        return;
      }
      let rows: Row[];
      try {
        rows = await this.#db.query<Row>(
          `select * from jobengine.timeline_events
            where sequence > $1::int8 and sequence <= $2::int8
              and ($3::text is null or tenant_id = $3::text)
              and ($4::text[] is null or type = any ($4::text[]))
            order by sequence limit $5::int`,
          [
            sub.position,
            upTo,
            sub.tenantId,
            sub.types ? [...sub.types] : null,
            this.#batchSize,
          ],
        );
      } catch (error) {
        this.#logger.warn("Timeline emitter could not replay events; retrying", { error });
        await delay(this.#pollIntervalMs, signal);
        continue;
      }
      for (const row of rows) {
        if (sub.closed) return;
        const event = rowToEvent(row);
        sub.position = event.sequence;
        this.#call(sub, event);
      }
      if (rows.length < this.#batchSize) sub.position = Math.max(sub.position, upTo);
    }
  }
}

function matches(sub: Subscriber, event: EventEnvelope): boolean {
  if (sub.tenantId !== null && event.tenantId !== sub.tenantId) return false;
  if (sub.types !== null && !sub.types.has(event.type)) return false;
  return true;
}
