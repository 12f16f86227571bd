/**
 * Handlers for the sealed-launch test: `bypass` opens a TCP socket with `node:net`, which the
 * network guard does not see, so only the runtime's `--allow-net` can stop it.
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

/** The handlers the engine loads through `JOBENGINE_HANDLERS`. */
export default { bypass };
