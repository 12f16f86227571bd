/**
 * Handlers for the start-up tests: `fetch` calls `fetch()` on 127.0.0.1:$FETCH_PORT, the way
 * any handler reaches the network, so the network guard sees it.
 *
 * @module
 */

/** Fetches http://127.0.0.1:$FETCH_PORT/ and answers the status. */
async function fetchLocal(): Promise<{ status: number }> {
  const response = await fetch(`http://127.0.0.1:${Deno.env.get("FETCH_PORT")}/`);
  await response.body?.cancel();
  return { status: response.status };
}

/** The handlers the engine loads through `JOBENGINE_HANDLERS`. */
export default { fetch: fetchLocal };
