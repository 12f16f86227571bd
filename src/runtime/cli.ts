/**
 * The Deno entry point of the command-line interface (`deno task cli <command> ...`): turns
 * `Deno.args`, the environment, the terminal and signals into the {@linkcode CliIo} that
 * {@linkcode runCli} (`src/cli/main.ts`) and the commands use.
 *
 * @module
 */
import { runCli } from "../cli/main.ts";
import type { CliIo } from "../cli/_shared.ts";
import { lockDataDir } from "./data_dir_lock.ts";

function writeAll(file: { writeSync(bytes: Uint8Array): number }, text: string): void {
  let bytes = new TextEncoder().encode(text);
  try {
    while (bytes.length > 0) bytes = bytes.subarray(file.writeSync(bytes));
  } catch (error) {
    if (error instanceof Deno.errors.BrokenPipe) return; // e.g. piped into `head`
    throw error;
  }
}

/** The {@linkcode CliIo} of a Deno process. */
export function denoIo(): CliIo {
  return {
    stdout: (text) => writeAll(Deno.stdout, text),
    stderr: (text) => writeAll(Deno.stderr, text),
    stdoutIsTerminal: Deno.stdout.isTerminal(),
    stderrIsTerminal: Deno.stderr.isTerminal(),
    env: (name) => Deno.env.get(name),
    async lockDataDir(dataDir) {
      const lock = await lockDataDir(dataDir);
      return () => lock.release();
    },
    // `deno task cli` runs in the project's directory; relative file arguments mean the
    // directory the operator typed the command in, which the task runner passes as INIT_CWD
    cwd: () => Deno.env.get("INIT_CWD") || Deno.cwd(),
    onShutdownSignal(handler) {
      const signals: Deno.Signal[] = Deno.build.os === "windows"
        ? ["SIGINT"]
        : ["SIGINT", "SIGTERM"];
      const listeners = signals.map((signal) => {
        const listener = () => handler(signal);
        Deno.addSignalListener(signal, listener);
        return () => Deno.removeSignalListener(signal, listener);
      });
      return () => listeners.forEach((remove) => remove());
    },
  };
}

if (import.meta.main) {
  Deno.exit(await runCli(Deno.args, denoIo()));
}
