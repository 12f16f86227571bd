/**
 * Databases for the benchmarks: one migrated template per run, one fresh copy per scenario,
 * counters (commits, WAL) around a measured part, and fast set-based fills that still go
 * through the lifecycle functions (so every job has its history and events).
 *
 * @module
 */
import type { Cluster } from "../scripts/pg_cluster.ts";
import { createPostgresDatabase } from "../src/db/postgres.ts";
import { migrate } from "../src/db/migrate.ts";
import type { Database } from "../src/db/port.ts";
import { sleep } from "./_harness.ts";

/** The job type every fill creates and every benchmark worker handles. */
export const NOOP = "noop";

/** Cumulative counters of one database (and the cluster's WAL position). */
export interface Counters {
  commits: number;
  rollbacks: number;
  /** Bytes of WAL since the start of the cluster (`pg_current_wal_insert_lsn()`). */
  walBytes: number;
  /** WAL flushes to disk (`pg_stat_wal.wal_sync`), cluster-wide. */
  walSyncs: number;
  at: number;
}

/** Per-job figures between two {@linkcode Counters}. */
export interface PerJob {
  commitsPerJob: number;
  walBytesPerJob: number;
  walSyncsPerJob: number;
}

/** What {@linkcode BenchDatabase.pgbench} reads from pgbench's report. */
export interface PgbenchOutput {
  tps: number;
  transactions: number;
  latencyMs: number | null;
  text: string;
}

/** The template and the per-scenario databases of one run. */
export class BenchDatabases {
  readonly cluster: Cluster;
  readonly template = "jobengine_bench_template";
  #n = 0;

  /** Creates the manager; call {@linkcode BenchDatabases.prepare} once. */
  constructor(cluster: Cluster) {
    this.cluster = cluster;
  }

  /** Creates and migrates the template database. */
  async prepare(): Promise<void> {
    const url = await this.cluster.createDatabase(this.template);
    const db = createPostgresDatabase(url, { max: 1, applicationName: "bench-migrate" });
    try {
      await migrate(db);
    } finally {
      await db.close();
    }
  }

  /** A fresh, migrated database named after `label`. */
  async create(label: string): Promise<BenchDatabase> {
    const name = `bench_${label.replace(/[^a-z0-9_]/gi, "_").toLowerCase()}_${++this.#n}`;
    const url = await this.cluster.createDatabase(name, { template: this.template });
    return new BenchDatabase(this.cluster, name, url);
  }
}

/** One scenario's database. */
export class BenchDatabase {
  readonly cluster: Cluster;
  readonly name: string;
  readonly url: string;
  readonly #open = new Set<Database>();

  /** Wraps database `name` of `cluster`. */
  constructor(cluster: Cluster, name: string, url: string) {
    this.cluster = cluster;
    this.name = name;
    this.url = url;
  }

  /** Opens a postgres.js pool of `max` connections on this database (closed by `closeAll`). */
  open(max = 1, applicationName = "bench"): Database {
    const db = createPostgresDatabase(this.url, { max, applicationName });
    this.#open.add(db);
    const close = db.close.bind(db);
    return {
      ...db,
      kind: db.kind,
      close: async () => {
        this.#open.delete(db);
        await close();
      },
    };
  }

  /** Closes every pool opened here, then waits until the server has no session on it. */
  async closeAll(): Promise<void> {
    await Promise.allSettled([...this.#open].map((db) => db.close()));
    this.#open.clear();
    await this.waitIdle();
  }

  /** Waits (up to 5 s) until no session is connected to this database, so its stats are flushed. */
  async waitIdle(): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const n = Number(
        await this.value(
          `select count(*) from pg_stat_activity where datname = '${this.name}'`,
          "postgres",
        ),
      );
      if (n === 0) return;
      await sleep(50);
    }
  }

  /**
   * Runs pgbench on this database with `args` (and `script` as its only script file when
   * given); resolves to its tps (without connection time), transactions and average latency.
   */
  async pgbench(args: readonly string[], script?: string): Promise<PgbenchOutput> {
    const scriptPath = script === undefined
      ? null
      : await Deno.makeTempFile({ prefix: "bench-pgbench-", suffix: ".sql" });
    try {
      if (scriptPath !== null) {
        await Deno.writeTextFile(scriptPath, script!);
        await Deno.chmod(scriptPath, 0o644);
      }
      const out = await new Deno.Command(`${this.cluster.binDir}/pgbench`, {
        args: [
          "-h",
          "127.0.0.1",
          "-p",
          String(this.cluster.port),
          "-U",
          "postgres",
          ...args,
          ...(scriptPath === null ? [] : ["-f", scriptPath]),
          this.name,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      if (!out.success) throw new Error(`pgbench ${args.join(" ")} failed:\n${text}`);
      const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(text);
      const tx = /number of transactions actually processed: (\d+)/.exec(text);
      const lat = /latency average = ([\d.]+) ms/.exec(text);
      return {
        tps: tps ? Number(tps[1]) : NaN,
        transactions: tx ? Number(tx[1]) : NaN,
        latencyMs: lat ? Number(lat[1]) : null,
        text,
      };
    } finally {
      if (scriptPath !== null) await Deno.remove(scriptPath).catch(() => {});
    }
  }

  /** Runs `sql` with psql on this database (or `database`); resolves to unaligned output. */
  psql(sql: string, database = this.name): Promise<string> {
    return this.cluster.psql(["-At", "-c", sql], { database });
  }

  /** The first line of psql's unaligned output. */
  async value(sql: string, database = this.name): Promise<string> {
    return (await this.psql(sql, database)).trim().split("\n")[0] ?? "";
  }

  /** Reads the counters from the `postgres` database (so the read does not count itself). */
  async counters(): Promise<Counters> {
    const line = await this.value(
      `select d.xact_commit, d.xact_rollback,
              pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint, w.wal_sync
         from pg_stat_database d, pg_stat_wal w where d.datname = '${this.name}'`,
      "postgres",
    );
    const [commits, rollbacks, wal, syncs] = line.split("|").map(Number);
    return {
      commits: commits!,
      rollbacks: rollbacks!,
      walBytes: wal!,
      walSyncs: syncs!,
      at: performance.now(),
    };
  }

  /** Per-job figures between `before` and now; call after `closeAll()` so stats are flushed. */
  async perJob(before: Counters, jobs: number, extraCommits = 0): Promise<PerJob> {
    const after = await this.counters();
    return {
      commitsPerJob: (after.commits - before.commits - extraCommits) / jobs,
      walBytesPerJob: (after.walBytes - before.walBytes) / jobs,
      walSyncsPerJob: (after.walSyncs - before.walSyncs) / jobs,
    };
  }

  /**
   * Creates `n` no-op jobs with `create_workflow` (chunks of up to 10,000, `parallel` sessions)
   * and, when `schedule`, promotes them with `schedule_ready`. Stops early after
   * `budgetSeconds`; resolves to how many were built and the seconds taken.
   */
  async fill(
    n: number,
    options: { schedule: boolean; parallel?: number; budgetSeconds?: number },
  ): Promise<{ built: number; seconds: number }> {
    const parallel = Math.max(1, Math.min(options.parallel ?? 2, Math.ceil(n / 1000)));
    const perSession = Math.ceil(n / parallel);
    const chunk = Math.min(10_000, perSession);
    const t0 = performance.now();
    const deadline = options.budgetSeconds === undefined
      ? "infinity"
      : new Date(Date.now() + options.budgetSeconds * 1000).toISOString();
    await Promise.all(Array.from({ length: parallel }, () => {
      const schedule = options.schedule ? `perform jobengine.schedule_ready(v_size);` : "";
      return this.psql(`do $$
        declare v_left int := ${perSession}; v_size int;
        begin
          while v_left > 0 and clock_timestamp() < '${deadline}'::timestamptz loop
            v_size := least(${chunk}, v_left);
            perform count(*) from jobengine.create_workflow(
              (select jsonb_agg(jsonb_build_object('ref', g::text, 'type', '${NOOP}'))
                 from generate_series(1, v_size) g), '{}');
            commit;
            ${schedule}
            commit;
            v_left := v_left - v_size;
          end loop;
        end $$`);
    }));
    if (options.schedule) {
      // sessions promoting side by side skip each other's uncommitted jobs: sweep up the rest
      await this.psql(`do $$
        begin
          while jobengine.schedule_ready(10000) > 0 loop
            commit;
          end loop;
        end $$`);
    }
    const seconds = (performance.now() - t0) / 1000;
    const status = options.schedule ? "scheduled" : "pending";
    const built = Number(
      await this.value(
        `select count(*) from jobengine.jobs where status = '${status}'`,
      ),
    );
    return { built, seconds };
  }

  /**
   * Works jobs down set-based (`claim_jobs` 1,000 at a time, then `complete_jobs`, each batch
   * its own transaction) in `parallel` sessions, until none is claimable or `budgetSeconds`
   * passed. Resolves to how many were completed and the seconds taken.
   */
  async finish(
    options: { parallel?: number; budgetSeconds?: number; max?: number },
  ): Promise<{ completed: number; seconds: number }> {
    const parallel = options.parallel ?? 2;
    const deadline = options.budgetSeconds === undefined
      ? "infinity"
      : new Date(Date.now() + options.budgetSeconds * 1000).toISOString();
    const perSession = Math.ceil((options.max ?? 1e12) / parallel);
    const t0 = performance.now();
    const done = await Promise.all(Array.from({ length: parallel }, (_, i) =>
      this.value(`do $$
        declare v_ids uuid[]; v_leases uuid[]; v_done bigint := 0;
        begin
          while v_done < ${perSession} and clock_timestamp() < '${deadline}'::timestamptz loop
            select array_agg(c.id), array_agg(c.lease_id) into v_ids, v_leases
              from jobengine.claim_jobs('bench-fill-${i}', null, least(1000, ${perSession} - v_done)::int, 3600) c;
            exit when v_ids is null;
            perform count(*) from jobengine.complete_jobs(v_ids, v_leases,
              array_fill(null::jsonb, array[cardinality(v_ids)]));
            commit;
            v_done := v_done + cardinality(v_ids);
          end loop;
          raise notice 'done %', v_done;
        end $$`)));
    void done;
    const seconds = (performance.now() - t0) / 1000;
    const completed = Number(
      await this.value(
        `select count(*) from jobengine.jobs where status = 'completed'`,
      ),
    );
    return { completed, seconds };
  }

  /** Whether any job is still pending (and eligible), scheduled or running. */
  async unfinished(db: Database): Promise<boolean> {
    const rows = await db.query<{ left: boolean }>(
      `select exists (select from jobengine.jobs where status = 'scheduled')
           or exists (select from jobengine.jobs where status = 'running')
           or exists (select from jobengine.jobs where status = 'pending' and pending_dependencies = 0)
           as left`,
    );
    return rows[0]?.left === true;
  }

  /** VACUUM ANALYZE the jobs tables (after a bulk fill, as autovacuum would eventually). */
  async vacuum(): Promise<void> {
    await this.psql(
      `vacuum analyze jobengine.jobs, jobengine.job_history, jobengine.timeline_events`,
    );
  }

  /** Closes everything and drops the database. */
  async drop(): Promise<void> {
    await this.closeAll();
    await this.psql(`drop database if exists "${this.name}" with (force)`, "postgres");
  }
}

/** The plans of one `claim_jobs_for` call, nested statements (triggers) included. */
export interface ClaimPlans {
  /** The plan of the claim statement itself (the `FOR UPDATE SKIP LOCKED` CTE). */
  claim: string;
  /** Whether the claim reads the ready set through an index (`jobs_claim_idx` or another). */
  indexPath: boolean;
  /** The index the claim scans, if any. */
  index: string | null;
  /** Every statement's plan, as auto_explain printed it. */
  all: string[];
  /** The claim's limit. */
  limit: number;
}

/**
 * Runs one `claim_jobs_for(limit)` under auto_explain (ANALYZE, BUFFERS, nested statements) in a
 * transaction that is rolled back, and returns the plans: the real statements, as the function
 * runs them, not a copy of their text.
 */
export async function explainClaim(bdb: BenchDatabase, limit: number): Promise<ClaimPlans> {
  // a first claim (rolled back) compiles the plpgsql functions and caches their plans, so the
  // explained call is a warm one, as in a running worker
  const sql = `
    begin;
    select count(*) from jobengine.claim_jobs_for('bench-explain', array['${NOOP}'], ${limit}, 60, null);
    rollback;
    load 'auto_explain';
    set auto_explain.log_min_duration = 0;
    set auto_explain.log_analyze = on;
    set auto_explain.log_buffers = on;
    set auto_explain.log_timing = on;
    set auto_explain.log_nested_statements = on;
    set auto_explain.log_level = notice;
    set client_min_messages = notice;
    begin;
    select count(*) from jobengine.claim_jobs_for('bench-explain', array['${NOOP}'], ${limit}, 60, null);
    rollback;`;
  const out = await new Deno.Command(`${bdb.cluster.binDir}/psql`, {
    args: ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", bdb.url, "-c", sql],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`EXPLAIN of the claim failed: ${stderr}`);
  const all = stderr.split(/^NOTICE:\s+/m).map((s) => s.trimEnd()).filter((s) =>
    s.includes("plan:")
  );
  const claim = all.find((p) => /skip locked/i.test(p) && /Update on jobs/.test(p)) ??
    all.find((p) => /skip locked/i.test(p)) ?? "";
  const index = /Index (?:Only )?Scan(?: Backward)? using (\w+) on jobs/.exec(claim)?.[1] ?? null;
  return { claim, indexPath: index !== null, index, all, limit };
}
