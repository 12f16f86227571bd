/**
 * The OpenAPI document: generated from the same route declarations and valibot schemas that
 * validate requests, so every route appears and every schema reference resolves.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/api/app.ts";
import type { Database } from "../../src/db/port.ts";
import { clientOf } from "./_client.ts";

/** A database that is never called: /openapi.json needs none. */
const NO_DB: Database = {
  kind: "postgres",
  query: () => Promise.reject(new Error("no database in this test")),
  transaction: () => Promise.reject(new Error("no database in this test")),
  listen: () => Promise.reject(new Error("no database in this test")),
  close: () => Promise.resolve(),
};

// deno-lint-ignore no-explicit-any
async function document(): Promise<{ app: ReturnType<typeof createApp>; doc: any }> {
  const app = createApp({ db: NO_DB, version: "9.9.9" });
  const res = await clientOf((request) => app.request(request)).get("/openapi.json");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  return { app, doc: res.body };
}

/** The routes of SPEC section 6. */
const SPEC_ROUTES: Array<[string, string]> = [
  ["post", "/api/v1/jobs"],
  ["post", "/api/v1/workflows"],
  ["get", "/api/v1/jobs"],
  ["get", "/api/v1/jobs/{id}"],
  ["get", "/api/v1/jobs/{id}/history"],
  ["get", "/api/v1/jobs/{id}/timeline"],
  ["post", "/api/v1/jobs/{id}/schedule"],
  ["post", "/api/v1/jobs/{id}/cancel"],
  ["post", "/api/v1/jobs/{id}/retry"],
  ["post", "/api/v1/jobs/claim"],
  ["post", "/api/v1/jobs/{id}/heartbeat"],
  ["post", "/api/v1/jobs/{id}/complete"],
  ["post", "/api/v1/jobs/{id}/fail"],
  ["get", "/api/v1/events"],
  ["get", "/api/v1/system"],
  ["get", "/healthz"],
  ["get", "/readyz"],
  ["get", "/metrics"],
  ["get", "/openapi.json"],
];

Deno.test("openapi.json is an OpenAPI 3.1 document with every route of SPEC section 6", async () => {
  const { doc } = await document();
  assert.equal(doc.openapi, "3.1.0");
  assert.equal(doc.info.version, "9.9.9");
  for (const [method, path] of SPEC_ROUTES) {
    assert.ok(doc.paths[path]?.[method], `${method.toUpperCase()} ${path} is missing`);
  }
});

Deno.test("openapi.json lists every route the app registers, and nothing else", async () => {
  const { app, doc } = await document();
  const registered = new Set(
    app.routes
      .filter((route) => route.method !== "ALL")
      .map((route) =>
        `${route.method.toLowerCase()} ${route.path.replace(/:([A-Za-z_]\w*)/g, "{$1}")}`
      ),
  );
  const documented = new Set(
    Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops as object).map((method) => `${method} ${path}`)
    ),
  );
  assert.deepEqual([...documented].sort(), [...registered].sort());
  const ids = Object.values(doc.paths).flatMap((ops) =>
    Object.values(ops as Record<string, { operationId: string }>).map((op) => op.operationId)
  );
  assert.equal(new Set(ids).size, ids.length, "operationIds are unique");
});

Deno.test("openapi.json schemas come from the valibot schemas (bodies, parameters, responses)", async () => {
  const { doc } = await document();
  const create = doc.paths["/api/v1/jobs"].post;
  const body = create.requestBody.content["application/json"].schema;
  assert.equal(create.requestBody.required, true);
  assert.equal(body.type, "object");
  assert.deepEqual(body.required, ["type"]);
  assert.equal(body.additionalProperties, false);
  assert.equal(body.properties.type.maxLength, 200);
  assert.equal(body.properties.retryPolicy.properties.maxRetries.maximum, 100);
  assert.equal(body.properties.dependsOn.items.format, "uuid");
  assert.deepEqual(body.properties.notBefore.anyOf.map((s: { type: string }) => s.type), [
    "string",
    "null",
  ]);
  assert.equal(body.properties.notBefore.anyOf[0].format, "date-time");
  assert.ok(create.responses["201"] && create.responses["200"]);
  assert.deepEqual(create.responses["201"].content["application/json"].schema, {
    $ref: "#/components/schemas/Job",
  });
  assert.ok(create.responses["409"].content["application/problem+json"]);

  const list = doc.paths["/api/v1/jobs"].get;
  const names = list.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`);
  for (
    const name of [
      "query:status",
      "query:type",
      "query:limit",
      "query:cursor",
      "header:X-Tenant-Id",
      "header:X-Actor",
    ]
  ) {
    assert.ok(names.includes(name), `${name} is documented`);
  }
  const get = doc.paths["/api/v1/jobs/{id}"].get;
  const id = get.parameters.find((p: { name: string }) => p.name === "id");
  assert.deepEqual([id.in, id.required, id.schema.format], ["path", true, "uuid"]);

  const cancel = doc.paths["/api/v1/jobs/{id}/cancel"].post;
  assert.equal(cancel.requestBody.required, false);
  const events = doc.paths["/api/v1/events"].get;
  assert.ok(events.responses["200"].content["text/event-stream"]);
  assert.ok(events.parameters.some((p: { name: string }) => p.name === "Last-Event-ID"));

  const job = doc.components.schemas.Job;
  for (
    const field of [
      "id",
      "tenantId",
      "status",
      "attempt",
      "leaseExpiresAt",
      "lastError",
      "completedAt",
    ]
  ) {
    assert.ok(job.properties[field], `Job.${field}`);
  }
  assert.deepEqual(job.properties.status.enum, [
    "pending",
    "scheduled",
    "running",
    "completed",
    "failed",
    "cancelled",
  ]);
});

Deno.test("openapi.json: every $ref resolves", async () => {
  const { doc } = await document();
  const refs: string[] = [];
  (function walk(node: unknown) {
    if (Array.isArray(node)) return node.forEach(walk);
    if (node && typeof node === "object") {
      for (const [key, value] of Object.entries(node)) {
        if (key === "$ref" && typeof value === "string") refs.push(value);
        else walk(value);
      }
    }
  })(doc);
  assert.ok(refs.length > 10);
  for (const ref of new Set(refs)) {
    const target = ref.replace(/^#\//, "").split("/").reduce(
      // deno-lint-ignore no-explicit-any
      (node: any, key) => node?.[key],
      doc,
    );
    assert.ok(target, `${ref} resolves`);
  }
});
