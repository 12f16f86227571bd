/**
 * Typed errors of jobengine, and the one place SQLSTATEs become typed errors.
 *
 * Every `raise` in `sql/` uses a registered SQLSTATE (`JE001`...). A SQL function puts
 * machine-readable fields into the error's DETAIL as a JSON object; {@linkcode fromDatabaseError}
 * reads them back.
 *
 * @module
 */

/** The registered SQLSTATEs and what they mean. */
export const SQLSTATES = {
  JE001: "invalid_transition",
  JE002: "lease_mismatch",
  JE003: "sealed_mode",
  JE004: "not_found",
  JE005: "invalid_dependency",
  JE006: "idempotency_conflict",
  JE007: "dependencies_pending",
  JE008: "append_only",
  JE009: "invalid_argument",
} as const;

/** A registered SQLSTATE. */
export type JobEngineSqlState = keyof typeof SQLSTATES;
/** The stable error code for a registered SQLSTATE. */
export type JobEngineErrorCode = (typeof SQLSTATES)[JobEngineSqlState];

/** The SQLSTATE of each stable code that has one. */
const SQLSTATE_OF_CODE: ReadonlyMap<string, JobEngineSqlState> = new Map(
  Object.entries(SQLSTATES).map(([sqlstate, code]) => [code, sqlstate as JobEngineSqlState]),
);

/** Base class of every error jobengine raises on purpose. */
export class JobEngineError extends Error {
  /** The stable machine-readable code (also the problem+json `code`). */
  readonly code: string;
  /**
   * The registered SQLSTATE this error stands for, whether the database raised it or the
   * TypeScript side refused first (an {@linkcode InvalidTransitionError} is `JE001` either
   * way); null for codes without one (`database_unavailable`, `egress_denied`, ...).
   */
  readonly sqlstate: JobEngineSqlState | null;
  /** Extra machine-readable fields (for example `from`, `to`, `jobId`). */
  readonly details: Record<string, unknown>;
  /** Creates an error with a stable `code`. */
  constructor(
    code: string,
    message: string,
    options: { details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "JobEngineError";
    this.code = code;
    this.sqlstate = SQLSTATE_OF_CODE.get(code) ?? null;
    this.details = options.details ?? {};
  }
}

/** A state change that the transition table does not allow (`JE001`). */
export class InvalidTransitionError extends JobEngineError {
  /** The status the job was in. */
  readonly from: string | null;
  /** The status that was asked for. */
  readonly to: string;
  /** Creates the error for `from -> to`, optionally naming the job. */
  constructor(from: string | null, to: string, options: { jobId?: string; cause?: unknown } = {}) {
    const subject = options.jobId ? `job ${options.jobId}` : "job";
    super(
      "invalid_transition",
      `Cannot transition ${subject} to "${to}": current status is "${from ?? "(new)"}"`,
      { details: { from, to, jobId: options.jobId }, cause: options.cause },
    );
    this.name = "InvalidTransitionError";
    this.from = from;
    this.to = to;
  }
}

/** The lease given does not match the job's current lease, or has expired (`JE002`). */
export class LeaseMismatchError extends JobEngineError {
  /** Creates the error. */
  constructor(
    message: string,
    options: { details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super("lease_mismatch", message, options);
    this.name = "LeaseMismatchError";
  }
}

/** Refused because the engine is sealed (`JE003`). */
export class SealedModeError extends JobEngineError {
  /** Creates the error. */
  constructor(
    message: string,
    options: { details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super("sealed_mode", message, options);
    this.name = "SealedModeError";
  }
}

/** No such job (for this tenant) (`JE004`). */
export class JobNotFoundError extends JobEngineError {
  /** Creates the error. */
  constructor(
    message: string,
    options: { details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super("not_found", message, options);
    this.name = "JobNotFoundError";
  }
}

/** A dependency is a cycle, unknown, or belongs to another tenant (`JE005`). */
export class InvalidDependencyError extends JobEngineError {
  /** Creates the error. */
  constructor(
    message: string,
    options: { details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super("invalid_dependency", message, options);
    this.name = "InvalidDependencyError";
  }
}

/** The idempotency key was used before for a different request (`JE006`). */
export class IdempotencyConflictError extends JobEngineError {
  /** Creates the error. */
  constructor(
    message: string,
    options: { details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super("idempotency_conflict", message, options);
    this.name = "IdempotencyConflictError";
  }
}

/** An explicit schedule before every dependency completed (`JE007`). */
export class DependenciesPendingError extends JobEngineError {
  /** Creates the error. */
  constructor(
    message: string,
    options: { details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super("dependencies_pending", message, options);
    this.name = "DependenciesPendingError";
  }
}

/** An attempt to rewrite or delete an append-only record (`JE008`). */
export class AppendOnlyError extends JobEngineError {
  /** Creates the error. */
  constructor(
    message: string,
    options: { details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super("append_only", message, options);
    this.name = "AppendOnlyError";
  }
}

/** An argument the SQL API refuses, such as a malformed retry policy (`JE009`). */
export class InvalidArgumentError extends JobEngineError {
  /** Creates the error. */
  constructor(
    message: string,
    options: { details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super("invalid_argument", message, options);
    this.name = "InvalidArgumentError";
  }
}

/** The database cannot be reached (connection refused, reset, shut down). */
export class DatabaseUnavailableError extends JobEngineError {
  /** Creates the error. */
  constructor(message: string, options: { cause?: unknown } = {}) {
    super("database_unavailable", message, options);
    this.name = "DatabaseUnavailableError";
  }
}

/**
 * The embedded database's data directory is held by another process (an engine or a CLI
 * command): PGlite has one writer, and a second process on the same directory would write to
 * its own copy and lose it. A kind of {@linkcode DatabaseUnavailableError}.
 */
export class DataDirectoryInUseError extends DatabaseUnavailableError {
  /** The data directory. */
  readonly dataDir: string;
  /** Creates the error for `dataDir`. */
  constructor(dataDir: string) {
    super(
      `The embedded database in ${dataDir} is in use by another process (an engine or a CLI ` +
        "command): stop it first, or use a PostgreSQL server (DATABASE_URL) for concurrent access",
    );
    this.name = "DataDirectoryInUseError";
    this.dataDir = dataDir;
  }
}

/** A network call refused by the sealed-mode network guard. */
export class EgressDeniedError extends JobEngineError {
  /** The host that was refused. */
  readonly host: string;
  /** The port that was refused. */
  readonly port: number;
  /** The API that tried it (`fetch`, `WebSocket`, `EventSource`, `Deno.connect`, ...). */
  readonly api: string;
  /** Creates the error for one refused call. */
  constructor(host: string, port: number, api: string) {
    super("egress_denied", `Egress denied in sealed mode: ${api} to ${host}:${port}`, {
      details: { host, port, api },
    });
    this.name = "EgressDeniedError";
    this.host = host;
    this.port = port;
    this.api = api;
  }
}

/** SQLSTATE classes that mean the server or the connection went away. */
const UNAVAILABLE_SQLSTATE_PREFIXES = ["08", "57P"];
/** Node/Deno socket error codes that mean the database cannot be reached. */
const UNAVAILABLE_ERRNOS = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
]);

function parseDetail(detail: unknown): Record<string, unknown> {
  if (typeof detail !== "string" || !detail.startsWith("{")) return {};
  try {
    const parsed: unknown = JSON.parse(detail);
    return parsed && typeof parsed === "object" ? parsed as Record<string, unknown> : {};
  } catch {
    return {};
  }
}

/**
 * Turns an error thrown by either adapter into a typed jobengine error where one applies;
 * returns any other error unchanged.
 */
export function fromDatabaseError(error: unknown): unknown {
  if (error instanceof JobEngineError) return error;
  if (!error || typeof error !== "object") return error;
  const { code, message, detail } = error as {
    code?: unknown;
    message?: unknown;
    detail?: unknown;
  };
  const text = typeof message === "string" ? message : String(error);
  const details = parseDetail(detail);
  const options = { details, cause: error };
  switch (code) {
    case "JE001":
      return new InvalidTransitionError(
        (details.from as string | null | undefined) ?? null,
        String(details.to ?? "unknown"),
        { jobId: details.jobId as string | undefined, cause: error },
      );
    case "JE002":
      return new LeaseMismatchError(text, options);
    case "JE003":
      return new SealedModeError(text, options);
    case "JE004":
      return new JobNotFoundError(text, options);
    case "JE005":
      return new InvalidDependencyError(text, options);
    case "JE006":
      return new IdempotencyConflictError(text, options);
    case "JE007":
      return new DependenciesPendingError(text, options);
    case "JE008":
      return new AppendOnlyError(text, options);
    case "JE009":
    case "22P02": // invalid_text_representation, e.g. a malformed uuid or enum
    case "22023": // invalid_parameter_value
      return new InvalidArgumentError(text, options);
  }
  if (typeof code === "string") {
    if (
      UNAVAILABLE_ERRNOS.has(code) || UNAVAILABLE_SQLSTATE_PREFIXES.some((p) => code.startsWith(p))
    ) {
      return new DatabaseUnavailableError(`Database unavailable: ${text}`, { cause: error });
    }
    if (code.startsWith("40")) {
      // a deadlock's victim or a serialization failure: rolled back whole, nothing written, and
      // the same request can succeed a moment later (the HTTP API answers 503 and Retry-After,
      // not 500)
      return new DatabaseUnavailableError(`Transaction rolled back, try again: ${text}`, {
        cause: error,
      });
    }
  }
  return error;
}

/**
 * A raw database error of SQLSTATE class 22 (data exception, e.g. a NUL in JSON) or 23
 * (integrity violation): the data itself was refused, so the caller's input is at fault.
 */
export function isClientDataError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^2[23][0-9A-Z]{3}$/.test(code);
}
