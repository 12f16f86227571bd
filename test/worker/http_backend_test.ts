/**
 * The worker's HTTP backend against a stub API that cannot reach its database for a while
 * (503 `database_unavailable`): completions it could not send make `completeMany` throw
 * `DatabaseUnavailableError`, so that the worker sends the batch again while the leases may
 * hold; the ones that went through are not sent twice. Before, it gave up after three tries
 * and the worker dropped the finished jobs' results (they ran again after their leases lapsed).
 */
import assert from "node:assert/strict";
import { createHttpBackend } from "../../src/worker/_backend.ts";
import { DatabaseUnavailableError } from "../../src/errors.ts";

Deno.test("HTTP backend: completions the API could not take throw DatabaseUnavailableError; a retry sends only those", async () => {
  const calls = new Map<string, number>();
  let failing = new Set(["b"]);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const id = /\/jobs\/([^/]+)\/complete$/.exec(new URL(request.url).pathname)?.[1] ?? "";
    calls.set(id, (calls.get(id) ?? 0) + 1);
    if (failing.has(id)) {
      return Response.json(
        {
          type: "about:blank",
          title: "Service Unavailable",
          status: 503,
          code: "database_unavailable",
        },
        { status: 503, headers: { "content-type": "application/problem+json" } },
      );
    }
    return Response.json({ id, status: "completed" });
  });
  try {
    const backend = createHttpBackend({
      baseUrl: `http://127.0.0.1:${server.addr.port}`,
      workerId: "w",
      types: ["t"],
      leaseSeconds: 30,
      eventStream: false,
    });
    const batch = ["a", "b"].map((id) => ({
      id,
      leaseId: `lease-${id}`,
      tenantId: "default",
      result: 1,
    }));
    await assert.rejects(() => backend.completeMany(batch), DatabaseUnavailableError);
    assert.equal(calls.get("a"), 1);
    assert.equal(calls.get("b"), 3, "tried a few times before giving the batch back");

    failing = new Set();
    const done = await backend.completeMany(batch);
    assert.deepEqual([...done].sort(), ["a", "b"]);
    assert.equal(calls.get("a"), 1, "the completion that went through is not sent again");
    assert.equal(calls.get("b"), 4);
  } finally {
    await server.shutdown();
  }
});
