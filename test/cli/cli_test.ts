/**
 * End-to-end tests of the CLI: each command runs as a subprocess (`deno run src/runtime/cli.ts`)
 * against a fresh PostgreSQL database, and is checked by its output, its exit code and the
 * database.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Job } from "../../src/job/job.ts";
import { adminSql } from "../_db.ts";
import { withStore } from "../_store.ts";

const MAIN = new URL("../../src/runtime/cli.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI against `url` and waits for it. */
async function cli(
  url: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<Run> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, MAIN, "--database-url", url, ...args],
    cwd: options.cwd,
    env: { NO_COLOR: "1", ...options.env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

/** Runs the CLI with `--json`, expects exit code 0, and parses standard output. */
async function cliJson<T = Record<string, unknown>>(url: string, args: string[]): Promise<T> {
  const run = await cli(url, ["--json", ...args]);
  assert.equal(run.code, 0, `jobengine ${args.join(" ")} failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as T;
}

/** Directories made by {@linkcode tempFile}, removed when the module's tests are done. */
const tempDirs: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const dir of tempDirs) Deno.removeSync(dir, { recursive: true });
});

async function tempFile(name: string, text: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "jobengine-cli-" });
  tempDirs.push(dir);
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, text);
  return path;
}

Deno.test("jobengine --help lists the commands and the exit codes", async () => {
  const run = await cli("postgres://unused@127.0.0.1:1/x", ["--help"]);
  assert.equal(run.code, 0);
  for (const command of ["submit", "workflow", "ls", "show", "watch", "cancel", "worker"]) {
    assert.match(run.stdout, new RegExp(`^  ${command} `, "m"));
  }
  assert.match(run.stdout, /Exit codes:\n {2}0 {2}ok\n {2}1 {2}usage error/);
  assert.match(run.stdout, / {2}4 {2}database unavailable\n {2}5 {2}any other error/);
  const sub = await cli("postgres://unused@127.0.0.1:1/x", ["cancel", "--help"]);
  assert.equal(sub.code, 0);
  assert.match(sub.stdout, /^Usage: jobengine cancel <id> \[--reason r\]/);
});

Deno.test("jobengine submit, ls and show: human and --json output", async () => {
  await withStore(async ({ url, store }) => {
    const submitted = await cli(url, [
      "submit",
      "email.send",
      '{"to":"ops@example.org"}',
      "--priority",
      "5",
      "--max-retries",
      "1",
      "--idempotency-key",
      "welcome-1",
    ]);
    assert.equal(submitted.code, 0, submitted.stderr);
    const id = /^Submitted ([0-9a-f-]{36}) {2}email\.send {2}pending$/m.exec(submitted.stdout)?.[1];
    assert.ok(id, submitted.stdout);
    const job = await store.get(id);
    assert.deepEqual(job.payload, { to: "ops@example.org" });
    assert.equal(job.priority, 5);
    assert.equal(job.maxRetries, 1);

    // an idempotent replay returns the same job
    const replay = await cliJson<Job>(url, [
      "submit",
      "email.send",
      '{"to":"ops@example.org"}',
      "--priority",
      "5",
      "--max-retries",
      "1",
      "--idempotency-key",
      "welcome-1",
    ]);
    assert.equal(replay.id, id);

    const dep = await cliJson<Job>(url, [
      "submit",
      "report",
      "--depends-on",
      id,
      "--tenant",
      "default",
    ]);
    assert.deepEqual(dep.dependsOn, [id]);
    assert.equal(dep.status, "pending");
    const later = await cliJson<Job>(url, [
      "submit",
      "later",
      "--not-before",
      "2030-01-01T00:00:00Z",
      "--requires-network",
    ]);
    assert.equal(later.notBefore, "2030-01-01T00:00:00.000Z");
    assert.equal(later.requiresNetwork, true);

    const table = await cli(url, ["ls"]);
    assert.equal(table.code, 0);
    const lines = table.stdout.trimEnd().split("\n");
    assert.match(lines[0]!, /^ID\s+TYPE\s+STATUS\s+ATTEMPT\s+PRIORITY\s+CREATED\s+UPDATED$/);
    assert.equal(lines.length, 4);
    // aligned: every row starts its TYPE column where the header does
    const typeAt = lines[0]!.indexOf("TYPE");
    for (const line of lines.slice(1)) {
      assert.match(line.slice(typeAt), /^(email\.send|report|later) /);
    }

    const page = await cliJson<{ items: Job[]; nextCursor: string | null }>(url, [
      "ls",
      "--limit",
      "2",
    ]);
    assert.equal(page.items.length, 2);
    assert.ok(page.nextCursor);
    const rest = await cliJson<{ items: Job[]; nextCursor: string | null }>(url, [
      "ls",
      "--limit",
      "2",
      "--cursor",
      page.nextCursor,
    ]);
    assert.deepEqual(rest.items.map((j) => j.id), [id]);
    assert.equal(rest.nextCursor, null);
    const filtered = await cliJson<{ items: Job[] }>(url, ["ls", "--type", "report,later"]);
    assert.deepEqual(filtered.items.map((j) => j.type).sort(), ["later", "report"]);
    const none = await cli(url, ["ls", "--status", "running"]);
    assert.equal(none.stdout, "No jobs\n");
    const otherTenant = await cliJson<{ items: Job[] }>(url, ["ls", "--tenant", "acme"]);
    assert.equal(otherTenant.items.length, 0);

    await store.schedule(id);
    const shown = await cli(url, ["show", id]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, new RegExp(`^Job ${id}  email\\.send$`, "m"));
    assert.match(shown.stdout, /^ {2}status +scheduled/m);
    assert.match(shown.stdout, /^ {2}payload +\{"to":"ops@example.org"\}$/m);
    assert.match(shown.stdout, /^History$/m);
    assert.match(shown.stdout, /\(new\) → pending +#0 by cli$/m);
    assert.match(shown.stdout, /pending → scheduled +#0 manual by /m);
    const json = await cliJson<{ job: Job; history: unknown[] }>(url, ["show", id]);
    assert.equal(json.job.id, id);
    assert.equal(json.history.length, 2);
  });
});

Deno.test("jobengine cancel, schedule and retry move jobs; a refused transition exits 3", async () => {
  await withStore(async ({ url, store }) => {
    const { job: a } = await store.create("op", {});
    const scheduled = await cli(url, ["schedule", a.id]);
    assert.equal(scheduled.code, 0, scheduled.stderr);
    assert.equal(scheduled.stdout, `Scheduled ${a.id}  op  scheduled\n`);
    const again = await cli(url, ["schedule", a.id]);
    assert.equal(again.code, 3);
    assert.match(
      again.stderr,
      /^error: Cannot transition job .* to "scheduled": current status is "scheduled"/,
    );

    const cancelled = await cliJson<Job>(url, ["cancel", a.id, "--reason", "not needed"]);
    assert.equal(cancelled.status, "cancelled");
    assert.equal(cancelled.statusReason, "not needed");
    const twice = await cli(url, ["--json", "cancel", a.id]);
    assert.equal(twice.code, 3);
    assert.deepEqual(
      { code: JSON.parse(twice.stderr).error.code, from: JSON.parse(twice.stderr).error.from },
      { code: "invalid_transition", from: "cancelled" },
    );

    // a failed job retries; dependencies that have not completed refuse a schedule
    const { job: b } = await store.create("op", {}, { retryPolicy: { maxRetries: 0 } });
    await store.schedule(b.id);
    const [claimed] = await store.claim({ workerId: "test", types: ["op"] });
    await store.fail(b.id, claimed!.leaseId, { message: "boom", code: "boom" });
    const retried = await cliJson<Job>(url, ["retry", b.id]);
    assert.equal(retried.status, "scheduled");
    const notFailed = await cli(url, ["retry", b.id]);
    assert.equal(notFailed.code, 3);

    const { job: parent } = await store.create("op", {});
    const { job: child } = await store.create("op", {}, { dependsOn: [parent.id] });
    const early = await cli(url, ["--json", "schedule", child.id]);
    assert.equal(early.code, 3);
    assert.equal(JSON.parse(early.stderr).error.code, "dependencies_pending");

    // --tenant hides other tenants' jobs
    const hidden = await cli(url, ["cancel", parent.id, "--tenant", "acme"]);
    assert.equal(hidden.code, 2);
    assert.equal((await store.get(parent.id)).status, "pending");
  });
});

Deno.test("jobengine exit codes: 1 usage, 2 not found, 4 database unavailable", async () => {
  await withStore(async ({ url }) => {
    const cases: [string[], number, RegExp][] = [
      [["frobnicate"], 1, /Unknown command "frobnicate"/],
      [["submit"], 1, /missing argument/],
      [["submit", "t", "{not json"], 1, /Invalid JSON in the payload argument/],
      [["submit", "t", "--priority", "high"], 1, /Invalid --priority "high"/],
      [["submit", "t", "--bogus"], 1, /Unknown option '--bogus'/],
      [["submit", "t", "--file", "/nonexistent/x.json"], 1, /Cannot read \/nonexistent\/x\.json/],
      [["submit", "t", "--max-retries", "101"], 1, /Invalid --max-retries "101"/],
      [["ls", "--status", "sleeping"], 1, /Invalid --status "sleeping"/],
      [["watch", "--types", "job.exploded"], 1, /Invalid --types "job\.exploded"/],
      [["show", "5b7c1c51-1d5f-4f0e-9c7e-2f1f3e0f9d00"], 2, /Job 5b7c1c51-.* not found/],
      [["show", "nope"], 2, /not a job id/],
      [["cancel", "5b7c1c51-1d5f-4f0e-9c7e-2f1f3e0f9d00"], 2, /not found/],
      [
        ["submit", "t", "--depends-on", "5b7c1c51-1d5f-4f0e-9c7e-2f1f3e0f9d00"],
        1,
        /dependencies do not exist/,
      ],
    ];
    for (const [args, code, message] of cases) {
      const run = await cli(url, args);
      assert.equal(run.code, code, `jobengine ${args.join(" ")}: ${run.stderr}`);
      assert.match(run.stderr, message);
      assert.equal(run.stdout, "");
    }
    const json = await cli(url, ["--json", "show", "5b7c1c51-1d5f-4f0e-9c7e-2f1f3e0f9d00"]);
    assert.equal(json.code, 2);
    assert.equal(JSON.parse(json.stderr).error.code, "not_found");
  });
  // a port where nothing listens
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const down = await cli(`postgres://postgres@127.0.0.1:${port}/nothing`, ["--json", "ls"]);
  assert.equal(down.code, 4, down.stderr);
  assert.equal(JSON.parse(down.stderr).error.code, "database_unavailable");
  // a URL of another database is a usage error, not an unreachable server
  const mysql = await cli("mysql://x/db", ["--json", "ls"]);
  assert.equal(mysql.code, 1, mysql.stderr);
  assert.match(JSON.parse(mysql.stderr).error.message, /postgres:\/\//);
});

Deno.test("jobengine workflow creates jobs atomically from a file; a cycle exits 1 and writes nothing", async () => {
  await withStore(async ({ url, db }) => {
    const file = await tempFile(
      "etl.json",
      JSON.stringify({
        correlationId: "etl-42",
        jobs: [
          { ref: "extract", type: "etl.extract", payload: { source: "s3" } },
          { ref: "transform", type: "etl.transform", dependsOn: ["extract"] },
          { ref: "load", type: "etl.load", dependsOn: ["transform", "extract"] },
        ],
      }),
    );
    const run = await cli(url, ["workflow", file]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^Created a workflow of 3 jobs$/m);
    assert.match(run.stdout, /^REF\s+ID\s+TYPE\s+STATUS\s+DEPENDS ON$/m);
    assert.match(run.stdout, /^load\s+[0-9a-f-]{36}\s+etl\.load\s+pending\s+extract, transform$/m);

    const json = await cliJson<{ jobs: Job[] }>(url, ["workflow", file]);
    assert.equal(json.jobs.length, 3);
    assert.deepEqual(json.jobs[2]!.dependsOn.sort(), [json.jobs[0]!.id, json.jobs[1]!.id].sort());
    assert.equal(json.jobs[0]!.correlationId, "etl-42");

    const cycle = await tempFile(
      "cycle.json",
      JSON.stringify([
        { ref: "a", type: "x", dependsOn: ["b"] },
        { ref: "b", type: "x", dependsOn: ["a"] },
      ]),
    );
    const before = await db.query<{ n: number }>(`select count(*)::int as n from jobengine.jobs`);
    const refused = await cli(url, ["workflow", cycle]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /cycle/);
    const after = await db.query<{ n: number }>(`select count(*)::int as n from jobengine.jobs`);
    assert.deepEqual(after, before);
  });
});

Deno.test("jobengine seal and unseal switch sealed mode in the database", async () => {
  await withStore(async ({ url, store }) => {
    const sealed = await cli(url, ["seal"]);
    assert.equal(sealed.code, 0, sealed.stderr);
    assert.match(sealed.stdout, /^Sealed/);
    assert.equal(await store.isSealed(), true);
    const { job } = await store.create("net", {}, { requiresNetwork: true });
    const refused = await cli(url, ["--json", "schedule", job.id]);
    assert.equal(refused.code, 3);
    assert.equal(JSON.parse(refused.stderr).error.code, "sealed_mode");
    assert.deepEqual(await cliJson(url, ["unseal"]), { sealed: false });
    assert.equal(await store.isSealed(), false);
    assert.equal((await cliJson<Job>(url, ["schedule", job.id])).status, "scheduled");
  });
});

Deno.test("jobengine submit --file reads a .json payload or one job per .ndjson line, with a progress bar", async () => {
  await withStore(async ({ url, db }) => {
    const single = await tempFile("payload.json", '{"report":"daily"}');
    const one = await cliJson<Job>(url, ["submit", "report", "--file", single]);
    assert.deepEqual(one.payload, { report: "daily" });

    // as `deno task cli` runs it: in the project's directory, with the operator's directory in
    // INIT_CWD, against which a relative path is read
    const project = new URL("../../", import.meta.url).pathname;
    const relative = await cli(url, ["--json", "submit", "report", "--file", "payload.json"], {
      cwd: project,
      env: { INIT_CWD: single.slice(0, single.lastIndexOf("/")) },
    });
    assert.equal(relative.code, 0, relative.stderr);
    assert.deepEqual(JSON.parse(relative.stdout).payload, { report: "daily" });

    const lines = Array.from({ length: 120 }, (_, i) => JSON.stringify({ n: i + 1 })).join("\n");
    const ndjson = await tempFile("batch.ndjson", `${lines}\n\n`);
    const run = await cli(url, [
      "submit",
      "batch",
      "--file",
      ndjson,
      "--progress",
      "--idempotency-key",
      "b",
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^Submitted 120 jobs of type batch$/m);
    assert.match(run.stderr, /\rsubmitting \[#{30}\] 120\/120 100% \d+\/s\n$/);
    const [count] = await db.query<{ n: number; keys: number }>(
      `select count(*)::int as n, count(distinct idempotency_key)::int as keys
         from jobengine.jobs where type = 'batch'`,
    );
    assert.deepEqual(count, { n: 120, keys: 120 });
    // the same file again: idempotent, nothing new
    const again = await cliJson<{ submitted: number; ids: string[] }>(url, [
      "submit",
      "batch",
      "--file",
      ndjson,
      "--idempotency-key",
      "b",
    ]);
    assert.equal(again.submitted, 120);
    const [still] = await db.query<{ n: number }>(
      `select count(*)::int as n from jobengine.jobs where type = 'batch'`,
    );
    assert.equal(still!.n, 120);
    // the key names the file's line, blank lines counted
    const gap = await tempFile("gap.ndjson", '{"g":1}\n\n{"g":3}\n');
    const gapped = await cli(url, ["submit", "gapped", "--file", gap, "--idempotency-key", "g"]);
    assert.equal(gapped.code, 0, gapped.stderr);
    const keys = await db.query<{ idempotency_key: string; payload: unknown }>(
      `select idempotency_key, payload from jobengine.jobs where type = 'gapped'
        order by idempotency_key`,
    );
    assert.deepEqual(keys, [
      { idempotency_key: "g:1", payload: { g: 1 } },
      { idempotency_key: "g:3", payload: { g: 3 } },
    ]);
    // no progress bar when stderr is not a terminal and --progress is not given
    const quiet = await tempFile("two.ndjson", '{"a":1}\n{"a":2}\n');
    const noBar = await cli(url, ["submit", "quiet", "--file", quiet]);
    assert.equal(noBar.stderr, "");
    const bad = await tempFile("bad.ndjson", '{"a":1}\nnot json\n');
    const refused = await cli(url, ["submit", "bad", "--file", bad]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /bad\.ndjson line 2/);
  });
});

Deno.test("jobengine watch prints live events in order; --json gives one envelope per line", async () => {
  await withStore(async ({ url, store, db }) => {
    const { job } = await store.create("watched", {});
    const replay = await cli(url, ["watch", "--after", "0", "--count", "1"]);
    assert.equal(replay.code, 0, replay.stderr);
    assert.match(replay.stdout, new RegExp(`^#1 \\S+ \\S+ job\\.created +${job.id}`));

    // start after the current last event, so that the child's start-up time does not matter
    const [last] = await db.query<{ seq: number }>(
      `select max(sequence)::int as seq from jobengine.timeline_events`,
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--config",
        CONFIG,
        MAIN,
        "--database-url",
        url,
        "--json",
        "watch",
        "--after",
        String(last!.seq),
        "--types",
        "job.scheduled,job.cancelled",
        "--count",
        "2",
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // two events it wants and one it does not
    const deadline = Date.now() + 15_000;
    const output = new Response(child.stdout).text();
    const errors = new Response(child.stderr).text();
    await store.create("ignored", {});
    await store.schedule(job.id);
    await store.cancel(job.id);
    const status = await Promise.race([
      child.status,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error("watch did not exit")), deadline - Date.now())
      ),
    ]);
    assert.equal(status.code, 0, await errors);
    const events = (await output).trim().split("\n").map((line) => JSON.parse(line));
    assert.deepEqual(events.map((e) => e.type), ["job.scheduled", "job.cancelled"]);
    assert.ok(events[0].sequence < events[1].sequence);
    assert.equal(events[0].subject.id, job.id);
  });
});

Deno.test("jobengine worker runs handlers from a module and drains on SIGTERM", async () => {
  await withStore(async ({ url, store }) => {
    const module = await tempFile(
      "handlers.ts",
      `export const handlers = {
        "cli.double": async (job) => ({ doubled: job.payload.n * 2 }),
        "cli.fail": async () => { throw Object.assign(new Error("nope"), { code: "nope" }); },
      };\n`,
    );
    const { job: ok } = await store.create("cli.double", { n: 21 });
    const { job: bad } = await store.create("cli.fail", {}, { retryPolicy: { maxRetries: 0 } });
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--config",
        CONFIG,
        MAIN,
        "--database-url",
        url,
        "worker",
        module,
        "--concurrency",
        "2",
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stdout = new Response(child.stdout).text();
    const stderr = new Response(child.stderr).text();
    try {
      // the worker's own scheduler promotes the pending jobs
      const start = Date.now();
      while (
        (await store.get(ok.id)).status !== "completed" ||
        (await store.get(bad.id)).status !== "failed"
      ) {
        if (Date.now() - start > 15_000) throw new Error("the worker did not run the jobs");
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      child.kill("SIGTERM");
    }
    const status = await child.status;
    assert.equal(status.code, 0, await stderr);
    assert.deepEqual((await store.get(ok.id)).result, { doubled: 42 });
    assert.equal((await store.get(bad.id)).lastError?.code, "nope");
    assert.match(await stderr, /Received SIGTERM: draining/);
    assert.match(await stdout, /^Worker \S+ stopped: \{"claimed":2,"completed":1,"failed":1/);

    const missing = await cli(url, ["worker", "/nonexistent/handlers.ts"]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /Cannot load handlers from \/nonexistent\/handlers\.ts/);
  });
});

Deno.test("jobengine migrate applies every migration to an empty database, then nothing", async () => {
  const name = `je_t_cli_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const sql = adminSql();
  try {
    await sql.unsafe(`create database ${name}`);
    const url = new URL(Deno.env.get("DATABASE_URL")!);
    url.pathname = `/${name}`;
    const notYet = await cli(url.toString(), ["ls"]);
    assert.equal(notYet.code, 5);
    assert.match(notYet.stderr, /run: jobengine migrate/);
    // watch too (it used to wait for ever on an emitter that retries)
    const watchNotYet = await cli(url.toString(), ["watch", "--count", "1"]);
    assert.equal(watchNotYet.code, 5, watchNotYet.stderr);
    assert.match(watchNotYet.stderr, /run: jobengine migrate/);
    const first = await cliJson<{ database: string; applied: string[]; skipped: number }>(
      url.toString(),
      ["migrate"],
    );
    assert.equal(first.database, "postgres");
    assert.ok(first.applied.includes("000001_schema.sql"));
    assert.equal(first.skipped, 0);
    const second = await cli(url.toString(), ["migrate"]);
    assert.equal(second.code, 0);
    assert.match(second.stdout, /^postgres: 0 applied, \d+ already up to date$/m);
    assert.equal((await cli(url.toString(), ["ls"])).stdout, "No jobs\n");
  } finally {
    await sql.unsafe(`drop database if exists ${name} with (force)`);
    await sql.end();
  }
});

Deno.test("jobengine submit refuses numbers JSON would alter and values PostgreSQL refuses: exit 1, nothing written", async () => {
  await withStore(async ({ url, db }) => {
    const count = async () =>
      Number((await db.query<{ n: string }>("select count(*) as n from jobengine.jobs"))[0]!.n);
    for (
      const payload of ['{"n":12345678901234567890}', '{"x":1e400}', "[1.00000000000000000000001]"]
    ) {
      const refused = await cli(url, ["submit", "t", payload]);
      assert.equal(refused.code, 1, payload);
      assert.match(refused.stderr, /cannot be kept exactly/);
    }
    const nul = await cli(url, ["--json", "submit", "t", '{"a":"x\\u0000y"}']);
    assert.equal(nul.code, 1, nul.stderr);
    assert.match(nul.stdout + nul.stderr, /invalid_data/);
    assert.equal(await count(), 0, "nothing written");
    const fine = await cli(url, ["submit", "t", '{"n":9007199254740991,"f":1.5}']);
    assert.equal(fine.code, 0, fine.stderr);
  });
});

Deno.test("jobengine ls: the 'More:' line repeats the filters and the page size with the cursor", async () => {
  await withStore(async ({ url, store }) => {
    for (let i = 0; i < 3; i++) await store.create("paged", {});
    await store.create("other", {});
    const first = await cli(url, ["ls", "--status", "pending", "--type", "paged", "--limit", "2"]);
    assert.equal(first.code, 0, first.stderr);
    const more = /More: jobengine (.+)$/m.exec(first.stdout);
    assert.ok(more, first.stdout);
    const args = more[1]!.split(" ");
    assert.deepEqual(args.slice(0, -1), [
      "ls",
      "--status",
      "pending",
      "--type",
      "paged",
      "--limit",
      "2",
      "--cursor",
    ]);
    const next = await cliJson<{ items: Array<{ type: string }>; nextCursor: string | null }>(
      url,
      args,
    );
    assert.deepEqual(next.items.map((job) => job.type), ["paged"], "the third paged job only");
    assert.equal(next.nextCursor, null);
  });
});

Deno.test("jobengine submit --file .ndjson: a refused line stops the rest and the output says which jobs were written", async () => {
  await withStore(async ({ url, db }) => {
    const lines = [
      '{"a":1}',
      '{"a":"x\\u0000y"}',
      ...Array.from({ length: 30 }, (_, i) => `{"b":${i}}`),
    ];
    const file = await tempFile("bad.ndjson", lines.join("\n") + "\n");
    const run = await cli(url, ["--json", "submit", "t", "--file", file]);
    assert.equal(run.code, 1, run.stderr);
    const partial = JSON.parse(run.stdout) as {
      submitted: number;
      ids: string[];
      failedLine: number;
    };
    assert.equal(partial.failedLine, 2);
    assert.match(JSON.parse(run.stderr).error.message, /bad\.ndjson line 2: /);
    const rows = await db.query<{ id: string }>("select id from jobengine.jobs order by id");
    // what the output names is exactly what was written
    assert.deepEqual(rows.map((r) => r.id).sort(), [...partial.ids].sort());
    assert.ok(partial.submitted >= 1, "line 1 was written before line 2 failed");
    assert.equal(partial.submitted, partial.ids.length);
  });
});
