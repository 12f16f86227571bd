/**
 * The test command (`deno task test`, also run by `.ci/run`).
 *
 * Steps: prerequisites, static checks, a throwaway PostgreSQL cluster with a migrated template
 * database, pgTAP suites (`test/sql/`, via pg_prove), `deno test` (`test/`, without
 * `test/chaos/`), then the chaos suite. The last line printed is always `N passed, N failed`.
 *
 * Flags: `--only=static,pgtap,deno,chaos` runs a subset; `--keep` leaves the cluster running.
 * With `DATABASE_URL` set, that server (a role with CREATEDB) is used instead of a new cluster.
 *
 * @module
 */

import postgres from "postgres";
import { type Cluster, findPgBin, startCluster } from "./pg_cluster.ts";

const STEPS = ["static", "pgtap", "deno", "chaos"] as const;
type Step = typeof STEPS[number];

const TEMPLATE_DB = "jobengine_template";
const PGTAP_DB = "jobengine_pgtap";
const DENO_TEST_FILE = /(^|[._])test\.(ts|tsx|mts|js|jsx|mjs)$/;
// deno-lint-ignore no-control-regex -- strips colour codes from child output
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;

interface Tally {
  passed: number;
  failed: number;
  /** Whether a step that runs tests was selected. */
  expectTests: boolean;
}

interface RunResult {
  code: number;
  output: string;
}

/** Parses pg_prove's output into passed and failed pgTAP assertions. */
export function parsePgProve(output: string, code: number): { passed: number; failed: number } {
  const text = output.replace(ANSI, "");
  const totals = [...text.matchAll(/^Files=(\d+), Tests=(\d+)/gm)].at(-1);
  if (!totals) return { passed: 0, failed: code === 0 ? 0 : 1 };
  const total = Number(totals[2]);
  let failedAssertions = 0;
  let brokenFiles = 0;
  const report = text.split(/^Test Summary Report\s*$/m)[1] ?? "";
  for (const block of report.split(/\n(?=\S)/)) {
    const file = /\(Wstat: (\d+).*?Tests: (\d+) Failed: (\d+)\)/.exec(block);
    if (!file) continue;
    const failed = Number(file[3]);
    failedAssertions += failed;
    // A file that died, or ran fewer tests than planned, fails even with no failed assertion.
    if (failed === 0 && (file[1] !== "0" || /Parse errors:/.test(block))) brokenFiles += 1;
  }
  let failed = failedAssertions + brokenFiles;
  if (failed === 0 && (code !== 0 || /^Result: FAIL/m.test(text))) failed = 1;
  return { passed: Math.max(0, total - failedAssertions), failed };
}

/** Parses the summary line of `deno test` into passed and failed tests. */
export function parseDenoTest(output: string, code: number): { passed: number; failed: number } {
  const text = output.replace(ANSI, "");
  const summary = [...text.matchAll(/^(?:ok|FAILED) \| (\d+) passed.*?\| (\d+) failed/gm)].at(-1);
  const passed = summary ? Number(summary[1]) : 0;
  let failed = summary ? Number(summary[2]) : 0;
  if (failed === 0 && code !== 0) failed = 1;
  return { passed, failed };
}

async function main(): Promise<number> {
  const options = parseArgs(Deno.args);
  if (options === null) return 2;
  const { only, keep } = options;
  const dbSteps = (["pgtap", "deno", "chaos"] as const).filter((step) => only.has(step));
  const tally: Tally = { passed: 0, failed: 0, expectTests: dbSteps.length > 0 };
  const databaseUrl = Deno.env.get("DATABASE_URL");
  let cluster: Cluster | undefined;
  try {
    if (dbSteps.length > 0) await prerequisites(only, databaseUrl);
    if (only.has("static")) await staticChecks(tally);
    if (dbSteps.length > 0) {
      header("Database");
      if (!databaseUrl) {
        const started = performance.now();
        cluster = await startCluster({ fast: true });
        const ms = Math.round(performance.now() - started);
        console.log(`Started a throwaway cluster at ${cluster.url} in ${ms} ms`);
      } else {
        console.log(`Using DATABASE_URL (${redact(databaseUrl)})`);
      }
      const adminUrl = cluster?.url ?? databaseUrl!;
      if (await prepareTemplate(adminUrl, tally)) {
        const env: Record<string, string> = {
          DATABASE_URL: adminUrl,
          JOBENGINE_TEST_TEMPLATE: TEMPLATE_DB,
        };
        const binDir = cluster?.binDir ?? tryPgBin();
        if (binDir) env.JOBENGINE_PG_BIN = binDir;
        if (only.has("pgtap")) await pgtap(adminUrl, cluster?.binDir, tally);
        if (only.has("deno")) await denoTests("deno test", "test/", ["--parallel"], env, tally);
        if (only.has("chaos")) await denoTests("Chaos tests", "test/chaos/", [], env, tally);
      }
    }
  } catch (error) {
    console.error(`\nTest run aborted: ${error instanceof Error ? error.message : String(error)}`);
    tally.failed += 1;
  } finally {
    if (cluster && keep) {
      cluster.detach();
      header("Cluster kept");
      console.log(`DATABASE_URL=${cluster.url}`);
      console.log(`Data directory: ${cluster.dataDir}`);
      const runAs = Deno.uid() === 0 ? `runuser -u ${cluster.osUser} -- ` : "";
      const root = cluster.dataDir.replace(/\/data$/, "");
      console.log(
        `Stop it with: ${runAs}${cluster.binDir}/pg_ctl -D ${cluster.dataDir} stop && rm -rf ${root}`,
      );
    } else if (cluster) {
      await cluster.stop();
    }
  }
  const noTests = tally.expectTests && tally.passed + tally.failed === 0;
  if (noTests) console.log("\nNo tests ran: a test run with zero tests counts as a failure.");
  console.log(`${tally.passed} passed, ${tally.failed} failed`);
  return tally.failed > 0 || noTests ? 1 : 0;
}

function parseArgs(args: string[]): { only: Set<Step>; keep: boolean } | null {
  let only = new Set<Step>(STEPS);
  let keep = false;
  for (const arg of args) {
    if (arg === "--keep") {
      keep = true;
    } else if (arg.startsWith("--only=")) {
      const names = arg.slice("--only=".length).split(",").filter(Boolean);
      const unknown = names.filter((name) => !(STEPS as readonly string[]).includes(name));
      if (names.length === 0 || unknown.length > 0) {
        console.error(`Unknown step in ${arg}: expected a list of ${STEPS.join(", ")}`);
        return null;
      }
      only = new Set(names as Step[]);
    } else {
      console.error(
        `Unknown argument "${arg}": usage: deno task test [--only=${STEPS.join(",")}] [--keep]`,
      );
      return null;
    }
  }
  return { only, keep };
}

async function prerequisites(only: Set<Step>, databaseUrl: string | undefined): Promise<void> {
  header("Prerequisites");
  const first = await findMissing(only, databaseUrl);
  if (first.missing.length === 0) {
    console.log(first.found.length > 0 ? `Found: ${first.found.join(", ")}.` : "Nothing needed.");
    return;
  }
  const packages = [...new Set(first.packages)];
  const install = `apt-get install -y ${packages.join(" ")}`;
  console.log(`Missing: ${first.missing.join(", ")}`);
  if (Deno.uid() !== 0) {
    throw new Error(
      `Missing prerequisites: run as root: DEBIAN_FRONTEND=noninteractive apt-get update && ` +
        `DEBIAN_FRONTEND=noninteractive ${install}`,
    );
  }
  if (packages.some((name) => /^postgresql-\d+$/.test(name))) {
    // Installing the server must not create and start a default cluster on port 5432.
    await Deno.mkdir("/etc/postgresql-common/createcluster.d", { recursive: true });
    await Deno.writeTextFile(
      "/etc/postgresql-common/createcluster.d/jobengine.conf",
      "create_main_cluster = false\n",
    );
  }
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  for (const args of [["update"], ["install", "-y", ...packages]]) {
    console.log(`$ apt-get ${args.join(" ")}`);
    const { code } = await run("apt-get", args, { env });
    if (code !== 0) throw new Error(`apt-get ${args[0]} failed with exit code ${code}`);
  }
  const second = await findMissing(only, databaseUrl);
  if (second.missing.length > 0) {
    throw new Error(`Still missing after ${install}: ${second.missing.join(", ")}`);
  }
}

/** Lists what the selected steps need and is missing, with the Debian packages providing it. */
async function findMissing(
  only: Set<Step>,
  databaseUrl: string | undefined,
): Promise<{ found: string[]; missing: string[]; packages: string[] }> {
  const found: string[] = [];
  const missing: string[] = [];
  const packages: string[] = [];
  let major = "15";
  if (!databaseUrl) {
    const binDir = tryPgBin();
    if (binDir) {
      found.push(`PostgreSQL server (${binDir})`);
      major = /\/postgresql\/(\d+)\//.exec(binDir)?.[1] ?? major;
      if (only.has("pgtap")) {
        const control = `${await shareDir(binDir, major)}/extension/pgtap.control`;
        if (await exists(control)) {
          found.push("pgTAP extension");
        } else {
          missing.push(`pgTAP extension (${control})`);
          packages.push(`postgresql-${major}-pgtap`);
        }
      }
    } else {
      missing.push("PostgreSQL server binaries (initdb)");
      packages.push(`postgresql-${major}`);
      if (only.has("pgtap")) packages.push(`postgresql-${major}-pgtap`);
    }
  }
  if (only.has("pgtap")) {
    if (await onPath("pg_prove")) {
      found.push("pg_prove");
    } else {
      missing.push("pg_prove");
      packages.push("libtap-parser-sourcehandler-pgtap-perl");
    }
    if (databaseUrl && !(await onPath("psql"))) {
      missing.push("psql");
      packages.push("postgresql-client");
    }
  }
  return { found, missing, packages };
}

async function staticChecks(tally: Tally): Promise<void> {
  const deno = Deno.execPath();
  const dirs: string[] = [];
  for (const dir of ["src", "scripts", "test", "bench"]) {
    if (await containsFile(dir, /\.(ts|tsx|mts)$/)) dirs.push(`${dir}/`);
  }
  const checks: { title: string; args: string[]; skip?: string }[] = [
    { title: "deno fmt --check", args: ["fmt", "--check"] },
    { title: "deno lint", args: ["lint"] },
    {
      title: "deno task gen --check",
      args: ["task", "gen", "--check"],
      skip: (await exists("scripts/gen.ts")) ? undefined : "scripts/gen.ts does not exist yet",
    },
    {
      title: `deno check ${dirs.join(" ")}`,
      args: ["check", ...dirs],
      skip: dirs.length > 0 ? undefined : "no TypeScript files",
    },
  ];
  for (const check of checks) {
    header(check.title);
    if (check.skip) {
      console.log(`Skipped: ${check.skip}.`);
      continue;
    }
    const { code } = await run(deno, check.args);
    if (code !== 0) {
      console.log(`${check.title}: FAILED (exit code ${code})`);
      tally.failed += 1;
    }
  }
}

/** Creates and migrates the template database; false when migrations failed. */
async function prepareTemplate(adminUrl: string, tally: Tally): Promise<boolean> {
  await withSql(adminUrl, async (sql) => {
    await dropDatabase(sql, TEMPLATE_DB);
    await sql.unsafe(`create database ${TEMPLATE_DB}`);
  });
  const templateUrl = withDatabase(adminUrl, TEMPLATE_DB);
  if (await exists("scripts/migrate.ts")) {
    header("Migrate template database");
    const { code } = await run(Deno.execPath(), ["run", "-A", "scripts/migrate.ts"], {
      env: { DATABASE_URL: templateUrl },
    });
    if (code !== 0) {
      console.log(`Migrations failed (exit code ${code}): skipping the database tests.`);
      tally.failed += 1;
      return false;
    }
  } else {
    console.log("Note: scripts/migrate.ts does not exist yet; the template database stays empty.");
  }
  // Nothing may connect to the template: tests copy it, they never change it.
  await withSql(
    adminUrl,
    (sql) =>
      sql.unsafe(`alter database ${TEMPLATE_DB} with is_template true allow_connections false`),
  );
  return true;
}

async function pgtap(adminUrl: string, binDir: string | undefined, tally: Tally): Promise<void> {
  header("pgTAP (pg_prove test/sql)");
  if (!(await containsFile("test/sql", /\.sql$/))) {
    console.log("No pgTAP files under test/sql: 0 assertions.");
    return;
  }
  await withSql(adminUrl, async (sql) => {
    await dropDatabase(sql, PGTAP_DB);
    await sql.unsafe(`create database ${PGTAP_DB} template ${TEMPLATE_DB}`);
  });
  const url = withDatabase(adminUrl, PGTAP_DB);
  await withSql(url, (sql) => sql.unsafe("create extension if not exists pgtap"));
  const args = ["--dbname", url, "--ext", ".sql", "--recurse", "--failures", "--nocolor"];
  if (binDir) args.push("--psql-bin", `${binDir}/psql`);
  const { code, output } = await run("pg_prove", [...args, "test/sql"]);
  const result = parsePgProve(output, code);
  console.log(`pgTAP: ${result.passed} passed, ${result.failed} failed`);
  tally.passed += result.passed;
  tally.failed += result.failed;
}

async function denoTests(
  title: string,
  dir: string,
  flags: string[],
  env: Record<string, string>,
  tally: Tally,
): Promise<void> {
  const isChaos = dir === "test/chaos/";
  header(`${title} (${dir}${isChaos ? "" : ", without test/chaos/"})`);
  const ignore = isChaos ? undefined : /^test\/chaos\//;
  if (!(await containsFile(dir, DENO_TEST_FILE, ignore))) {
    console.log(`No test files under ${dir}: 0 tests.`);
    return;
  }
  const args = ["test", "-A", ...flags];
  if (!isChaos) args.push("--ignore=test/chaos/");
  const { code, output } = await run(Deno.execPath(), [...args, dir], { env });
  const result = parseDenoTest(output, code);
  console.log(`${title}: ${result.passed} passed, ${result.failed} failed`);
  tally.passed += result.passed;
  tally.failed += result.failed;
}

const children = new Set<Deno.ChildProcess>();

/** Runs a command, streaming its output live while capturing it for parsing. */
async function run(
  cmd: string,
  args: string[],
  options: { env?: Record<string, string> } = {},
): Promise<RunResult> {
  const child = new Deno.Command(cmd, {
    args,
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  children.add(child);
  try {
    const [stdout, stderr, status] = await Promise.all([
      tee(child.stdout, Deno.stdout),
      tee(child.stderr, Deno.stderr),
      child.status,
    ]);
    return { code: status.code, output: `${stdout}\n${stderr}` };
  } finally {
    children.delete(child);
  }
}

/** On exit (including the exit after SIGINT / SIGTERM), end the children still running. */
function killChildren(): void {
  for (const child of children) {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
  }
}

async function tee(
  stream: ReadableStream<Uint8Array>,
  sink: { write(p: Uint8Array): Promise<number> },
): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of stream) {
    for (let written = 0; written < chunk.length;) {
      written += await sink.write(chunk.subarray(written));
    }
    text += decoder.decode(chunk, { stream: true });
  }
  return text + decoder.decode();
}

async function withSql<T>(url: string, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    return await fn(sql);
  } finally {
    await sql.end();
  }
}

async function dropDatabase(sql: postgres.Sql, name: string): Promise<void> {
  const [row] = await sql`select datistemplate from pg_database where datname = ${name}`;
  if (!row) return;
  if (row.datistemplate) await sql.unsafe(`alter database ${name} with is_template false`);
  await sql.unsafe(`drop database ${name} with (force)`);
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${encodeURIComponent(database)}`;
  return parsed.toString();
}

function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "unparsable URL";
  }
}

function tryPgBin(): string | undefined {
  try {
    return findPgBin();
  } catch {
    return undefined;
  }
}

async function shareDir(binDir: string, major: string): Promise<string> {
  try {
    const out = await new Deno.Command(`${binDir}/pg_config`, { args: ["--sharedir"] }).output();
    const dir = new TextDecoder().decode(out.stdout).trim();
    if (out.success && dir) return dir;
  } catch {
    // No pg_config next to the server: fall back to Debian's layout.
  }
  return `/usr/share/postgresql/${major}`;
}

async function onPath(name: string): Promise<boolean> {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir && (await exists(`${dir}/${name}`))) return true;
  }
  return false;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function containsFile(dir: string, pattern: RegExp, ignore?: RegExp): Promise<boolean> {
  let entries: AsyncIterable<Deno.DirEntry>;
  try {
    entries = Deno.readDir(dir);
    for await (const entry of entries) {
      const path = `${dir.replace(/\/$/, "")}/${entry.name}`;
      if (ignore?.test(`${path}/`)) continue;
      if (entry.isDirectory && (await containsFile(path, pattern, ignore))) return true;
      if (entry.isFile && pattern.test(entry.name)) return true;
    }
  } catch {
    // Missing directory: no files.
  }
  return false;
}

function header(title: string): void {
  console.log(`\n== ${title}`);
}

if (import.meta.main) {
  globalThis.addEventListener("unload", killChildren);
  Deno.exit(await main());
}
