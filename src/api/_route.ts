/**
 * How a route is declared: method, path, the valibot schemas of its inputs and outputs, and a
 * handler that receives validated input. The app registers these declarations and the OpenAPI
 * document is generated from the very same list, so the two cannot drift apart.
 *
 * Also the request body reader: JSON only, size-limited both by `Content-Length` and by counting
 * the bytes actually streamed (a chunked body cannot bypass the limit).
 *
 * @module
 */
import type { Context } from "hono";
import * as v from "valibot";
import { inexactNumber } from "../job/exact_json.ts";
import type { Database } from "../db/port.ts";
import type { JobStore } from "../job/job_store.ts";
import type { Logger } from "../runtime/logger.ts";
import type { Metrics } from "./metrics.ts";
import type { EventHub } from "./routes/events.ts";
import {
  PayloadTooLargeError,
  RequestValidationError,
  UnsupportedMediaTypeError,
  type ValidationIssue,
} from "./problem.ts";
import { RequestHeaders } from "./schemas.ts";

/** What every route module receives from the app factory. */
export interface ApiDeps {
  db: Database;
  store: JobStore;
  metrics: Metrics;
  events: EventHub;
  logger: Logger;
  version: string;
  /** The process runs sealed (the network guard is on); `/system` reports it with the database's flag. */
  sealed: boolean;
  /** Interval of SSE heartbeat comments, in milliseconds. */
  sseHeartbeatMs: number;
  /** Aborted at shutdown: open event streams end (clients resume elsewhere with Last-Event-ID). */
  signal: AbortSignal | undefined;
  /**
   * How long `/readyz` and `/metrics` wait for the database (the shorter of 5 s and the request
   * timeout); other requests are answered 503 after the request timeout.
   */
  databaseWaitMs: number;
}

/** The Hono environment of the API: the matched route pattern, for metrics. */
export type ApiEnv = { Variables: { routePattern: string } };

/** Any valibot schema. */
export type AnySchema = v.GenericSchema;

/** One documented response of a route. */
export interface RouteResponse {
  /** The HTTP status. */
  status: number;
  /** What it means. */
  description: string;
  /** The body schema (JSON), if any. */
  schema?: AnySchema;
  /** The media type when not `application/json`. */
  contentType?: string;
}

type Out<S> = S extends AnySchema ? v.InferOutput<S> : undefined;

/** What a handler receives: validated inputs plus the tenant and actor from the headers. */
export interface RouteInput<P, Q, B, H> {
  params: Out<P>;
  query: Out<Q>;
  /** The validated body; `undefined` when the body is optional and was not sent. */
  body: B extends AnySchema ? v.InferOutput<B> | undefined : undefined;
  headers: Out<H>;
  /** `X-Tenant-Id`, or `default`. */
  tenantId: string;
  /** `X-Actor`, if sent. */
  actor: string | undefined;
}

/** A route declaration. */
export interface RouteDefinition<P = undefined, Q = undefined, B = undefined, H = undefined> {
  method: "GET" | "POST";
  /** The full path in Hono syntax (`/api/v1/jobs/:id`). */
  path: string;
  /** The OpenAPI operationId. */
  operationId: string;
  /** One line. */
  summary: string;
  /** More detail (Markdown). */
  description?: string;
  /** The OpenAPI tag. */
  tag: string;
  /** Whether `X-Tenant-Id` / `X-Actor` apply (documented as header parameters). */
  tenant?: boolean;
  params?: P;
  query?: Q;
  /** Extra headers read by this route. */
  headers?: H;
  body?: B;
  /** Whether a request may omit the body (it is then `undefined`). */
  bodyOptional?: boolean;
  /** Success responses. */
  responses: RouteResponse[];
  /** Error statuses this route can answer with (problem+json). */
  errors: number[];
  /** Produces the response from validated input. */
  handler: (c: Context<ApiEnv>, input: RouteInput<P, Q, B, H>) => Response | Promise<Response>;
}

/** A route declaration with its input types erased (for lists of routes). */
export type Route = RouteDefinition<
  AnySchema | undefined,
  AnySchema | undefined,
  AnySchema | undefined,
  AnySchema | undefined
>;

/** Declares a route; the handler's input is typed from the schemas. */
export function defineRoute<
  P extends AnySchema | undefined = undefined,
  Q extends AnySchema | undefined = undefined,
  B extends AnySchema | undefined = undefined,
  H extends AnySchema | undefined = undefined,
>(definition: RouteDefinition<P, Q, B, H>): Route {
  return definition as unknown as Route;
}

/** Most issues listed in one validation problem. */
const MAX_ISSUES = 20;

function toIssues(where: ValidationIssue["in"], issues: readonly v.BaseIssue<unknown>[]) {
  return issues.flatMap((issue) => expandUnion(issue, v.getDotPath(issue) ?? "")).slice(
    0,
    MAX_ISSUES,
  ).map(({ issue, path }): ValidationIssue => ({
    in: where,
    path,
    message: issue.type === "strict_object" && issue.expected === "never"
      ? "Unknown field"
      : issue.message,
  }));
}

/**
 * A union that no option took (`error: "text" | { message, code?, ... }`) reports "Expected
 * (string | Object) but received Object"; when an option got past the value's type and failed
 * on a field inside it, its field issues say more, with their full path (`error.foo`: unknown
 * field). Sub-issues' paths are relative to the union's value.
 */
function expandUnion(
  issue: v.BaseIssue<unknown>,
  path: string,
): { issue: v.BaseIssue<unknown>; path: string }[] {
  if (issue.type === "union" && issue.issues) {
    const inner = issue.issues.filter((sub) => (v.getDotPath(sub) ?? "") !== "");
    if (inner.length > 0) {
      return inner.flatMap((sub) => {
        const subPath = v.getDotPath(sub)!;
        return expandUnion(sub, path ? `${path}.${subPath}` : subPath);
      });
    }
  }
  return [{ issue, path }];
}

/** The parts of a valibot schema {@linkcode arrayForObject} walks. */
interface SchemaNode {
  type: string;
  entries?: Record<string, SchemaNode>;
  wrapped?: SchemaNode;
  item?: SchemaNode;
  options?: SchemaNode[];
}

const OBJECT_TYPES = new Set(["object", "strict_object", "loose_object"]);
const ARRAY_TYPES = new Set(["array", "tuple", "unknown", "any"]);
const WRAPPER_TYPES = new Set(["optional", "nullable", "nullish", "exact_optional"]);

function unwrap(schema: SchemaNode): SchemaNode {
  return WRAPPER_TYPES.has(schema.type) && schema.wrapped ? unwrap(schema.wrapped) : schema;
}

/**
 * The dot path of the first JSON array in `value` where `schema` expects an object, or null.
 * valibot's object schemas accept an array and read its (absent) named keys, so `[]` would
 * pass as `{}`; JSON bodies are checked with this first.
 */
function arrayForObject(wrapped: SchemaNode, value: unknown, path: string): string | null {
  const schema = unwrap(wrapped);
  switch (schema.type) {
    case "array":
      if (!Array.isArray(value) || !schema.item) return null;
      for (const [index, element] of value.entries()) {
        const found = arrayForObject(schema.item, element, path ? `${path}.${index}` : `${index}`);
        if (found !== null) return found;
      }
      return null;
    case "union": {
      const options = (schema.options ?? []).map(unwrap);
      if (Array.isArray(value)) {
        const arrays = options.filter((option) => ARRAY_TYPES.has(option.type));
        if (arrays.length > 0) return arrayForObject(arrays[0]!, value, path);
        return options.some((option) => OBJECT_TYPES.has(option.type)) ? path : null;
      }
      for (const option of options) {
        if (!OBJECT_TYPES.has(option.type)) continue;
        const found = arrayForObject(option, value, path);
        if (found !== null) return found;
      }
      return null;
    }
    default:
      if (!OBJECT_TYPES.has(schema.type)) return null;
      if (Array.isArray(value)) return path;
      if (value === null || typeof value !== "object") return null;
      for (const [key, entry] of Object.entries(schema.entries ?? {})) {
        if (!Object.hasOwn(value, key)) continue;
        const found = arrayForObject(
          entry,
          (value as Record<string, unknown>)[key],
          path ? `${path}.${key}` : key,
        );
        if (found !== null) return found;
      }
      return null;
  }
}

function validate<S extends AnySchema>(
  schema: S,
  value: unknown,
  where: ValidationIssue["in"],
): v.InferOutput<S> {
  const array = where === "body"
    ? arrayForObject(schema as unknown as SchemaNode, value, "")
    : null;
  if (array !== null) {
    throw new RequestValidationError([
      { in: where, path: array, message: "Invalid type: Expected Object but received Array" },
    ]);
  }
  const result = v.safeParse(schema, value);
  if (!result.success) throw new RequestValidationError(toIssues(where, result.issues));
  return result.output;
}

function queryObject(c: Context): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [key, values] of Object.entries(c.req.queries())) {
    out[key] = values.length === 1 ? values[0]! : values;
  }
  return out;
}

/**
 * A header value as text. Header values reach us as bytes, one character per byte (Latin-1).
 * Clients send non-ASCII text either as UTF-8 (curl, most HTTP libraries: `tenantü` would
 * otherwise read as `tenantÃ¼`, another tenant) or as Latin-1 (`fetch` with a `ü`): bytes that
 * are valid UTF-8 are read as UTF-8, anything else as the Latin-1 characters they are.
 */
function headerText(value: string): string {
  if (!/[^\p{ASCII}]/u.test(value)) return value;
  const bytes = Uint8Array.from(value, (ch) => ch.charCodeAt(0) & 0xff);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return value;
  }
}

function headerObject(c: Context, schema: AnySchema): Record<string, string> {
  const out: Record<string, string> = {};
  const entries = (schema as unknown as { entries?: Record<string, unknown> }).entries ?? {};
  for (const name of Object.keys(entries)) {
    const value = c.req.header(name);
    if (value !== undefined) out[name] = headerText(value);
  }
  return out;
}

/** Turns a declaration into a Hono handler that validates before calling it. */
export function toHandler(
  route: Route,
  options: { bodyLimitBytes: number },
): (c: Context<ApiEnv>) => Promise<Response> {
  return async (c) => {
    c.set("routePattern", route.path);
    const common: RequestHeaders = route.tenant
      ? validate(RequestHeaders, headerObject(c, RequestHeaders), "header")
      : {};
    const params = route.params ? validate(route.params, c.req.param(), "path") : undefined;
    const query = route.query ? validate(route.query, queryObject(c), "query") : undefined;
    const headers = route.headers
      ? validate(route.headers, headerObject(c, route.headers), "header")
      : undefined;
    let body: unknown = undefined;
    if (route.body) {
      const read = await readJsonBody(c.req.raw, options.bodyLimitBytes);
      if (read.present || !route.bodyOptional) {
        body = validate(route.body, read.present ? read.value : undefined, "body");
      }
    } else {
      await discardBody(c.req.raw, options.bodyLimitBytes);
    }
    return await route.handler(c, {
      params,
      query,
      body,
      headers,
      tenantId: common["x-tenant-id"] ?? "default",
      actor: common["x-actor"],
    } as RouteInput<AnySchema, AnySchema, AnySchema, AnySchema>);
  };
}

/** The result of {@linkcode readJsonBody}. */
export type BodyRead = { present: false } | { present: true; value: unknown };

/** Deepest JSON nesting accepted (deeper documents are refused with 400, never a 500). */
export const MAX_JSON_DEPTH = 100;

const JSON_MEDIA_TYPE = /^application\/(?:[a-z0-9.+-]+\+)?json$/;

/** Whether a `Content-Type` header names JSON in UTF-8. */
export function isJsonContentType(header: string | null): boolean {
  if (!header) return false;
  const [type, ...params] = header.split(";").map((part) => part.trim().toLowerCase());
  if (!type || !JSON_MEDIA_TYPE.test(type)) return false;
  for (const param of params) {
    const [name, value] = param.split("=").map((s) => s.trim().replace(/^"|"$/g, ""));
    if (name === "charset" && value !== "utf-8" && value !== "utf8") return false;
  }
  return true;
}

/** Reads at most `limit` bytes of `request`'s body; throws {@linkcode PayloadTooLargeError} beyond. */
async function readBytes(request: Request, limit: number): Promise<Uint8Array> {
  const declared = request.headers.get("content-length");
  if (declared !== null && /^\d+$/.test(declared) && Number(declared) > limit) {
    await request.body?.cancel().catch(() => {});
    throw new PayloadTooLargeError(limit);
  }
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel().catch(() => {});
        throw new PayloadTooLargeError(limit);
      }
      chunks.push(value);
    }
  } catch (error) {
    if (error instanceof PayloadTooLargeError) throw error;
    throw new RequestValidationError([{
      in: "body",
      path: "",
      message: "The request body could not be read",
    }], { cause: error });
  } finally {
    reader.releaseLock();
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

/** Consumes (and size-limits) a body that a route does not use. */
async function discardBody(request: Request, limit: number): Promise<void> {
  if (request.body && request.method !== "GET" && request.method !== "HEAD") {
    await readBytes(request, limit);
  }
}

function depthExceeds(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop()!;
    if (item === null || typeof item !== "object") continue;
    if (depth > max) return true;
    for (const child of Array.isArray(item) ? item : Object.values(item)) {
      if (child !== null && typeof child === "object") stack.push([child, depth + 1]);
    }
  }
  return false;
}

/**
 * Reads a JSON request body: `{ present: false }` when there is none (or it is empty);
 * 415 when it is not `application/json` (UTF-8); 413 beyond `limit` bytes; 400 when it is not
 * well-formed UTF-8 JSON or nests deeper than {@linkcode MAX_JSON_DEPTH}.
 */
export async function readJsonBody(request: Request, limit: number): Promise<BodyRead> {
  const contentType = request.headers.get("content-type");
  const declared = request.headers.get("content-length");
  if (!request.body || declared === "0") return { present: false };
  const encoding = request.headers.get("content-encoding")?.trim().toLowerCase();
  if (encoding && encoding !== "identity") {
    await request.body.cancel().catch(() => {});
    throw new UnsupportedMediaTypeError(
      contentType,
      `Content-Encoding "${encoding}" is not supported: send the body uncompressed`,
    );
  }
  if (declared !== null && !isJsonContentType(contentType)) {
    await request.body.cancel().catch(() => {});
    throw new UnsupportedMediaTypeError(contentType);
  }
  const bytes = await readBytes(request, limit);
  if (bytes.byteLength === 0) return { present: false };
  if (!isJsonContentType(contentType)) throw new UnsupportedMediaTypeError(contentType);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new RequestValidationError([{
      in: "body",
      path: "",
      message: "The body is not valid UTF-8",
    }]);
  }
  if (text.trim() === "") return { present: false };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message : "syntax error";
    throw new RequestValidationError([{
      in: "body",
      path: "",
      message: `Malformed JSON: ${reason}`,
    }]);
  }
  const inexact = inexactNumber(text);
  if (inexact !== null) {
    throw new RequestValidationError([{
      in: "body",
      path: "",
      message: `The number ${inexact} cannot be kept exactly (JSON numbers are read as ` +
        "64-bit floating point); send it as a string",
    }]);
  }
  if (depthExceeds(value, MAX_JSON_DEPTH)) {
    throw new RequestValidationError([{
      in: "body",
      path: "",
      message: `JSON nests deeper than ${MAX_JSON_DEPTH} levels`,
    }]);
  }
  return { present: true, value };
}
