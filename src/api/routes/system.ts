/**
 * Operational routes: `/api/v1/system`, and `/healthz`, `/readyz`, `/metrics`, `/openapi.json`
 * (served at the root, outside the prefix, and also under `/api/v1/` for clients that only
 * know the prefix).
 *
 * - `/healthz`: the process is alive (no database access): 200 `{ status: "ok" }`.
 * - `/readyz`: the database answers and every migration embedded in this build is applied with
 *   the same checksum: 200 `{ status: "ready", ... }`, otherwise 503 problem
 *   (`database_unavailable` or `migrations_pending`).
 *
 * @module
 */
import { MIGRATIONS } from "../../db/migrate.ts";
import type { Queryable } from "../../db/port.ts";
import { METRICS_CONTENT_TYPE } from "../metrics.ts";
import { buildOpenApiDocument } from "../openapi.ts";
import { databaseTimeoutResponse, HttpProblemError } from "../problem.ts";
import { withDeadline } from "../../deadline.ts";
import { HealthResponse, ReadyResponse, SystemResponse } from "../schemas.ts";
import { type ApiDeps, defineRoute, type Route } from "../_route.ts";
import { API_PREFIX } from "./jobs.ts";

/** The `schema_migrations` key of an embedded file (as `src/db/migrate.ts` records it). */
function migrationVersion(migration: { name: string; kind: string }): string {
  return migration.kind === "versioned"
    ? migration.name.slice(0, migration.name.indexOf("_"))
    : `R__${migration.name.replace(/\.sql$/, "")}`;
}

/** Names the embedded migrations that are not applied (or applied with another checksum). */
export async function pendingMigrations(db: Queryable): Promise<string[]> {
  const [exists] = await db.query<{ table: string | null }>(
    `select to_regclass('jobengine.schema_migrations')::text as table`,
  );
  if (!exists?.table) return MIGRATIONS.map((m) => m.name);
  const rows = await db.query<{ version: string; checksum: string }>(
    `select version, checksum from jobengine.schema_migrations`,
  );
  const applied = new Map(rows.map((row) => [row.version, row.checksum]));
  return MIGRATIONS.filter((m) => applied.get(migrationVersion(m)) !== m.checksum).map((m) =>
    m.name
  );
}

/** The operational routes; `allRoutes` is read when `/openapi.json` is first served. */
export function systemRoutes(deps: ApiDeps, allRoutes: () => readonly Route[]): Route[] {
  let openApi: string | null = null;
  const operational = (alias: boolean): Route[] => {
    const prefix = alias ? API_PREFIX : "";
    const suffix = alias ? "Prefixed" : "";
    return [
      defineRoute({
        method: "GET",
        path: `${prefix}/healthz`,
        operationId: `healthz${suffix}`,
        summary: "Liveness: the process is up (no database access)",
        tag: "system",
        responses: [{ status: 200, description: "Alive", schema: HealthResponse }],
        errors: [],
        handler: (c) => c.json({ status: "ok" as const }),
      }),
      defineRoute({
        method: "GET",
        path: `${prefix}/readyz`,
        operationId: `readyz${suffix}`,
        summary: "Readiness: the database answers and its migrations are current",
        tag: "system",
        responses: [{ status: 200, description: "Ready", schema: ReadyResponse }],
        errors: [503],
        handler: async (c) => {
          // a database that hangs is not ready either: answer within deps.databaseWaitMs
          const pending = await withDeadline(
            pendingMigrations(deps.db),
            deps.databaseWaitMs,
            () => null,
          );
          if (pending === null) return databaseTimeoutResponse(c.req.path, deps.databaseWaitMs);
          if (pending.length > 0) {
            throw new HttpProblemError(
              503,
              "migrations_pending",
              `The database schema is not current: ${pending.length} migration(s) pending`,
              { extras: { pending }, headers: { "retry-after": "5" } },
            );
          }
          return c.json({
            status: "ready" as const,
            database: deps.db.kind,
            migrations: MIGRATIONS.length,
          });
        },
      }),
      defineRoute({
        method: "GET",
        path: `${prefix}/metrics`,
        operationId: `metrics${suffix}`,
        summary: "Prometheus metrics (text exposition format)",
        tag: "system",
        responses: [{
          status: 200,
          description: "Metrics",
          contentType: "text/plain; version=0.0.4",
        }],
        // 200 even while the database is down (jobengine_database_up 0)
        errors: [],
        handler: async (c) => {
          const body = await deps.metrics.render(deps.db, deps.databaseWaitMs);
          return c.body(body, 200, { "content-type": METRICS_CONTENT_TYPE });
        },
      }),
      defineRoute({
        method: "GET",
        path: `${prefix}/openapi.json`,
        operationId: `openapi${suffix}`,
        summary: "This OpenAPI 3.1 document (generated from the valibot schemas)",
        tag: "system",
        responses: [{ status: 200, description: "OpenAPI 3.1 document" }],
        errors: [],
        handler: (c) => {
          openApi ??= JSON.stringify(
            buildOpenApiDocument(allRoutes(), { version: deps.version }),
          );
          return c.body(openApi, 200, { "content-type": "application/json" });
        },
      }),
    ];
  };
  return [
    defineRoute({
      method: "GET",
      path: `${API_PREFIX}/system`,
      operationId: "getSystem",
      summary: "Version, sealed mode and database kind",
      description: "`sealed` is `jobengine.is_sealed()`, or true when this process was started " +
        "sealed (JOBENGINE_SEALED).",
      tag: "system",
      responses: [{ status: 200, description: "System information", schema: SystemResponse }],
      errors: [503],
      handler: async (c) => {
        const sealed = deps.sealed || await deps.store.isSealed();
        return c.json({ version: deps.version, sealed, database: deps.db.kind });
      },
    }),
    ...operational(false),
    ...operational(true),
  ];
}
