/**
 * Group intake: concurrent one-job creates share one statement and one commit.
 *
 * Every `create_job` call is its own transaction, and a transaction that writes waits for its
 * WAL flush: on a disk that flushes in about 2-3 ms, eight callers that each wait for their own
 * commit cannot pass about 3,000 creates per second however little the create itself costs
 * (`pgbench -N`, same disk: 2,000-2,750 tps). So while `maxInFlight` statements are already
 * running, further plain creates wait in a queue, and the next free slot sends everything
 * queued (up to `maxBatch`, one tenant and actor at a time) as one `create_workflow` call of
 * independent jobs. A caller that finds a free slot and no recent load goes alone through
 * `create_job` at once, exactly as without grouping. Under load (the previous statement carried
 * several creates) a free slot waits up to `gatherMs` (1 ms) for as many to queue again, the
 * way PostgreSQL's `commit_delay` waits for `commit_siblings`: otherwise callers that return
 * together from one group and come back one after another would send a lone create first and
 * the rest one commit later.
 *
 * What a grouped job gets is what `create_job` gives it: the same row (every column, the actor
 * and a null reason included), history row, `job.created` event and NOTIFY (the same triggers
 * write them). Only creates without `idempotencyKey` and `dependsOn` are grouped (those need
 * `create_job`'s lookups, and a key replayed inside a group would see its own statement's row).
 * When the server refuses the group's statement (an error with a SQLSTATE), nothing of it was
 * written, and each of its creates runs again alone, so that each caller gets its own answer
 * and its own `create_job` error. Any other failure (the database cannot be reached, or the
 * answer could not be read) reaches every caller of the group as it is: the statement may have
 * committed, and running the creates again could create them twice.
 *
 * @module
 */
import { DatabaseUnavailableError, fromDatabaseError, JobEngineError } from "../errors.ts";
import type { Job } from "./job.ts";
import type {
  CreatedJob,
  CreateJobOptions,
  WorkflowJobInput,
  WorkflowOptions,
} from "./job_store.ts";

/** Limits of group intake (`JobStore` option `groupCreates`). */
export interface CreateGroupLimits {
  /** Create statements running at once before callers queue (default 1). */
  maxInFlight?: number;
  /** Most creates in one grouped statement (default 100). */
  maxBatch?: number;
  /**
   * Under load, how long a free slot waits for as many creates as its previous statement
   * carried before it sends fewer (default 1 ms; 0 sends at once).
   */
  gatherMs?: number;
}

interface Waiting {
  type: string;
  payload: unknown;
  options: CreateJobOptions;
  group: string;
  resolve(created: CreatedJob): void;
  reject(error: unknown): void;
}

/** The options a grouped create may carry: each has the same meaning in `create_workflow`. */
const GROUPABLE_OPTIONS: ReadonlySet<string> = new Set([
  "tenantId",
  "actor",
  "priority",
  "retryPolicy",
  "maxRetries",
  "notBefore",
  "requiresNetwork",
  "correlationId",
]);

/** Whether a create may share a statement with others (see the module documentation). */
export function groupable(options: CreateJobOptions): boolean {
  for (const [key, value] of Object.entries(options)) {
    if (value !== undefined && !GROUPABLE_OPTIONS.has(key)) return false;
  }
  return true;
}

/**
 * Whether the server refused a statement, so that it certainly wrote nothing: a jobengine error
 * or another SQLSTATE, not a lost connection and not a failure on this side of the wire.
 */
function refusedByServer(error: unknown): boolean {
  const known = fromDatabaseError(error);
  if (known instanceof DatabaseUnavailableError) return false;
  if (known instanceof JobEngineError) return true;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code);
}

/** Queues plain creates while the slots are busy and sends each queue as one statement. */
export class CreateGroup {
  readonly #one: (type: string, payload: unknown, options: CreateJobOptions) => Promise<CreatedJob>;
  readonly #many: (jobs: WorkflowJobInput[], options: WorkflowOptions) => Promise<Job[]>;
  readonly #maxInFlight: number;
  readonly #maxBatch: number;
  readonly #gatherMs: number;
  #queue: Waiting[] = [];
  #inFlight = 0;
  /** How many creates the previous statement carried: the load the next one waits for. */
  #lastBatch = 1;
  #gatherTimer: ReturnType<typeof setTimeout> | null = null;

  /**
   * `one` creates a job alone (`create_job`); `many` creates independent jobs in one statement
   * and answers their rows in order (`create_workflow`).
   */
  constructor(
    one: (type: string, payload: unknown, options: CreateJobOptions) => Promise<CreatedJob>,
    many: (jobs: WorkflowJobInput[], options: WorkflowOptions) => Promise<Job[]>,
    limits: CreateGroupLimits = {},
  ) {
    this.#one = one;
    this.#many = many;
    this.#maxInFlight = Math.max(1, limits.maxInFlight ?? 1);
    this.#maxBatch = Math.max(1, limits.maxBatch ?? 100);
    this.#gatherMs = Math.max(0, limits.gatherMs ?? 1);
  }

  /** Creates one job, alone or with the others that queue beside it. */
  create(type: string, payload: unknown, options: CreateJobOptions): Promise<CreatedJob> {
    return new Promise((resolve, reject) => {
      const group = `${options.tenantId ?? "default"}\u0000${options.actor ?? ""}`;
      this.#queue.push({ type, payload, options, group, resolve, reject });
      this.#pump();
    });
  }

  #pump(gathered = false): void {
    while (this.#inFlight < this.#maxInFlight && this.#queue.length > 0) {
      if (!gathered && this.#gatherMs > 0 && this.#queue.length < this.#lastBatch) {
        // the previous statement carried more: its callers are likely on their way back
        this.#gatherTimer ??= setTimeout(() => {
          this.#gatherTimer = null;
          this.#pump(true);
        }, this.#gatherMs);
        return;
      }
      if (this.#gatherTimer !== null) {
        clearTimeout(this.#gatherTimer);
        this.#gatherTimer = null;
      }
      gathered = false;
      const batch = this.#take();
      this.#lastBatch = batch.length;
      this.#inFlight += 1;
      this.#send(batch).finally(() => {
        this.#inFlight -= 1;
        this.#pump();
      });
    }
  }

  /** The oldest waiting create and every other one of its tenant and actor, up to maxBatch. */
  #take(): Waiting[] {
    const group = this.#queue[0]!.group;
    const batch: Waiting[] = [];
    const rest: Waiting[] = [];
    for (const waiting of this.#queue) {
      if (batch.length < this.#maxBatch && waiting.group === group) batch.push(waiting);
      else rest.push(waiting);
    }
    this.#queue = rest;
    return batch;
  }

  async #send(batch: Waiting[]): Promise<void> {
    if (batch.length === 1) return this.#alone(batch[0]!);
    const first = batch[0]!.options;
    let jobs: Job[];
    try {
      jobs = await this.#many(
        batch.map((w, i) => ({
          ref: String(i),
          type: w.type,
          payload: w.payload,
          priority: w.options.priority,
          retryPolicy: w.options.retryPolicy,
          maxRetries: w.options.maxRetries,
          notBefore: w.options.notBefore,
          requiresNetwork: w.options.requiresNetwork,
          correlationId: w.options.correlationId,
        })),
        { tenantId: first.tenantId, actor: first.actor },
      );
    } catch (error) {
      if (!refusedByServer(error)) {
        for (const w of batch) w.reject(error);
        return;
      }
      // the statement failed as a whole and wrote nothing: each create again, alone
      await Promise.all(batch.map((w) => this.#alone(w)));
      return;
    }
    batch.forEach((w, i) => w.resolve({ job: jobs[i]!, created: true }));
  }

  async #alone(w: Waiting): Promise<void> {
    try {
      w.resolve(await this.#one(w.type, w.payload, w.options));
    } catch (error) {
      w.reject(error);
    }
  }
}
