/**
 * The one place errors become HTTP responses: RFC 9457 problem details
 * (`application/problem+json`) with a stable `code`.
 *
 * | error | status | code |
 * |---|---|---|
 * | request validation (valibot), malformed JSON, `InvalidArgumentError` (`JE009`), SQL data and integrity errors (classes 22, 23) | 400 | `validation_failed` (with `issues`) |
 * | `InvalidDependencyError` (`JE005`) | 400 | `validation_failed` (with `issues` on `dependsOn` and `reason: "invalid_dependency"`) |
 * | `JobNotFoundError` (`JE004`), unknown route | 404 | `not_found` |
 * | wrong method on a known route | 405 | `method_not_allowed` (with an `Allow` header) |
 * | `InvalidTransitionError` (`JE001`) | 409 | `invalid_transition` (with `from`, `to`) |
 * | `LeaseMismatchError` (`JE002`) | 409 | `lease_mismatch` |
 * | `SealedModeError` (`JE003`) | 409 | `sealed_mode` |
 * | `IdempotencyConflictError` (`JE006`) | 409 | `idempotency_conflict` |
 * | `DependenciesPendingError` (`JE007`) | 409 | `dependencies_pending` |
 * | body over the limit | 413 | `payload_too_large` |
 * | body that is not `application/json` | 415 | `unsupported_media_type` |
 * | `DatabaseUnavailableError` | 503 | `database_unavailable` (with `Retry-After`) |
 * | anything else | 500 | `internal_error` (logged; no message, no stack) |
 *
 * @module
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import {
  AppendOnlyError,
  DatabaseUnavailableError,
  DependenciesPendingError,
  fromDatabaseError,
  IdempotencyConflictError,
  InvalidArgumentError,
  InvalidDependencyError,
  InvalidTransitionError,
  isClientDataError,
  JobEngineError,
  JobNotFoundError,
  LeaseMismatchError,
  SealedModeError,
} from "../errors.ts";
import type { Logger } from "../runtime/logger.ts";

/** The media type of every error response. */
export const PROBLEM_CONTENT_TYPE = "application/problem+json";

/** Seconds a client should wait before retrying after a 503. */
export const RETRY_AFTER_SECONDS = 5;

/** One reason a request was refused by validation. */
export interface ValidationIssue {
  /** Where the value was: `body`, `query`, `path` or `header`. */
  in: "body" | "query" | "path" | "header";
  /** The dotted path of the value inside that place (`retryPolicy.maxRetries`), or "" for all of it. */
  path: string;
  /** What is wrong, in a sentence. */
  message: string;
}

/** An RFC 9457 problem document with jobengine's stable `code`. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  instance?: string;
  [extra: string]: unknown;
}

/** An error that already knows its HTTP status and problem `code`. */
export class HttpProblemError extends Error {
  /** The HTTP status. */
  readonly status: number;
  /** The stable problem `code`. */
  readonly code: string;
  /** Extra members of the problem document. */
  readonly extras: Record<string, unknown>;
  /** Extra response headers. */
  readonly headers: Record<string, string>;
  /** Creates the error. */
  constructor(
    status: number,
    code: string,
    message: string,
    options: {
      extras?: Record<string, unknown>;
      headers?: Record<string, string>;
      cause?: unknown;
    } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "HttpProblemError";
    this.status = status;
    this.code = code;
    this.extras = options.extras ?? {};
    this.headers = options.headers ?? {};
  }
}

/** The request failed validation: 400 `validation_failed` with `issues`. */
export class RequestValidationError extends HttpProblemError {
  /** What is wrong, one entry per value. */
  readonly issues: ValidationIssue[];
  /** Creates the error from its issues. */
  constructor(issues: ValidationIssue[], options: { cause?: unknown } = {}) {
    const first = issues[0];
    const where = first ? `${first.in}${first.path ? ` ${first.path}` : ""}` : "request";
    super(
      400,
      "validation_failed",
      `Invalid request: ${where}: ${first?.message ?? "invalid"}`,
      { extras: { issues }, cause: options.cause },
    );
    this.name = "RequestValidationError";
    this.issues = issues;
  }
}

/** The request body is larger than the limit: 413 `payload_too_large`. */
export class PayloadTooLargeError extends HttpProblemError {
  /** Creates the error for `limit` bytes. */
  constructor(limit: number) {
    super(413, "payload_too_large", `Request body exceeds the limit of ${limit} bytes`, {
      extras: { limitBytes: limit },
    });
    this.name = "PayloadTooLargeError";
  }
}

/** The request body is not JSON: 415 `unsupported_media_type`. */
export class UnsupportedMediaTypeError extends HttpProblemError {
  /** Creates the error for the content type received (or says what else was wrong). */
  constructor(received: string | null, detail?: string) {
    super(
      415,
      "unsupported_media_type",
      detail ??
        `Request body must be application/json: got ${
          received ? `"${received}"` : "no content type"
        }`,
      { extras: { accepted: ["application/json"] } },
    );
    this.name = "UnsupportedMediaTypeError";
  }
}

const TITLES: Readonly<Record<number, string>> = {
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

/** The `type` URI of a problem code (a URN: air-gapped sites cannot dereference URLs anyway). */
export function problemType(code: string): string {
  return `urn:jobengine:problem:${code}`;
}

/** Builds a problem response. */
export function problemResponse(
  status: number,
  code: string,
  detail: string,
  options: {
    extras?: Record<string, unknown>;
    headers?: Record<string, string>;
    instance?: string;
  } = {},
): Response {
  const body: Problem = {
    type: problemType(code),
    title: TITLES[status] ?? "Error",
    status,
    detail,
    code,
    ...(options.instance ? { instance: options.instance } : {}),
    ...options.extras,
  };
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": PROBLEM_CONTENT_TYPE, ...options.headers },
  });
}

/** Maps an error to `[status, code, detail, extras, headers]`, or null for a 500. */
function classify(
  error: unknown,
): {
  status: number;
  code: string;
  detail: string;
  extras?: Record<string, unknown>;
  headers?: Record<string, string>;
} | null {
  if (error instanceof HttpProblemError) {
    return {
      status: error.status,
      code: error.code,
      detail: error.message,
      extras: error.extras,
      headers: error.headers,
    };
  }
  if (error instanceof HTTPException) {
    if (error.status === 413) return classify(new PayloadTooLargeError(0));
    if (error.status >= 500) return null;
    return {
      status: error.status,
      code: error.status === 404 ? "not_found" : "bad_request",
      detail: error.message || "Bad request",
    };
  }
  const typed = fromDatabaseError(error);
  if (typed instanceof InvalidTransitionError) {
    return {
      status: 409,
      code: "invalid_transition",
      detail: typed.message,
      extras: { from: typed.from, to: typed.to, jobId: typed.details.jobId },
    };
  }
  if (typed instanceof LeaseMismatchError) return conflict("lease_mismatch", typed);
  if (typed instanceof SealedModeError) return conflict("sealed_mode", typed);
  if (typed instanceof IdempotencyConflictError) return conflict("idempotency_conflict", typed);
  if (typed instanceof DependenciesPendingError) return conflict("dependencies_pending", typed);
  if (typed instanceof JobNotFoundError) {
    return {
      status: 404,
      code: "not_found",
      detail: typed.message,
      extras: pick(typed.details, ["jobId"]),
    };
  }
  if (typed instanceof InvalidDependencyError) {
    // SPEC section 6 names one stable code for a 400: the dependency problem is its issue
    return {
      status: 400,
      code: "validation_failed",
      detail: typed.message,
      extras: {
        ...safeDetails(typed),
        reason: "invalid_dependency",
        issues: [{ in: "body", path: "dependsOn", message: typed.message }],
      },
    };
  }
  if (typed instanceof InvalidArgumentError) {
    const field = typeof typed.details.field === "string" ? typed.details.field : "";
    return {
      status: 400,
      code: "validation_failed",
      detail: typed.message,
      extras: { issues: [{ in: "body", path: field, message: typed.message }] },
    };
  }
  if (typed instanceof DatabaseUnavailableError) {
    return {
      status: 503,
      code: "database_unavailable",
      detail: "The database is unavailable; retry later",
      headers: { "retry-after": String(RETRY_AFTER_SECONDS) },
    };
  }
  if (typed instanceof AppendOnlyError) return null;
  if (isClientDataError(typed)) {
    const message = typed instanceof Error ? typed.message : "Invalid value";
    return {
      status: 400,
      code: "validation_failed",
      detail: `Invalid request: ${message}`,
      extras: { issues: [{ in: "body", path: "", message }] },
    };
  }
  if (typed instanceof JobEngineError) return null;
  return null;
}

function pick(record: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(keys.filter((k) => record[k] !== undefined).map((k) => [k, record[k]]));
}

/** The typed error's JSON DETAIL fields (machine-readable, written by our own SQL). */
function safeDetails(error: JobEngineError): Record<string, unknown> {
  const { code: _code, type: _type, title: _title, status: _status, detail: _detail, ...rest } =
    error.details;
  return rest;
}

function conflict(code: string, error: JobEngineError) {
  return { status: 409, code, detail: error.message, extras: safeDetails(error) };
}

/** Options of {@linkcode createErrorHandler}. */
export interface ErrorHandlerOptions {
  /** Where 500s (and 503s) are logged. */
  logger: Logger;
}

/** Creates the app's `onError`: the only place errors become HTTP responses. */
export function createErrorHandler(
  options: ErrorHandlerOptions,
): (error: unknown, c: Context) => Response {
  return (error, c) => {
    const problem = classify(error);
    const instance = c.req.path;
    if (!problem) {
      options.logger.error("Unhandled error in request", {
        method: c.req.method,
        path: instance,
        error: error instanceof Error ? error : String(error),
      });
      return problemResponse(500, "internal_error", "An internal error occurred", { instance });
    }
    if (problem.code === "database_unavailable") {
      options.logger.warn("Database unavailable during request", {
        method: c.req.method,
        path: instance,
        error: error instanceof Error ? error.message : String(error),
      });
    }
    return problemResponse(problem.status, problem.code, problem.detail, {
      extras: problem.extras,
      headers: problem.headers,
      instance,
    });
  };
}

/** The 404 for an unknown route. */
export function notFoundResponse(c: Context): Response {
  return problemResponse(404, "not_found", `No route for ${c.req.method} ${c.req.path}`, {
    instance: c.req.path,
  });
}

/** The 503 for a request the database did not answer in time. */
export function databaseTimeoutResponse(path: string, ms: number): Response {
  return problemResponse(
    503,
    "database_unavailable",
    `The database did not answer within ${ms / 1000} s`,
    { instance: path, headers: { "retry-after": String(RETRY_AFTER_SECONDS) } },
  );
}

/** The 405 for a known route with another method. */
export function methodNotAllowedResponse(c: Context, allowed: readonly string[]): Response {
  return problemResponse(
    405,
    "method_not_allowed",
    `Method ${c.req.method} is not allowed on ${c.req.path}: use ${allowed.join(", ")}`,
    { instance: c.req.path, headers: { allow: allowed.join(", ") }, extras: { allow: allowed } },
  );
}
