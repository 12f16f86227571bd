/**
 * The HTTP API (SPEC section 6): a thin factory that wires the route modules, the one error
 * handler and the request metrics into a Hono app. Nothing here is runtime-specific: the app
 * (or {@linkcode createFetchHandler}) runs on any host with Web-standard `Request`/`Response`.
 *
 * @example
 * ```ts
 * const app = createApp({ db });
 * Deno.serve({ port: 8080 }, app.fetch);
 * ```
 *
 * @module
 */
import { Hono } from "hono";
import { methodNotAllowed } from "hono/method-not-allowed";
import type { Database } from "../db/port.ts";
import type { TimelineEventEmitter } from "../events/timeline_event_emitter.ts";
import { JobStore } from "../job/job_store.ts";
import { type Logger, SILENT_LOGGER } from "../runtime/logger.ts";
import { DATABASE_WAIT_MS, Metrics } from "./metrics.ts";
import { withDeadline } from "../deadline.ts";
import {
  createErrorHandler,
  databaseTimeoutResponse,
  methodNotAllowedResponse,
  notFoundResponse,
} from "./problem.ts";
import { createEventHub } from "./routes/events.ts";
import { eventRoutes } from "./routes/events.ts";
import { jobRoutes } from "./routes/jobs.ts";
import { systemRoutes } from "./routes/system.ts";
import { workflowRoutes } from "./routes/workflows.ts";
import { type ApiDeps, type ApiEnv, type Route, toHandler } from "./_route.ts";
import denoJson from "../../deno.json" with { type: "json" };

/** The default request body limit: 1 MiB. */
export const DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024;

/** The default {@linkcode AppOptions.requestTimeoutMs}: 30 s. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/** Methods counted under their own name in the request metrics; any other is `other`. */
const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** The version reported by `/api/v1/system` unless {@linkcode AppOptions.version} is given. */
export const VERSION: string = denoJson.version;

/** Options of {@linkcode createApp}. */
export interface AppOptions {
  /** The database. */
  db: Database;
  /** The job store (default: a new one over `db`, with group intake on). */
  store?: JobStore;
  /** Reported by `/api/v1/system` (default: the package version). */
  version?: string;
  /** Largest accepted request body (default 1 MiB; `JOBENGINE_BODY_LIMIT` in `deno task start`). */
  bodyLimitBytes?: number;
  /**
   * The emitter behind `GET /events` (default: one created on first use and stopped when the
   * last stream closes). A caller-provided emitter is started if needed and never stopped here.
   */
  emitter?: TimelineEventEmitter;
  /** The metrics registry (default: a new one). */
  metrics?: Metrics;
  /** Whether the process runs sealed; `/system` reports sealed if this or the database says so. */
  sealed?: boolean;
  /** Where errors are logged (default silent). */
  logger?: Logger;
  /** SSE heartbeat interval in milliseconds (default 15000). */
  sseHeartbeatMs?: number;
  /**
   * How long a request may take before it is answered 503 `database_unavailable` (default
   * {@linkcode DEFAULT_REQUEST_TIMEOUT_MS}; 0 for no limit). A database that stops answering
   * without closing its connections (a frozen host, a network partition) would otherwise hold
   * every request open for as long as TCP does. The event stream is exempt.
   */
  requestTimeoutMs?: number;
  /**
   * Abort at shutdown: open event streams end, so that a graceful server shutdown does not wait
   * for endless responses (clients reconnect and resume with `Last-Event-ID`).
   */
  signal?: AbortSignal;
}

/** Creates the Hono app. */
export function createApp(options: AppOptions): Hono<ApiEnv> {
  const logger = options.logger ?? SILENT_LOGGER;
  const bodyLimitBytes = options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const deps: ApiDeps = {
    db: options.db,
    store: options.store ?? new JobStore(options.db, { groupCreates: true }),
    metrics: options.metrics ?? new Metrics(),
    events: createEventHub(options.db, { emitter: options.emitter, logger }),
    logger,
    version: options.version ?? VERSION,
    sealed: options.sealed ?? false,
    sseHeartbeatMs: options.sseHeartbeatMs ?? 15_000,
    signal: options.signal,
    databaseWaitMs: Math.min(DATABASE_WAIT_MS, requestTimeoutMs > 0 ? requestTimeoutMs : Infinity),
  };

  const app = new Hono<ApiEnv>();
  app.use(async (c, next) => {
    const started = performance.now();
    await next();
    const route = c.get("routePattern") ?? "unmatched";
    // (the method as sent would let any client add series without bound)
    const method = KNOWN_METHODS.has(c.req.method) ? c.req.method : "other";
    deps.metrics.observeRequest(route, method, c.res.status);
    logger.debug("HTTP request", {
      method: c.req.method,
      route,
      status: c.res.status,
      ms: Math.round((performance.now() - started) * 10) / 10,
    });
  });
  if (requestTimeoutMs > 0) {
    app.use(async (c, next) => {
      // the event stream is endless; readiness and metrics wait less, and answer themselves
      if (/\/(events|readyz|metrics)$/.test(c.req.path)) return await next();
      // the handler's errors become responses inside next(); nothing is left to reject
      const timedOut = await withDeadline(
        next().then(() => false, () => false),
        requestTimeoutMs,
        () => true,
      );
      if (timedOut) {
        logger.warn("HTTP request timed out waiting for the database", {
          method: c.req.method,
          path: c.req.path,
          ms: requestTimeoutMs,
        });
        c.res = databaseTimeoutResponse(c.req.path, requestTimeoutMs);
      }
    });
  }
  app.use(methodNotAllowed({ app, onMethodNotAllowed: methodNotAllowedResponse }));

  const routes: Route[] = [];
  routes.push(
    ...jobRoutes(deps),
    ...workflowRoutes(deps),
    ...eventRoutes(deps),
    ...systemRoutes(deps, () => routes),
  );
  // A literal path that a parameter route also matches (`GET /jobs/claim` is `GET /jobs/:id`
  // with id "claim"): its other methods are 405, as on any known route, not the parameter
  // route's 400. Middleware (registered before the routes), so it adds no route to document.
  const literal = new Map<string, Set<string>>();
  for (const route of routes) {
    if (!route.path.includes(":")) {
      literal.set(route.path, (literal.get(route.path) ?? new Set()).add(route.method));
    }
  }
  const parameterised = routes
    .filter((route) => route.path.includes(":"))
    .map((route) => new RegExp(`^${route.path.replace(/:[A-Za-z_]\w*/g, "[^/]+")}$`));
  for (const [path, methods] of literal) {
    if (!parameterised.some((pattern) => pattern.test(path))) continue;
    const allowed = [...methods, ...(methods.has("GET") ? ["HEAD"] : [])];
    app.use(path, async (c, next) => {
      if (allowed.includes(c.req.method)) return await next();
      c.set("routePattern", path);
      return methodNotAllowedResponse(c, allowed);
    });
  }
  for (const route of routes) {
    app.on(route.method, route.path, toHandler(route, { bodyLimitBytes }));
  }
  app.notFound(notFoundResponse);
  app.onError(createErrorHandler({ logger }));
  return app;
}

/** Creates a plain `fetch` handler for any Web-standard host (Deno, Bun, workers, Node adapters). */
export function createFetchHandler(
  options: AppOptions,
): (request: Request) => Promise<Response> {
  const app = createApp(options);
  return async (request) => await app.fetch(request);
}
