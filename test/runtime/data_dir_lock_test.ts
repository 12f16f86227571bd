/**
 * One process at a time on an embedded data directory (`src/runtime/data_dir_lock.ts`): the
 * lock itself, the CLI refusing a directory another process holds, and the engine waiting for
 * it. Another process holds the directory the way an engine does: a child Deno process that
 * takes the lock and keeps it until it is killed.
 */
import assert from "node:assert/strict";
import { DataDirectoryInUseError } from "../../src/errors.ts";
import { LOCK_FILE, lockDataDir } from "../../src/runtime/data_dir_lock.ts";

const LOCK_MODULE = new URL("../../src/runtime/data_dir_lock.ts", import.meta.url).href;
const CLI = new URL("../../src/runtime/cli.ts", import.meta.url).pathname;
const START = new URL("../../src/runtime/start.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

/** A child process holding `dataDir`'s lock until killed; resolves once it holds it. */
async function holder(dataDir: string): Promise<Deno.ChildProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `const { lockDataDir } = await import(${JSON.stringify(LOCK_MODULE)});
       await lockDataDir(${JSON.stringify(dataDir)});
       console.log("held");
       setInterval(() => {}, 1000);`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  assert.equal(value?.trim(), "held");
  return child;
}

async function kill(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch {
    // already gone
  }
  await child.status;
  await child.stdout.cancel().catch(() => {});
}

Deno.test("lockDataDir: one holder at a time, in this process or another; a killed holder leaves no stale lock", async () => {
  const dir = await Deno.makeTempDir({ prefix: "je-lock-" });
  try {
    const lock = await lockDataDir(`${dir}/pglite`);
    assert.ok((await Deno.stat(`${dir}/pglite/${LOCK_FILE}`)).isFile);
    await assert.rejects(() => lockDataDir(`${dir}/pglite`), DataDirectoryInUseError);
    await lock.release();
    await lock.release(); // idempotent
    const again = await lockDataDir(`${dir}/pglite`);
    await again.release();

    const child = await holder(`${dir}/pglite`);
    await assert.rejects(() => lockDataDir(`${dir}/pglite`), (error: unknown) => {
      assert.ok(error instanceof DataDirectoryInUseError);
      assert.equal(error.code, "database_unavailable");
      assert.match(error.message, /in use by another process/);
      return true;
    });
    await kill(child); // as a crash would: the lock file stays, the OS lock goes
    const afterCrash = await lockDataDir(`${dir}/pglite`);
    await afterCrash.release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the CLI refuses an embedded data directory another process holds (exit 4), and writes nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "je-lock-" });
  const child = await holder(`${dir}/pglite`);
  try {
    const run = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", CONFIG, CLI, "--json", "submit", "noop"],
      env: { NO_COLOR: "1", JOBENGINE_DATA_DIR: `${dir}/pglite`, DATABASE_URL: "" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(run.stderr);
    assert.equal(run.code, 4, stderr);
    assert.equal(JSON.parse(stderr).error.code, "database_unavailable");
    assert.match(stderr, /in use by another process/);
    assert.deepEqual([...Deno.readDirSync(`${dir}/pglite`)].map((e) => e.name), [LOCK_FILE]);
  } finally {
    await kill(child);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the engine waits for an embedded data directory another process holds, then starts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "je-lock-" });
  const child = await holder(`${dir}/pglite`);
  const engine = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, START],
    env: {
      PORT: "0",
      DATABASE_URL: "",
      JOBENGINE_DATA_DIR: `${dir}/pglite`,
      JOBENGINE_WORKER_CONCURRENCY: "0",
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const seen = (text: string) => lines.some((line) => line.includes(text));
  const read = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      lines.push(...chunk.split("\n").filter(Boolean));
    }
  };
  const reading = Promise.all([read(engine.stdout), read(engine.stderr)]);
  try {
    const until = async (text: string) => {
      const deadline = Date.now() + 60_000;
      while (!seen(text)) {
        if (Date.now() > deadline) throw new Error(`no "${text}" in:\n${lines.join("\n")}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    await until("in use by another process");
    assert.ok(!seen('"Listening"'), "it did not start while the directory was held");
    await kill(child);
    await until('"Listening"');
  } finally {
    await kill(child);
    try {
      engine.kill("SIGTERM");
    } catch {
      // already gone
    }
    await engine.status;
    await reading;
    await Deno.remove(dir, { recursive: true });
  }
});
