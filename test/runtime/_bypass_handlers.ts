/**
 * Handlers for the sealed-launch test: `bypass` opens a TCP socket with `node:net`, which the
 * network guard does not see, so only the runtime's `--allow-net` can stop it; `importer` asks
 * Deno's module loader to download a module, which only `--cached-only --no-remote` stop.
 *
 * @module
 */
import { connect } from "node:net";

/** Connects to 127.0.0.1:$BYPASS_PORT and reports what happened. */
function bypass(): Promise<{ connected: boolean; error?: string }> {
  const port = Number(Deno.env.get("BYPASS_PORT"));
  return new Promise((resolve) => {
    try {
      const socket = connect({ host: "127.0.0.1", port }, () => {
        socket.end();
        resolve({ connected: true });
      });
      socket.on("error", (error) => resolve({ connected: false, error: String(error) }));
    } catch (error) {
      resolve({ connected: false, error: String(error) });
    }
  });
}

/** The same connection, but the handler lets the runtime's refusal propagate. */
function bypassThrows(): Promise<void> {
  const port = Number(Deno.env.get("BYPASS_PORT"));
  return new Promise((resolve, reject) => {
    try {
      const socket = connect({ host: "127.0.0.1", port }, () => {
        socket.end();
        resolve();
      });
      socket.on("error", reject);
    } catch (error) {
      reject(error);
    }
  });
}

/**
 * Imports a module from the internet (a specifier built at run time, so Deno cannot fetch it
 * when the module loads). With `HTTPS_PROXY` pointing at the test's listener, any download Deno
 * attempts shows up there as a connection.
 */
async function importer(): Promise<{ imported: boolean; error?: string }> {
  try {
    await import(["https://", "esm.sh/is-odd@3.0.1"].join(""));
    return { imported: true };
  } catch (error) {
    return { imported: false, error: String(error) };
  }
}

/** Fetches the allowlisted listener at $ALLOWED_PORT (with a proxy in the environment, it would go there). */
async function fetchAllowed(): Promise<{ status: number }> {
  const response = await fetch(`http://127.0.0.1:${Deno.env.get("ALLOWED_PORT")}/allowed`);
  await response.body?.cancel();
  return { status: response.status };
}

/** Points Deno's fetch at a proxy (the listener at $BYPASS_PORT), then fetches the allowlisted host. */
async function setProxy(): Promise<{ status: number }> {
  Deno.env.set("HTTP_PROXY", `http://127.0.0.1:${Deno.env.get("BYPASS_PORT")}`);
  return await fetchAllowed();
}

/** The handlers the engine loads through `JOBENGINE_HANDLERS`. */
export default { bypass, bypassThrows, importer, fetchAllowed, setProxy };
