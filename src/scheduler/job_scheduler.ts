/**
 * The JobScheduler: the loop that promotes eligible pending jobs (`schedule_ready`), reaps
 * expired leases (`reap_expired_leases`) and wakes workers when delayed jobs come due.
 *
 * Wake-ups: NOTIFY on `jobengine_ready` (a job was created, the engine was unsealed), a timer set
 * to `jobengine.next_wakeup()` (the next delayed job or expiring lease), and a steady interval
 * that also renews leadership. Only one scheduler per database acts at a time: each holds the
 * `scheduler` leadership lease (`jobengine.acquire_leadership`) while it works; the others stand
 * by and take over once the lease lapses (within `leaseSeconds` of the leader dying).
 *
 * @module
 */
import type { Database } from "../db/port.ts";
import { trailingWaker } from "../db/wake.ts";

/** The logger the scheduler writes to (the runtime's structured logger fits). */
export interface SchedulerLogger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** Options of {@linkcode JobScheduler}. */
export interface JobSchedulerOptions {
  /** The steady tick, in milliseconds (leadership renewal, safety net). Default 1000. */
  intervalMs?: number;
  /** Leadership lease, in seconds: a dead leader is replaced within this. Default 10. */
  leaseSeconds?: number;
  /** Jobs promoted per `schedule_ready` call. Default 1000. */
  batchSize?: number;
  /** This instance's name in the leadership lease. Default a random id. */
  instanceId?: string;
  /** Where to log. Default silent. */
  logger?: SchedulerLogger;
}

/** Counters of what the scheduler did. */
export interface SchedulerStats {
  ticks: number;
  scheduled: number;
  reaped: number;
  leaderSince: Date | null;
}

const LEADERSHIP = "scheduler";
/**
 * The leadership renewal commits without waiting for its WAL flush: it writes no history and no
 * event, and one lost in a crash is simply done again by the next tick. Promotions and reaped
 * leases commit durably, like every other transition: their `job.scheduled` / `job.failed`
 * events reach SSE clients as soon as they are visible, and an asynchronous commit lost in a
 * crash left clients holding events that never happened (and, after the restart, a sequence
 * number reused for another event; found by a crash probe in session 9). That costs the path
 * from create to handler one disk flush (docs/performance.md).
 */
const ASYNC_COMMIT = "set_config('synchronous_commit', 'off', true) as _async_commit";
const SILENT: SchedulerLogger = { info() {}, warn() {}, error() {} };

/** Promotes pending jobs, reaps expired leases, and wakes workers for delayed jobs. */
export class JobScheduler {
  readonly #db: Database;
  readonly #intervalMs: number;
  readonly #leaseSeconds: number;
  readonly #batchSize: number;
  readonly #logger: SchedulerLogger;
  /** This instance's name in the leadership lease. */
  readonly instanceId: string;
  /** What the scheduler did so far. */
  readonly stats: SchedulerStats = { ticks: 0, scheduled: 0, reaped: 0, leaderSince: null };

  #running = false;
  #ticking: Promise<void> | null = null;
  #again = false;
  #interval: ReturnType<typeof setInterval> | null = null;
  #wakeTimer: ReturnType<typeof setTimeout> | null = null;
  #unlisten: (() => Promise<void>) | null = null;
  readonly #trail = trailingWaker(() => this.wake());
  /** When leadership was last taken or renewed (performance.now()). */
  #renewedAt = -Infinity;
  /** When leases were last reaped (performance.now()). */
  #reapedAt = -Infinity;
  /** Set by the timer: a delayed job came due or a lease may have lapsed. */
  #reapDue = false;

  /** Creates a scheduler over `db`; call {@linkcode JobScheduler.start} to run it. */
  constructor(db: Database, options: JobSchedulerOptions = {}) {
    this.#db = db;
    this.#intervalMs = options.intervalMs ?? 1000;
    this.#leaseSeconds = options.leaseSeconds ?? 10;
    this.#batchSize = options.batchSize ?? 1000;
    this.#logger = options.logger ?? SILENT;
    this.instanceId = options.instanceId ?? `scheduler-${crypto.randomUUID()}`;
  }

  /** Whether this instance currently holds the leadership lease. */
  get isLeader(): boolean {
    return this.stats.leaderSince !== null;
  }

  /** Starts listening and ticking; resolves after the first tick. */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    this.#unlisten = await this.#db.listen("jobengine_ready", (payload) => {
      // promotions notify 'scheduled' for the workers; only new work wakes the scheduler, and
      // again shortly after (NOTIFYs are coalesced across concurrent transactions)
      if (payload !== "scheduled" && payload !== "due") this.#trail.poke();
    });
    this.#interval = setInterval(() => this.wake(), this.#intervalMs);
    this.wake();
    await this.#ticking;
  }

  /** Stops the loop, waits for a tick in progress, and gives up leadership. */
  async stop(): Promise<void> {
    await this.stopWithoutRelease();
    if (this.isLeader) {
      await this.#db.query(
        `select jobengine.release_leadership(p_name => $1::text, p_holder => $2::text)`,
        [LEADERSHIP, this.instanceId],
      ).catch(() => {});
    }
    this.stats.leaderSince = null;
  }

  /**
   * Stops the loop but keeps the leadership lease until it lapses, as a crashed process would;
   * for failover tests and drills.
   */
  async stopWithoutRelease(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    if (this.#interval) clearInterval(this.#interval);
    if (this.#wakeTimer) clearTimeout(this.#wakeTimer);
    this.#trail.stop();
    this.#interval = null;
    this.#wakeTimer = null;
    await this.#unlisten?.().catch(() => {});
    this.#unlisten = null;
    await this.#ticking;
  }

  /** Asks for a tick now (coalesced with one in progress). */
  wake(): void {
    if (!this.#running) return;
    if (this.#ticking) {
      this.#again = true;
      return;
    }
    this.#ticking = this.#loop().finally(() => {
      this.#ticking = null;
    });
  }

  async #loop(): Promise<void> {
    do {
      this.#again = false;
      try {
        await this.tick();
      } catch (error) {
        this.#logger.warn("Scheduler tick failed", { error: String(error) });
      }
    } while (this.#again && this.#running);
  }

  /**
   * One pass: take or renew leadership when due (every `intervalMs`, so a NOTIFY-driven tick
   * costs no extra commit), then, as leader, promote eligible jobs, reap expired leases when a
   * lease may have lapsed, and set the timer for the next delayed job or lease expiry.
   */
  async tick(): Promise<void> {
    this.stats.ticks++;
    const now = performance.now();
    if (!this.isLeader || now - this.#renewedAt >= this.#intervalMs) {
      const rows = await this.#db.query<{ leader: boolean }>(
        `select jobengine.acquire_leadership(p_name => $1::text, p_holder => $2::text, p_ttl_seconds => $3::int) as leader,
                ${ASYNC_COMMIT}`,
        [LEADERSHIP, this.instanceId, this.#leaseSeconds],
      );
      const leader = rows[0]?.leader === true;
      if (leader) this.#renewedAt = now;
      if (leader && !this.isLeader) {
        this.stats.leaderSince = new Date();
        this.#logger.info("Scheduler took leadership", { instanceId: this.instanceId });
      } else if (!leader && this.isLeader) {
        this.stats.leaderSince = null;
        this.#logger.warn("Scheduler lost leadership", { instanceId: this.instanceId });
      }
    }
    if (!this.isLeader) return;

    let promoted: number;
    do {
      const rows = await this.#db.query<{ n: number }>(
        `select jobengine.schedule_ready(p_limit => $1::int) as n`,
        [this.#batchSize],
      );
      promoted = Number(rows[0]!.n);
      this.stats.scheduled += promoted;
    } while (promoted === this.#batchSize && this.#running);
    if (this.#reapDue || now - this.#reapedAt >= this.#intervalMs) {
      this.#reapDue = false;
      this.#reapedAt = now;
      const rows = await this.#db.query<{ n: number }>(
        `select jobengine.reap_expired_leases() as n`,
      );
      this.stats.reaped += Number(rows[0]!.n);
      await this.#armTimer();
    }
  }

  async #armTimer(): Promise<void> {
    const rows = await this.#db.query<{ at: Date | null; now: Date }>(
      `select jobengine.next_wakeup() as at, clock_timestamp() as now`,
    );
    const at = rows[0]?.at;
    if (this.#wakeTimer) clearTimeout(this.#wakeTimer);
    this.#wakeTimer = null;
    if (!at || !this.#running) return;
    const delay = Math.max(0, at.getTime() - rows[0]!.now.getTime()) + 5;
    if (delay >= this.#intervalMs) return; // the steady tick comes first
    this.#wakeTimer = setTimeout(() => {
      this.#wakeTimer = null;
      // delayed jobs came due: wake the workers, then reap whatever lease lapsed
      this.#db.query(`select pg_notify('jobengine_ready', 'due')`).catch(() => {});
      this.#reapDue = true;
      this.wake();
    }, delay);
  }
}
