import assert from "node:assert/strict";
import { createApp } from "../../src/api/app.ts";
import { JobScheduler } from "../../src/scheduler/job_scheduler.ts";
import { withStore } from "../_store.ts";
import { until } from "../_wait.ts";

Deno.test("sealed over HTTP: requiresNetwork jobs stay pending, schedule is 409 sealed_mode, unsealing releases them", async () => {
  await withStore(async ({ db, store }) => {
    const app = createApp({ db, store });
    const scheduler = new JobScheduler(db, { intervalMs: 100 });
    await store.setSealed(true);
    await scheduler.start();
    try {
      const system = await (await app.request("/api/v1/system")).json();
      assert.equal(system.sealed, true);

      const post = (path: string, body?: unknown) =>
        app.request(path, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      const created = await post("/api/v1/jobs", {
        type: "webhook",
        payload: {},
        requiresNetwork: true,
      });
      assert.equal(created.status, 201);
      const net = await created.json();
      const local = await (await post("/api/v1/jobs", { type: "local", payload: {} })).json();

      // the scheduler promotes the local job but holds the network job back
      await until(
        async () => (await store.get(local.id)).status === "scheduled",
        5000,
        "the local job",
      );
      await until(
        async () => (await store.get(net.id)).blockedReason === "sealed_mode",
        5000,
        "the block",
      );
      const held = await (await app.request(`/api/v1/jobs/${net.id}`)).json();
      assert.equal(held.status, "pending");
      assert.equal(held.blockedReason, "sealed_mode");

      const refused = await post(`/api/v1/jobs/${net.id}/schedule`);
      assert.equal(refused.status, 409);
      assert.match(refused.headers.get("content-type") ?? "", /application\/problem\+json/);
      assert.equal((await refused.json()).code, "sealed_mode");

      const timeline = await (await app.request(`/api/v1/jobs/${net.id}/timeline`)).json();
      const blocked = timeline.items.filter((e: { type: string }) => e.type === "job.blocked");
      assert.equal(blocked.length, 1, "exactly one job.blocked event");
      assert.equal(blocked[0].data.reason, "sealed_mode");

      await store.setSealed(false);
      await until(
        async () => (await store.get(net.id)).status === "scheduled",
        5000,
        "unsealed scheduling",
      );
      const after = await (await app.request("/api/v1/system")).json();
      assert.equal(after.sealed, false);
    } finally {
      await scheduler.stop();
    }
  });
});
