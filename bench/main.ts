/**
 * `deno task bench`: starts a throwaway PostgreSQL cluster with default durability, runs the
 * scenarios in order, prints a table and writes `bench/results/latest.json`.
 *
 * Flags: `--quick` (tiny sizes, a smoke run under a minute), `--only=name,...` (some scenarios;
 * `baseline` runs too unless `--no-baseline`, since the ratios need it), `--profile`
 * (pg_stat_statements with nested statements and function timings, top statements per
 * scenario in the JSON; slower), `--out=path` (where to write the JSON).
 *
 * @module
 */
import { startCluster } from "../scripts/pg_cluster.ts";
import { backlog } from "./backlog.ts";
import { baseline } from "./baseline.ts";
import { create } from "./create.ts";
import { BenchDatabases } from "./_db.ts";
import type { WorkerSetup } from "./_engine.ts";
import {
  type BenchContext,
  formatNumber,
  FULL_SIZES,
  judge,
  QUICK_SIZES,
  type ResultRow,
  round,
  type Scenario,
} from "./_harness.ts";
import { http } from "./http.ts";
import { latency } from "./latency.ts";
import { lifecycle } from "./lifecycle.ts";
import { processing } from "./processing.ts";

/** Every scenario, in the order they run (backlog last: it takes whatever time is left). */
export const SCENARIOS: readonly Scenario[] = [
  baseline,
  create,
  processing,
  lifecycle,
  latency,
  http,
  backlog,
];

/** The server settings of the run: durability as shipped, more memory and connections. */
export const SETTINGS: Record<string, string | number> = {
  shared_buffers: "1GB",
  max_connections: 200,
  max_wal_size: "8GB",
};

/** Settings reported in the JSON (read back from the server). */
const REPORTED_SETTINGS = [
  "server_version",
  "fsync",
  "synchronous_commit",
  "full_page_writes",
  "wal_sync_method",
  "shared_buffers",
  "max_connections",
  "max_wal_size",
  "checkpoint_timeout",
  "wal_buffers",
  "work_mem",
  "effective_cache_size",
  "autovacuum",
  "shared_preload_libraries",
];

/**
 * The worker deployment of the processing, lifecycle and backlog scenarios: 8 slots in all, a
 * local queue of 1,000 (one claim_jobs call's most), three connections (two claims and the
 * completions in flight).
 */
export const DEFAULT_WORKERS: WorkerSetup = {
  instances: 1,
  concurrency: 8,
  poolSize: 3,
  prefetch: 1000,
};

/** The run's seconds budget: the whole command must finish within 6 minutes (quick: 1). */
const BUDGET_SECONDS = { full: 330, quick: 50 };

interface Args {
  workers: WorkerSetup;
  quick: boolean;
  only: string[] | null;
  profile: boolean;
  out: string | null;
  baseline: boolean;
}

function parseArgs(args: readonly string[]): Args {
  const parsed: Args = {
    quick: false,
    only: null,
    profile: false,
    out: null,
    baseline: true,
    workers: { ...DEFAULT_WORKERS },
  };
  for (const arg of args) {
    if (arg === "--quick") parsed.quick = true;
    else if (arg === "--profile") parsed.profile = true;
    else if (arg === "--no-baseline") parsed.baseline = false;
    else if (arg.startsWith("--only=")) {
      parsed.only = arg.slice(7).split(",").map((s) => s.trim()).filter(Boolean);
    } else if (arg.startsWith("--out=")) parsed.out = arg.slice(6);
    else if (arg.startsWith("--workers=")) {
      const match = /^(\d+)x(\d+)(?:,pool=(\d+))?(?:,prefetch=(\d+))?$/.exec(arg.slice(10));
      if (!match) {
        throw new Error(
          `Invalid ${arg}: expected --workers=INSTANCESxCONCURRENCY[,pool=N][,prefetch=N]`,
        );
      }
      parsed.workers = {
        instances: Number(match[1]),
        concurrency: Number(match[2]),
        poolSize: match[3] ? Number(match[3]) : DEFAULT_WORKERS.poolSize,
        prefetch: match[4] ? Number(match[4]) : DEFAULT_WORKERS.prefetch,
      };
    } else if (arg === "--help" || arg === "-h") {
      console.log(
        "Usage: deno task bench [--quick] [--only=name,...] [--no-baseline] [--profile] [--out=path]\n" +
          "                       [--workers=INSTANCESxCONCURRENCY[,pool=N][,prefetch=N]]\n" +
          `Scenarios: ${SCENARIOS.map((s) => s.name).join(", ")}`,
      );
      Deno.exit(0);
    } else {
      throw new Error(`Unknown argument "${arg}": see --help`);
    }
  }
  const known = new Set(SCENARIOS.map((s) => s.name));
  for (const name of parsed.only ?? []) {
    if (!known.has(name)) {
      throw new Error(`Unknown scenario "${name}": expected one of ${[...known].join(", ")}`);
    }
  }
  return parsed;
}

async function git(args: string[]): Promise<string> {
  try {
    const out = await new Deno.Command("git", { args, stdout: "piped", stderr: "null" }).output();
    return new TextDecoder().decode(out.stdout).trim();
  } catch {
    return "";
  }
}

function pad(text: string, width: number, right = false): string {
  return right ? text.padStart(width) : text.padEnd(width);
}

/** Renders the rows as a fixed-width table. */
export function renderTable(rows: readonly ResultRow[]): string {
  const header = [
    "scenario",
    "measurement",
    "value",
    "unit",
    "target",
    "pass",
    "vs DB limit",
    "commits/job",
    "fsyncs/job",
    "WAL B/job",
    "note",
  ];
  const lines = rows.map((row) => [
    row.scenario,
    row.name,
    row.value === null ? "-" : formatNumber(row.value),
    row.unit,
    row.target ? `${row.target.op} ${formatNumber(row.target.value)}` : "",
    row.pass === undefined ? "" : row.pass === null ? "n/a" : row.pass ? "PASS" : "FAIL",
    row.ratio ? `${(row.ratio.value * 100).toFixed(0)}%` : "",
    row.commitsPerJob === undefined ? "" : row.commitsPerJob.toFixed(2),
    row.walSyncsPerJob === undefined ? "" : row.walSyncsPerJob.toFixed(3),
    row.walBytesPerJob === undefined ? "" : formatNumber(row.walBytesPerJob),
    row.notRun ?? row.note ?? "",
  ]);
  const numeric = new Set([2, 4, 6, 7, 8, 9]);
  const widths = header.map((h, i) =>
    i === header.length - 1 ? 0 : Math.max(h.length, ...lines.map((l) => l[i]!.length))
  );
  const fmt = (cells: string[]) =>
    cells.map((c, i) => i === cells.length - 1 ? c : pad(c, widths[i]!, numeric.has(i))).join(" | ")
      .trimEnd();
  return [fmt(header), widths.map((w) => "-".repeat(Math.max(w, 4))).join("-|-"), ...lines.map(fmt)]
    .join("\n");
}

async function main(): Promise<void> {
  const args = parseArgs(Deno.args);
  const started = performance.now();
  const startedAt = new Date();
  const sizes = args.quick ? QUICK_SIZES : FULL_SIZES;
  const selected = SCENARIOS.filter((s) =>
    args.only === null || args.only.includes(s.name) || (s === baseline && args.baseline)
  );
  const log = (message: string) => {
    const t = ((performance.now() - started) / 1000).toFixed(1).padStart(6);
    console.error(`[bench ${t}s] ${message}`);
  };

  const settings: Record<string, string | number> = { ...SETTINGS };
  if (args.profile) {
    Object.assign(settings, {
      shared_preload_libraries: "pg_stat_statements",
      "pg_stat_statements.track": "all",
    });
  }
  log(`starting PostgreSQL (${Object.entries(settings).map(([k, v]) => `${k}=${v}`).join(", ")})`);
  const cluster = await startCluster({ settings });
  const rows: ResultRow[] = [];
  const profiles: Record<string, unknown> = {};
  const timings: Record<string, number> = {};
  const load: Record<string, { before: number[]; after: number[] }> = {};
  let serverSettings: Record<string, string> = {};
  try {
    const databases = new BenchDatabases(cluster);
    await databases.prepare();
    serverSettings = Object.fromEntries(
      (await cluster.psql([
        "-At",
        "-F",
        "\t",
        "-c",
        `select name, setting || coalesce(' ' || unit, '') from pg_settings
          where name in (${REPORTED_SETTINGS.map((s) => `'${s}'`).join(", ")}) order by name`,
      ])).trim().split("\n").map((line) => line.split("\t") as [string, string]),
    );
    if (args.profile) {
      await cluster.psql(["-c", "create extension if not exists pg_stat_statements"]);
    }
    const ctx: BenchContext = {
      cluster,
      quick: args.quick,
      profile: args.profile,
      sizes,
      databases,
      baseline: { pgbenchTps: null, queueJobsPerSecond: null },
      claimBatch: 500,
      workerSetup: args.workers,
      deadline: started + (args.quick ? BUDGET_SECONDS.quick : BUDGET_SECONDS.full) * 1000,
      log,
    };
    for (const scenario of selected) {
      const t0 = performance.now();
      const loadBefore = Deno.loadavg().map((x) => round(x, 2));
      log(`== ${scenario.name}: ${scenario.description} (load average ${loadBefore.join(" ")})`);
      if (args.profile) await cluster.psql(["-c", "select pg_stat_statements_reset()"]);
      try {
        const result = await scenario.run(ctx);
        rows.push(...result.map(judge));
      } catch (error) {
        const message = error instanceof Error ? error.message.split("\n")[0]! : String(error);
        log(`${scenario.name} failed: ${error instanceof Error ? error.stack : error}`);
        rows.push({
          scenario: scenario.name,
          name: scenario.description,
          value: null,
          unit: "",
          notRun: `not run: failed: ${message}`,
        });
      }
      timings[scenario.name] = round((performance.now() - t0) / 1000, 1);
      load[scenario.name] = { before: loadBefore, after: Deno.loadavg().map((x) => round(x, 2)) };
      if (args.profile) profiles[scenario.name] = await topStatements(cluster);
      log(`== ${scenario.name} took ${timings[scenario.name]} s`);
    }
  } finally {
    await cluster.stop();
  }

  const totalSeconds = (performance.now() - started) / 1000;
  const commit = await git(["rev-parse", "HEAD"]);
  const dirty = (await git(["status", "--porcelain", "--", "src", "sql"])) !== "";
  const report = {
    schema: 1,
    date: startedAt.toISOString(),
    mode: args.quick ? "quick" : "full",
    only: args.only,
    profile: args.profile,
    totalSeconds: round(totalSeconds, 1),
    scenarioSeconds: timings,
    loadAverage: load,
    workers: args.workers,
    git: { commit, dirtySrcOrSql: dirty },
    machine: {
      cpus: navigator.hardwareConcurrency,
      memoryGiB: round(Deno.systemMemoryInfo().total / 2 ** 30, 1),
      os: `${Deno.build.os} ${Deno.osRelease()}`,
      deno: Deno.version.deno,
    },
    postgres: { requested: settings, server: serverSettings },
    sizes,
    rows: rows.map((row) => ({
      ...row,
      value: row.value === null ? null : round(row.value, 3),
      ratio: row.ratio ? { ...row.ratio, value: round(row.ratio.value, 4) } : undefined,
      commitsPerJob: row.commitsPerJob === undefined ? undefined : round(row.commitsPerJob, 4),
      walBytesPerJob: row.walBytesPerJob === undefined ? undefined : round(row.walBytesPerJob, 0),
      seconds: row.seconds === undefined ? undefined : round(row.seconds, 3),
    })),
    profiles: args.profile ? profiles : undefined,
  };

  console.log("");
  console.log(
    `jobengine benchmarks, ${report.mode} run, ${report.date} — PostgreSQL ${
      serverSettings.server_version ?? "?"
    }` +
      ` (fsync=${serverSettings.fsync}, synchronous_commit=${serverSettings.synchronous_commit},` +
      ` shared_buffers=${serverSettings.shared_buffers}), ${report.machine.cpus} cores, Deno ${report.machine.deno}`,
  );
  console.log(renderTable(rows));
  const busy = Object.entries(load).filter(([, l]) => l.before[0]! > 1.5 || l.after[0]! > 3);
  if (busy.length > 0) {
    console.log(
      `warning: the machine was busy with other work during ${busy.map(([n]) => n).join(", ")} ` +
        `(1-minute load average above what this run alone causes): figures are low and noisy`,
    );
  }
  console.log(`total ${totalSeconds.toFixed(1)} s`);

  const dir = new URL("./results/", import.meta.url);
  await Deno.mkdir(dir, { recursive: true });
  const text = JSON.stringify(report, null, 2) + "\n";
  const complete = !args.quick && args.only === null && !args.profile;
  const name = args.out ??
    new URL(complete ? "latest.json" : `latest-${args.quick ? "quick" : "partial"}.json`, dir)
      .pathname;
  await Deno.writeTextFile(name, text);
  if (complete && args.out === null) {
    await Deno.writeTextFile(new URL(`${report.date.slice(0, 10)}.json`, dir), text);
  }
  console.log(`wrote ${name}`);
}

async function topStatements(cluster: { psql(args: string[]): Promise<string> }): Promise<unknown> {
  const statements = await cluster.psql([
    "-At",
    "-c",
    `select coalesce(json_agg(t), '[]') from (
       select round(total_exec_time::numeric, 1) as total_ms, calls, rows,
              round((total_exec_time / greatest(calls, 1))::numeric, 4) as mean_ms,
              shared_blks_hit, shared_blks_read, shared_blks_dirtied, wal_bytes::bigint,
              left(regexp_replace(query, '\\s+', ' ', 'g'), 300) as query
         from pg_stat_statements where toplevel is not null
        order by total_exec_time desc limit 25) t`,
  ]);
  return JSON.parse(statements);
}

if (import.meta.main) {
  await main();
}
