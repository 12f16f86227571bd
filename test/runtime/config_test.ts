import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../../src/runtime/config.ts";

Deno.test("loadConfig() applies the documented defaults", () => {
  const config = loadConfig({});
  assert.deepEqual(config, {
    port: 8080,
    host: "127.0.0.1",
    databaseUrl: undefined,
    dataDir: ".jobengine/pglite/",
    sealed: undefined,
    bodyLimitBytes: 1024 * 1024,
    workerConcurrency: 4,
    workerPrefetch: 0,
    handlersModule: undefined,
    allow: [],
    drainMs: 30_000,
    logLevel: "info",
  });
});

Deno.test("loadConfig() reads every variable", () => {
  const config = loadConfig({
    PORT: "0",
    HOST: "0.0.0.0",
    DATABASE_URL: "postgresql://u@db:5433/x",
    JOBENGINE_DATA_DIR: "/var/lib/jobengine",
    JOBENGINE_SEALED: "TRUE",
    JOBENGINE_BODY_LIMIT: "512k",
    JOBENGINE_WORKER_CONCURRENCY: "0",
    JOBENGINE_WORKER_PREFETCH: "64",
    JOBENGINE_HANDLERS: "./handlers.ts",
    JOBENGINE_ALLOW: "10.0.0.1:443, [::1]:8443",
    JOBENGINE_DRAIN_MS: "500",
    JOBENGINE_LOG_LEVEL: "debug",
  });
  assert.equal(config.port, 0);
  assert.equal(config.host, "0.0.0.0");
  assert.equal(config.databaseUrl, "postgresql://u@db:5433/x");
  assert.equal(config.sealed, true);
  assert.equal(config.bodyLimitBytes, 512 * 1024);
  assert.equal(config.workerConcurrency, 0);
  assert.equal(config.workerPrefetch, 64);
  assert.equal(config.handlersModule, "./handlers.ts");
  assert.deepEqual(config.allow, ["10.0.0.1:443", "[::1]:8443"]);
  assert.equal(config.drainMs, 500);
  assert.equal(config.logLevel, "debug");
  assert.equal(loadConfig({ JOBENGINE_SEALED: "0" }).sealed, false);
  assert.equal(loadConfig({ JOBENGINE_BODY_LIMIT: "2m" }).bodyLimitBytes, 2 * 1024 * 1024);
  assert.equal(loadConfig({ DATABASE_URL: "  " }).databaseUrl, undefined, "blank is unset");
});

Deno.test("loadConfig() refuses invalid values, naming each variable", () => {
  assert.throws(
    () =>
      loadConfig({
        PORT: "http",
        JOBENGINE_SEALED: "maybe",
        DATABASE_URL: "mysql://x",
        JOBENGINE_BODY_LIMIT: "-1",
        JOBENGINE_LOG_LEVEL: "loud",
      }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      const text = error.problems.join("\n");
      for (
        const name of [
          "PORT",
          "JOBENGINE_SEALED",
          "DATABASE_URL",
          "JOBENGINE_BODY_LIMIT",
          "JOBENGINE_LOG_LEVEL",
        ]
      ) {
        assert.match(text, new RegExp(name));
      }
      return true;
    },
  );
  assert.throws(() => loadConfig({ PORT: "70000" }), ConfigError);
  // a URL that does not parse is a configuration error that does not repeat it (a password)
  for (const url of ["postgres://admin:S3cretPW@db host:5432/jobs", "postgres://[bad"]) {
    assert.throws(() => loadConfig({ DATABASE_URL: url }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.problems.join("\n"), /DATABASE_URL is not a valid URL/);
      assert.doesNotMatch(error.problems.join("\n"), /S3cretPW|\[bad/);
      return true;
    });
  }
  assert.throws(() => loadConfig({ JOBENGINE_ALLOW: "10.0.0.1" }), /JOBENGINE_ALLOW/);
});
