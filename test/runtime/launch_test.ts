import assert from "node:assert/strict";
import { permissionFlags, sealedEnvironment } from "../../src/runtime/launch.ts";
import { ConfigError, loadConfig } from "../../src/runtime/config.ts";
import { freshDatabase } from "../_db.ts";
import { countingListener } from "../_listener.ts";
import { createPostgresDatabase } from "../../src/db/postgres.ts";

const PATHS = { projectDir: "/srv/jobengine", cwd: "/srv/jobengine", denoDir: "/var/cache/deno" };

Deno.test("permissionFlags() limits a sealed engine to its listen address and database", () => {
  const config = loadConfig({
    JOBENGINE_SEALED: "1",
    HOST: "127.0.0.1",
    PORT: "8080",
    DATABASE_URL: "postgres://app@db.internal:6543/jobs",
  });
  assert.deepEqual(permissionFlags(config, PATHS), [
    "--allow-read=/srv/jobengine,/srv/jobengine/.jobengine/pglite,/var/cache/deno",
    "--allow-write=/srv/jobengine/.jobengine/pglite",
    "--allow-env",
    "--allow-sys=hostname",
    "--allow-net=127.0.0.1:8080,db.internal:6543",
    // Deno's module loader downloads nothing (a handler's import() of a URL, jsr: or npm:)
    "--cached-only",
    "--no-remote",
    "--frozen-lockfile",
    "--deny-env=HTTP_PROXY,http_proxy,HTTPS_PROXY,https_proxy,ALL_PROXY,all_proxy,NO_PROXY,no_proxy",
  ]);
  assert.deepEqual(
    Object.keys(sealedEnvironment({
      PATH: "/usr/bin",
      HTTP_PROXY: "x",
      https_proxy: "x",
      OTEL_DENO: "true",
      OTEL_EXPORTER_OTLP_ENDPOINT: "x",
      DENO_DIR: "/cache",
      DENO_AUTH_TOKENS: "x",
      DENO_NO_UPDATE_CHECK: "1",
      JOBENGINE_SEALED: "1",
    })).sort(),
    ["DENO_DIR", "DENO_NO_UPDATE_CHECK", "JOBENGINE_SEALED", "PATH"],
  );
  // JOBENGINE_ALLOW joins the database in --allow-net, as it joins the guard's allowlist
  const allowed = permissionFlags(
    loadConfig({
      JOBENGINE_SEALED: "1",
      PORT: "8080",
      JOBENGINE_ALLOW: "10.0.0.7:443, [::1]:9000",
    }),
    PATHS,
  );
  assert.ok(
    allowed.includes("--allow-net=127.0.0.1:8080,10.0.0.7:443,[::1]:9000"),
    allowed.join(" "),
  );
  // unsealed: no loader limits
  const open = permissionFlags(loadConfig({ PORT: "8080" }), PATHS);
  assert.ok(!open.includes("--cached-only") && !open.includes("--no-remote"));
});

Deno.test("permissionFlags() gives a sealed engine on PGlite no network but its listen address", () => {
  const config = loadConfig({ JOBENGINE_SEALED: "true", PORT: "9000", HOST: "::1" });
  const flags = permissionFlags(config, PATHS);
  assert.equal(flags.filter((f) => f.startsWith("--allow-net")).join(), "--allow-net=[::1]:9000");
});

Deno.test("permissionFlags() never grants run, ffi or unrestricted write, sealed or not", () => {
  for (const sealed of ["1", "0"]) {
    const flags = permissionFlags(loadConfig({ JOBENGINE_SEALED: sealed, PORT: "8080" }), PATHS);
    assert.ok(
      !flags.some((f) => f.startsWith("--allow-run") || f.startsWith("--allow-ffi") || f === "-A"),
    );
    assert.ok(!flags.includes("--allow-write"));
  }
  const open = permissionFlags(loadConfig({ PORT: "8080" }), PATHS);
  assert.ok(open.includes("--allow-net"), "unsealed engines may use the network");
});

Deno.test("permissionFlags() lets the engine read a handlers module outside the project, and only its directory", () => {
  const read = (env: Record<string, string>) =>
    permissionFlags(loadConfig({ PORT: "8080", ...env }), PATHS).find((f) =>
      f.startsWith("--allow-read=")
    );
  const base = "--allow-read=/srv/jobengine,/srv/jobengine/.jobengine/pglite,/var/cache/deno";
  assert.equal(
    read({ JOBENGINE_HANDLERS: "/opt/site/jobs/handlers.ts" }),
    `${base},/opt/site/jobs`,
  );
  assert.equal(
    read({ JOBENGINE_HANDLERS: "file:///opt/site/jobs/handlers.ts", JOBENGINE_SEALED: "1" }),
    `${base},/opt/site/jobs`,
  );
  assert.equal(read({ JOBENGINE_HANDLERS: "../site/handlers.ts" }), `${base},/srv/site`);
  // inside the project, or not a file: nothing more
  assert.equal(read({ JOBENGINE_HANDLERS: "./handlers/mail.ts" }), base);
  assert.equal(read({ JOBENGINE_HANDLERS: "https://example.test/handlers.ts" }), base);
  assert.equal(
    read({ JOBENGINE_HANDLERS: "/srv/jobengine-other/h.ts" }),
    `${base},/srv/jobengine-other`,
  );
});

Deno.test("permissionFlags() refuses port 0 when sealed: the allowlist must name the port", () => {
  assert.throws(
    () => permissionFlags(loadConfig({ JOBENGINE_SEALED: "1", PORT: "0" }), PATHS),
    ConfigError,
  );
});

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** `deno task <task>` with the bypass handlers, on `port`; its output read to the end. */
function spawnEngine(
  task: "start" | "start:sealed",
  databaseUrl: string,
  port: number,
  bypassPort: number,
  env: Record<string, string> = {},
) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", task],
    env: {
      ...env,
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      HOST: "127.0.0.1",
      JOBENGINE_HANDLERS: "test/runtime/_bypass_handlers.ts",
      JOBENGINE_WORKER_CONCURRENCY: "1",
      BYPASS_PORT: String(bypassPort),
      NO_COLOR: "1",
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  return { child, output };
}

async function runBypassJob(
  task: "start" | "start:sealed",
  databaseUrl: string,
  bypassPort: number,
  options: { sealed: boolean; env?: Record<string, string>; type?: string },
) {
  const port = freePort();
  const { child, output } = spawnEngine(task, databaseUrl, port, bypassPort, options.env);
  const base = `http://127.0.0.1:${port}/api/v1`;
  try {
    const deadline = Date.now() + 60_000;
    while (true) {
      try {
        const response = await fetch(`${base}/system`);
        if (response.ok) {
          const system = await response.json();
          assert.equal(system.sealed, options.sealed);
          break;
        }
        await response.body?.cancel();
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error("The engine did not start within 60 s");
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const created = await fetch(`${base}/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        type: options.type ?? "bypass",
        payload: {},
        retryPolicy: { maxRetries: 0 },
      }),
    });
    assert.equal(created.status, 201);
    const { id } = await created.json();
    while (true) {
      const response = await fetch(`${base}/jobs/${id}`);
      const job = await response.json();
      if (job.terminal) return job;
      if (Date.now() > deadline) {
        throw new Error(`Job ${id} did not finish: ${JSON.stringify(job)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    try {
      child.kill("SIGTERM");
    } catch {
      // already exited; its output is printed below
    }
    const status = await child.status;
    const [stdout, stderr] = await output;
    if (!status.success && status.signal === null && status.code !== 0) {
      console.error(`engine exited ${status.code}\n${stdout}\n${stderr}`);
    }
  }
}

/** The types of the sealed.egress_blocked events whose subject is `jobId`. */
async function adminEvents(url: string, jobId: string): Promise<string[]> {
  const db = createPostgresDatabase(url, { max: 1 });
  try {
    const rows = await db.query<{ type: string }>(
      `select type from jobengine.timeline_events
        where subject_id = $1::uuid and type = 'sealed.egress_blocked' order by sequence`,
      [jobId],
    );
    return rows.map((row) => row.type);
  } finally {
    await db.close();
  }
}

Deno.test("deno task start, sealed by JOBENGINE_SEALED or by the database: a handler that bypasses the guard still cannot open a socket", async () => {
  const fresh = await freshDatabase();
  const listener = countingListener();
  try {
    const sealed = await runBypassJob("start:sealed", fresh.url, listener.port, { sealed: true });
    assert.equal(sealed.status, "completed", JSON.stringify(sealed));
    assert.equal(sealed.result.connected, false);
    assert.match(sealed.result.error, /NotCapable|PermissionDenied|Requires net access/);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(listener.count(), 0, "the listener saw no connection from the sealed engine");

    // a refusal by the runtime's permissions that the handler lets through is reported like
    // the guard's: egress_denied, not retryable, and a sealed.egress_blocked event for the job
    const thrown = await runBypassJob("start:sealed", fresh.url, listener.port, {
      sealed: true,
      type: "bypassThrows",
    });
    assert.equal(thrown.status, "failed", JSON.stringify(thrown));
    assert.equal(thrown.lastError.code, "egress_denied", JSON.stringify(thrown.lastError));
    assert.deepEqual(
      { host: thrown.lastError.details.host, port: thrown.lastError.details.port },
      { host: "127.0.0.1", port: listener.port },
    );
    const blocked = await adminEvents(fresh.url, thrown.id);
    assert.deepEqual(blocked, ["sealed.egress_blocked"]);
    assert.equal(listener.count(), 0);

    // proxies: one inherited from the environment, one a handler sets. The allowlisted host
    // is reached directly; the proxy (the listener) sees nothing
    const allowed = countingListener();
    try {
      const env = {
        JOBENGINE_ALLOW: `127.0.0.1:${allowed.port}`,
        ALLOWED_PORT: String(allowed.port),
        HTTP_PROXY: `http://127.0.0.1:${listener.port}`,
        OTEL_DENO: "true",
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${listener.port}`,
      };
      const direct = await runBypassJob("start:sealed", fresh.url, listener.port, {
        sealed: true,
        type: "fetchAllowed",
        env,
      });
      assert.deepEqual(direct.result, { status: 200 }, JSON.stringify(direct));
      assert.equal(allowed.count(), 1);
      const setter = await runBypassJob("start:sealed", fresh.url, listener.port, {
        sealed: true,
        type: "setProxy",
        env,
      });
      assert.equal(setter.status, "failed", JSON.stringify(setter));
      assert.match(setter.lastError.message, /HTTP_PROXY/);
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(listener.count(), 0, "no request went to the proxy or the OTLP endpoint");
    } finally {
      await allowed.close();
    }

    // Deno's own module loader: a handler's import() of a URL downloads nothing (every
    // download Deno attempts would go through the proxy, the listener)
    const proxy = `http://127.0.0.1:${listener.port}`;
    const imported = await runBypassJob("start:sealed", fresh.url, listener.port, {
      sealed: true,
      type: "importer",
      env: { HTTPS_PROXY: proxy, HTTP_PROXY: proxy, NO_PROXY: "", DENO_NO_UPDATE_CHECK: "1" },
    });
    assert.equal(imported.status, "completed", JSON.stringify(imported));
    assert.equal(imported.result.imported, false);
    assert.match(imported.result.error, /--no-remote|--cached-only/);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(listener.count(), 0, "Deno's module loader attempted no download");

    // plain `deno task start` on the database that run left sealed: the engine finds it sealed
    // and the launcher starts it again with the sealed permissions
    const sealedByDatabase = await runBypassJob("start", fresh.url, listener.port, {
      sealed: true,
    });
    assert.equal(sealedByDatabase.result.connected, false, JSON.stringify(sealedByDatabase));
    assert.match(sealedByDatabase.result.error, /NotCapable|PermissionDenied|Requires net access/);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(listener.count(), 0, "no connection from an engine sealed by the database");

    // the same handler, unsealed, reaches the listener: the test can see traffic
    const open = await runBypassJob("start", fresh.url, listener.port, {
      sealed: false,
      env: { JOBENGINE_SEALED: "0" },
    });
    assert.equal(open.result.connected, true, JSON.stringify(open));
    assert.equal(listener.count(), 1);
  } finally {
    await listener.close();
    await fresh.drop();
  }
});

Deno.test("deno task start sealed while it runs (even with no NOTIFY): the engine restarts itself with sealed permissions, and with the network once unsealed", async () => {
  const fresh = await freshDatabase();
  const listener = countingListener();
  const db = createPostgresDatabase(fresh.url, { max: 1 });
  const port = freePort();
  const base = `http://127.0.0.1:${port}/api/v1`;
  const { child, output } = spawnEngine("start", fresh.url, port, listener.port);
  // the HTTP calls retry while the engine restarts (its port closes for a moment)
  const call = async (path: string, init?: RequestInit) => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        const response = await fetch(`${base}${path}`, init);
        if (response.status < 500) return await response.json();
        await response.body?.cancel();
      } catch {
        // not listening (yet, or again)
      }
      if (Date.now() > deadline) throw new Error(`${path}: no answer within 60 s`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };
  const runBypass = async () => {
    const job = await call("/jobs", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ type: "bypass", retryPolicy: { maxRetries: 0 } }),
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      const now = await call(`/jobs/${job.id}`);
      if (now.terminal) return now;
      if (Date.now() > deadline) throw new Error(`job ${job.id} did not finish`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  try {
    assert.equal((await call("/system")).sealed, false);
    // unsealed: node:net reaches the listener (the test can see traffic)
    assert.equal((await runBypass()).result.connected, true);
    assert.equal(listener.count(), 1);

    // sealed and unsealed in one transaction: no change in the end, so no restart
    await db.transaction(async (tx) => {
      await tx.query("update jobengine.settings set value = 'true' where key = 'sealed'");
      await tx.query("update jobengine.settings set value = 'false' where key = 'sealed'");
    });
    await new Promise((resolve) => setTimeout(resolve, 1000));

    // sealed with the settings trigger off (a restore, logical replication): no NOTIFY is
    // sent; the engine's periodic re-check finds the seal
    await db.transaction(async (tx) => {
      await tx.query("set local session_replication_role = replica");
      await tx.query("update jobengine.settings set value = 'true' where key = 'sealed'");
    });
    // the old engine stops claiming at once; give the relaunch a moment, then run the bypass
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const sealed = await runBypass();
    assert.equal(sealed.result.connected, false, JSON.stringify(sealed));
    assert.match(sealed.result.error, /NotCapable|PermissionDenied|Requires net access/);
    assert.equal(listener.count(), 1, "no connection once the database was sealed");

    // unsealed again: the engine comes back with the network
    await db.query("update jobengine.settings set value = 'false' where key = 'sealed'");
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const open = await runBypass();
    assert.equal(open.result.connected, true, JSON.stringify(open));
    assert.equal(listener.count(), 2);
  } finally {
    try {
      child.kill("SIGTERM");
    } catch {
      // already exited
    }
    await child.status;
    await db.close();
    await listener.close();
    await fresh.drop();
  }
  const [stdout] = await output;
  // one restart each way: the transaction that sealed and unsealed caused none
  assert.equal(stdout.match(/starting the engine again with sealed permissions/g)?.length, 1);
  assert.equal(stdout.match(/starting the engine again with network permissions/g)?.length, 1);
});

Deno.test("the launcher killed with SIGKILL takes its engine with it (the engine's stdin ends)", async () => {
  const fresh = await freshDatabase();
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  const launcher = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-env",
      "--allow-read",
      "--allow-run",
      new URL("../../src/runtime/launch.ts", import.meta.url).pathname,
    ],
    env: {
      DATABASE_URL: fresh.url,
      PORT: String(port),
      HOST: "127.0.0.1",
      JOBENGINE_SEALED: "1", // so that the engine's command line names the port (cleanup below)
      JOBENGINE_WORKER_CONCURRENCY: "0",
      NO_COLOR: "1",
    },
    stdout: "null",
    stderr: "null",
  }).spawn();
  const answers = async () => {
    try {
      const response = await fetch(`${base}/healthz`);
      await response.body?.cancel();
      return response.ok;
    } catch {
      return false;
    }
  };
  try {
    const deadline = Date.now() + 60_000;
    while (!(await answers())) {
      if (Date.now() > deadline) throw new Error("the engine did not start within 60 s");
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    launcher.kill("SIGKILL");
    await launcher.status;
    const gone = Date.now() + 15_000;
    while (await answers()) {
      if (Date.now() > gone) throw new Error("the engine outlived its launcher by 15 s");
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    try {
      launcher.kill("SIGKILL");
    } catch {
      // already gone
    }
    await launcher.status;
    // an engine left behind by a failure: its --allow-net names this port
    await new Deno.Command("pkill", { args: ["-f", `127.0.0.1:${port}`] }).output();
    await fresh.drop();
  }
});

Deno.test("the launcher says when its engine fails (exit code) instead of ending silently, and keeps to JOBENGINE_LOG_LEVEL", async () => {
  const fresh = await freshDatabase();
  try {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["task", "--quiet", "start"],
      env: {
        DATABASE_URL: fresh.url,
        PORT: String(freePort()),
        HOST: "127.0.0.1",
        JOBENGINE_HANDLERS: "./no/such/handlers.ts",
        JOBENGINE_LOG_LEVEL: "warn",
        NO_COLOR: "1",
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(code, 1);
    const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    const launcher = text.split("\n").filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line))
      .filter((entry) => entry.service === "jobengine-launcher");
    assert.deepEqual(
      launcher.at(-1) && { msg: launcher.at(-1).msg, code: launcher.at(-1).code },
      { msg: "The engine exited with an error", code: 1 },
    );
    // at warn, neither the launcher nor the engine writes its info lines ("Starting the engine")
    assert.deepEqual(
      text.split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line))
        .filter((entry) => entry.level === "info" || entry.level === "debug"),
      [],
    );
  } finally {
    await fresh.drop();
  }
});
