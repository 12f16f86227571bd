/**
 * The HTTP load generator, run as its own process so that it does not share the server's event
 * loop: autocannon (npm) POSTs one job per request over keep-alive connections and prints a
 * JSON summary on stdout.
 *
 * Usage: `deno run -A bench/_load_client.ts '{"url":"...","connections":8,"seconds":8}'`
 *
 * @module
 */
// A bench-only dependency (pinned in deno.json).
import autocannon from "autocannon";

/** What the parent passes in. */
export interface LoadRequest {
  url: string;
  connections: number;
  seconds: number;
  body: string;
}

/** What the parent gets back. */
export interface LoadSummary {
  requestsPerSecond: number;
  total: number;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  latencyP50: number;
  latencyP99: number;
  seconds: number;
}

if (import.meta.main) {
  const request = JSON.parse(Deno.args[0] ?? "{}") as LoadRequest;
  const result = await autocannon({
    url: request.url,
    method: "POST",
    connections: request.connections,
    duration: request.seconds,
    headers: { "content-type": "application/json" },
    body: request.body,
  });
  const ok = result["2xx"];
  const summary: LoadSummary = {
    requestsPerSecond: ok / (result.duration || request.seconds),
    total: result.requests.total,
    ok,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    latencyP50: result.latency.p50,
    latencyP99: result.latency.p99,
    seconds: result.duration,
  };
  console.log(JSON.stringify(summary));
}
