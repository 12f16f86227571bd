/**
 * Prometheus metrics (text exposition format 0.0.4) of one API process:
 *
 * - `jobengine_jobs{status}` (gauge): jobs per status, from one `count(*) ... group by status`
 *   per scrape (every status listed, zeros included).
 * - `jobengine_transitions_total{from,to}` (counter): transitions recorded in the database, all
 *   processes together, counted from `timeline_events` (one event per transition, by trigger;
 *   `from="none"` for creation). Kept cheap: the first scrape aggregates the table once; every
 *   later scrape aggregates only the new sequence range, and only up to a *settled* position
 *   (the TimelineEventEmitter's horizon rule), so a late-committing transaction is counted once,
 *   never skipped. Starts from the database's history, so it only resets when the database does.
 * - `jobengine_claim_duration_seconds` (histogram): the duration of the claim calls made through
 *   this process (`POST /jobs/claim`, and any caller of {@linkcode Metrics.observeClaim}).
 * - `jobengine_http_requests_total{route,method,status}` (counter): requests by route pattern
 *   (`/api/v1/jobs/:id`, never the raw path; `unmatched` when no route took the request: an
 *   unknown path, or a wrong method on a parameter route) and method (`other` beyond the seven
 *   standard ones, so that clients cannot add series without bound).
 * - `jobengine_database_up` (gauge): 1 when this scrape's database queries answered (within 5 s,
 *   or the API's request timeout when shorter), else 0. While the database is down or hangs the
 *   scrape still answers 200 with the process's own metrics (the transition counters as last
 *   read), without `jobengine_jobs`, which only the database knows.
 *
 * @module
 */
import type { Queryable } from "../db/port.ts";
import { withDeadline } from "../deadline.ts";
import { horizonPassed, takeHorizon } from "../events/timeline_event_emitter.ts";
import { JOB_STATUSES } from "../job/state_machine.ts";

/** The buckets of `jobengine_claim_duration_seconds`, in seconds. */
export const CLAIM_BUCKETS = [
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
] as const;

/** How long `/readyz` and `/metrics` wait for the database at most: 5 s. */
export const DATABASE_WAIT_MS = 5_000;

/** The media type of the exposition format. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');
}

function labels(record: Record<string, string>): string {
  const parts = Object.entries(record).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

function formatNumber(value: number): string {
  if (value === Infinity) return "+Inf";
  return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(15)));
}

/** The metrics of one process; {@linkcode Metrics.render} reads the database parts. */
export class Metrics {
  readonly #http = new Map<string, { route: string; method: string; status: string; n: number }>();
  readonly #claimBuckets: number[] = CLAIM_BUCKETS.map(() => 0);
  #claimCount = 0;
  #claimSum = 0;

  readonly #transitions = new Map<string, { from: string; to: string; n: number }>();
  #transitionsThrough = 0;
  #horizon: { xid: string; covers: number } | null = null;
  #refreshing: Promise<unknown> = Promise.resolve();
  #jobs = new Map<string, number>();

  /** Counts one HTTP request. */
  observeRequest(route: string, method: string, status: number): void {
    const key = `${route}\u0000${method}\u0000${status}`;
    const entry = this.#http.get(key);
    if (entry) entry.n++;
    else this.#http.set(key, { route, method, status: String(status), n: 1 });
  }

  /** Records the duration of one claim call, in seconds. */
  observeClaim(seconds: number): void {
    this.#claimCount++;
    this.#claimSum += seconds;
    CLAIM_BUCKETS.forEach((bound, i) => {
      if (seconds <= bound) this.#claimBuckets[i]!++;
    });
  }

  /**
   * Renders every metric; queries `db` for the job and transition counts, waiting at most
   * `timeoutMs` for it (then `jobengine_database_up 0`). Never rejects.
   */
  async render(db: Queryable, timeoutMs = DATABASE_WAIT_MS): Promise<string> {
    // one refresh at a time (the transition counters advance by sequence ranges); a refresh
    // that hangs keeps later ones queued behind it, and their scrapes report the database down
    const refresh = this.#refreshing.then(() => this.#refresh(db));
    this.#refreshing = refresh.catch(() => {});
    const up = await withDeadline(refresh.then(() => true, () => false), timeoutMs, () => false);
    return this.#render(up);
  }

  async #refresh(db: Queryable): Promise<void> {
    const jobs = await db.query<{ status: string; n: number }>(
      `select status::text as status, count(*)::int8 as n from jobengine.jobs group by 1`,
    );
    this.#jobs = new Map(jobs.map((row) => [row.status, Number(row.n)]));
    await this.#advanceTransitions(db);
  }

  #render(databaseUp: boolean): string {
    const lines: string[] = [];
    lines.push(
      "# HELP jobengine_database_up Whether this scrape's database queries answered.",
      "# TYPE jobengine_database_up gauge",
      `jobengine_database_up ${databaseUp ? 1 : 0}`,
    );
    if (databaseUp) {
      lines.push("# HELP jobengine_jobs Jobs per status.", "# TYPE jobengine_jobs gauge");
      for (const status of JOB_STATUSES) {
        lines.push(`jobengine_jobs${labels({ status })} ${this.#jobs.get(status) ?? 0}`);
      }
    }

    lines.push(
      "# HELP jobengine_transitions_total Job transitions recorded in the database.",
      "# TYPE jobengine_transitions_total counter",
    );
    for (const { from, to, n } of this.#transitions.values()) {
      lines.push(`jobengine_transitions_total${labels({ from, to })} ${n}`);
    }

    lines.push(
      "# HELP jobengine_claim_duration_seconds Duration of claim calls made by this process.",
      "# TYPE jobengine_claim_duration_seconds histogram",
    );
    CLAIM_BUCKETS.forEach((bound, i) => {
      lines.push(
        `jobengine_claim_duration_seconds_bucket${labels({ le: formatNumber(bound) })} ${
          this.#claimBuckets[i]
        }`,
      );
    });
    lines.push(
      `jobengine_claim_duration_seconds_bucket${labels({ le: "+Inf" })} ${this.#claimCount}`,
      `jobengine_claim_duration_seconds_sum ${formatNumber(this.#claimSum)}`,
      `jobengine_claim_duration_seconds_count ${this.#claimCount}`,
    );

    lines.push(
      "# HELP jobengine_http_requests_total HTTP requests by route pattern, method and status.",
      "# TYPE jobengine_http_requests_total counter",
    );
    for (const { route, method, status, n } of this.#http.values()) {
      lines.push(`jobengine_http_requests_total${labels({ route, method, status })} ${n}`);
    }
    return lines.join("\n") + "\n";
  }

  /** Adds the transitions in the newly settled sequence range to the counters. */
  async #advanceTransitions(db: Queryable): Promise<void> {
    if (this.#horizon && await horizonPassed(db, this.#horizon.xid)) {
      await this.#aggregate(db, this.#horizon.covers);
      this.#horizon = null;
    }
    const [top] = await db.query<{ max: number | null; n: number }>(
      `select max(sequence) as max, count(*)::int8 as n
         from jobengine.timeline_events where sequence > $1::int8`,
      [this.#transitionsThrough],
    );
    const max = top?.max === null || top?.max === undefined ? null : Number(top.max);
    if (max === null) return;
    if (Number(top!.n) === max - this.#transitionsThrough) {
      // contiguous: every sequence up to max is committed
      await this.#aggregate(db, max);
    } else if (!this.#horizon) {
      const horizon = { xid: await takeHorizon(db), covers: max };
      // usually an old rolled-back hole: then it passes at once
      if (await horizonPassed(db, horizon.xid)) await this.#aggregate(db, max);
      else this.#horizon = horizon;
    }
  }

  async #aggregate(db: Queryable, through: number): Promise<void> {
    if (through <= this.#transitionsThrough) return;
    const rows = await db.query<{ from_status: string; to_status: string; n: number }>(
      `select coalesce(data ->> 'from', 'none') as from_status, data ->> 'to' as to_status,
              count(*)::int8 as n
         from jobengine.timeline_events
        where sequence > $1::int8 and sequence <= $2::int8 and subject_kind = 'job' and data ? 'to'
        group by 1, 2`,
      [this.#transitionsThrough, through],
    );
    for (const row of rows) {
      const key = `${row.from_status}\u0000${row.to_status}`;
      const entry = this.#transitions.get(key);
      if (entry) entry.n += Number(row.n);
      else {this.#transitions.set(key, {
          from: row.from_status,
          to: row.to_status,
          n: Number(row.n),
        });}
    }
    this.#transitionsThrough = through;
  }
}
