/**
 * Shared helpers of the chaos suite: child processes with line-by-line output, bounded waits,
 * history checks and table row counts.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Queryable } from "../../src/db/port.ts";
import { until as waitUntil } from "../_wait.ts";

/** The repository root (where `deno.json` lives). */
export const REPO_ROOT: string = new URL("../../", import.meta.url).pathname;

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls until `check` holds (every 20 ms by default here); see test/_wait.ts. */
export function until(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
  everyMs = 20,
): Promise<number> {
  return waitUntil(check, timeoutMs, what, everyMs);
}

/** Logs one timing line of a scenario (collected in the test output). */
export function report(scenario: string, fields: Record<string, unknown>): void {
  const parts = Object.entries(fields).map(([key, value]) => `${key}=${value}`);
  console.log(`[chaos] ${scenario}: ${parts.join(" ")}`);
}

/** A `deno run -A` child process whose stdout is read line by line. */
export interface DenoChild {
  /** The OS process id. */
  readonly pid: number;
  /** Every stdout line so far. */
  readonly lines: readonly string[];
  /** Everything written to stderr so far. */
  readonly stderr: () => string;
  /** Resolves to the first stdout line (past or future) matching `pattern`. */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<string>;
  /** Sends `signal` and waits for the process to exit (and its pipes to close). */
  kill(signal: Deno.Signal): Promise<Deno.CommandStatus>;
  /** Resolves when the process has exited and its pipes are drained. */
  readonly exited: Promise<Deno.CommandStatus>;
}

/** Starts `deno run -A <script>` (a path relative to this folder) with `env` added. */
export function spawnDeno(script: string, env: Record<string, string>): DenoChild {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      `--config=${REPO_ROOT}deno.json`,
      new URL(script, import.meta.url).pathname,
    ],
    cwd: REPO_ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const waiters = new Set<{ pattern: RegExp; resolve: (line: string) => void }>();
  let errText = "";
  const readOut = (async () => {
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of child.stdout) {
      buffer += decoder.decode(chunk, { stream: true });
      let newline: number;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        lines.push(line);
        for (const waiter of [...waiters]) {
          if (waiter.pattern.test(line)) {
            waiters.delete(waiter);
            waiter.resolve(line);
          }
        }
      }
    }
  })();
  const readErr = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) errText += decoder.decode(chunk, { stream: true });
  })();
  const exited = Promise.all([child.status, readOut, readErr]).then(([status]) => status);
  return {
    pid: child.pid,
    lines,
    stderr: () => errText,
    exited,
    waitForLine(pattern, timeoutMs) {
      const seen = lines.find((line) => pattern.test(line));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const waiter = {
          pattern,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(
            new Error(
              `Timed out after ${timeoutMs} ms waiting for ${pattern} from process ${child.pid}; ` +
                `stdout: ${lines.slice(-5).join(" | ")}; stderr: ${errText.slice(-2000)}`,
            ),
          );
        }, timeoutMs);
        waiters.add(waiter);
        // the process may exit before printing it
        exited.then(() => {
          if (waiters.has(waiter)) {
            waiters.delete(waiter);
            clearTimeout(timer);
            reject(
              new Error(
                `Process ${child.pid} exited before printing ${pattern}; stderr: ${
                  errText.slice(-2000)
                }`,
              ),
            );
          }
        });
      });
    },
    async kill(signal) {
      try {
        child.kill(signal);
      } catch {
        // already exited
      }
      return await exited;
    },
  };
}

/** Stops children still running: SIGTERM, then SIGKILL after `graceMs`. Never throws. */
export async function stopChildren(children: readonly DenoChild[], graceMs = 5000): Promise<void> {
  await Promise.all(children.map(async (child) => {
    try {
      Deno.kill(child.pid, "SIGTERM");
    } catch {
      // already gone
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), graceMs);
    });
    const outcome = await Promise.race([child.exited, timeout]);
    clearTimeout(timer);
    if (outcome === "timeout") await child.kill("SIGKILL");
  }));
}

/** Row counts of the tables that record what happened. */
export interface RowCounts {
  jobs: number;
  job_history: number;
  timeline_events: number;
  job_dependencies: number;
}

/** Counts the rows of jobs, job_history, timeline_events and job_dependencies. */
export async function rowCounts(db: Queryable): Promise<RowCounts> {
  const [row] = await db.query<Record<keyof RowCounts, number>>(
    `select (select count(*) from jobengine.jobs)::int as jobs,
            (select count(*) from jobengine.job_history)::int as job_history,
            (select count(*) from jobengine.timeline_events)::int as timeline_events,
            (select count(*) from jobengine.job_dependencies)::int as job_dependencies`,
  );
  return row!;
}

/** How many history rows of each `from->to` step a set of jobs has, as one object. */
export async function historySteps(
  db: Queryable,
  where = "true",
  params: readonly unknown[] = [],
): Promise<Record<string, number>> {
  const rows = await db.query<{ step: string; n: number }>(
    `select coalesce(h.from_status::text, 'null') || '->' || h.to_status::text as step,
            count(*)::int as n
       from jobengine.job_history h
       join jobengine.jobs j on j.id = h.job_id
      where ${where}
      group by 1 order by 1`,
    params,
  );
  return Object.fromEntries(rows.map((row) => [row.step, row.n]));
}

/**
 * Asserts through `job_history` that each of the jobs matched by `where` made the step
 * `from -> to` exactly once; returns how many jobs were checked.
 */
export async function assertStepExactlyOnce(
  db: Queryable,
  step: { from: string; to: string },
  where = "true",
  params: readonly unknown[] = [],
): Promise<number> {
  const rows = await db.query<{ id: string; n: number }>(
    `select j.id, count(h.job_id)::int as n
       from jobengine.jobs j
       left join jobengine.job_history h
         on h.job_id = j.id and h.from_status = '${step.from}' and h.to_status = '${step.to}'
      where ${where}
      group by j.id`,
    params,
  );
  const wrong = rows.filter((row) => row.n !== 1);
  assert.equal(
    wrong.length,
    0,
    `${wrong.length} of ${rows.length} jobs do not have exactly one ${step.from} -> ${step.to} ` +
      `in job_history, e.g. ${JSON.stringify(wrong.slice(0, 5))}`,
  );
  return rows.length;
}

/** Asserts that every job's history is gap-free: seq 1..version, and it matches the status. */
export async function assertHistoryConsistent(db: Queryable): Promise<void> {
  const broken = await db.query(
    `select j.id, j.status, j.version, count(h.*)::int as rows, max(h.seq) as last_seq
       from jobengine.jobs j
       left join jobengine.job_history h on h.job_id = j.id
      group by j.id
     having count(h.*) <> j.version or max(h.seq) <> j.version
         or (array_agg(h.to_status order by h.seq desc))[1] <> j.status
      limit 5`,
  );
  assert.deepEqual(broken, [], "history rows match each job's version and status");
}

/** Asserts that each job has as many transition events in timeline_events as history rows. */
export async function assertTimelineMatchesHistory(db: Queryable): Promise<void> {
  const broken = await db.query(
    `select j.id,
            (select count(*) from jobengine.job_history h where h.job_id = j.id)::int as history,
            (select count(*) from jobengine.timeline_events e
              where e.subject_id = j.id and e.type not in ('job.blocked', 'sealed.egress_blocked'))::int
              as events
       from jobengine.jobs j
      where (select count(*) from jobengine.job_history h where h.job_id = j.id)
         <> (select count(*) from jobengine.timeline_events e
              where e.subject_id = j.id and e.type not in ('job.blocked', 'sealed.egress_blocked'))
      limit 5`,
  );
  assert.deepEqual(broken, [], "one timeline event per history row");
}
