/**
 * The PostgreSQL adapter (postgres.js), used when `DATABASE_URL` is set.
 *
 * `query(text, params)` runs one statement through the extended protocol as a named prepared
 * statement; `query(text)` without parameters uses the simple protocol and may hold several
 * statements (the rows of the last are returned), which is how migrations run. Values are
 * normalised as described in `port.ts`. Errors pass through {@linkcode fromDatabaseError}: a
 * registered SQLSTATE becomes its typed error, an unreachable server a
 * `DatabaseUnavailableError`; the pool reconnects by itself once the server is back.
 *
 * @module
 */

import postgres from "postgres";
import { fromDatabaseError } from "../errors.ts";
import type { Database, NotifyHandler, Queryable, Row } from "./port.ts";
import {
  ArrayTypeCache,
  assertChannelName,
  BUILTIN_ARRAYS,
  BYTEA_OID,
  type Column,
  DATE_OIDS,
  deliver,
  INT8_OID,
  JSON_OID,
  JSONB_OID,
  parseArray,
  parseBytea,
  parseInt8,
  parseJson,
  parseTimestamp,
  prepareParams,
  serializeBytea,
  serializeInt8,
  serializeJson,
  serializeTimestamp,
} from "./_normalize.ts";

/** Options of {@linkcode createPostgresDatabase}. */
export interface PostgresDatabaseOptions {
  /** Most connections in the pool (default 10). */
  max?: number;
  /** Receives server NOTICE messages (default: ignored). */
  onnotice?: (notice: Record<string, unknown>) => void;
  /** `application_name` shown in `pg_stat_activity` (default `jobengine`). */
  applicationName?: string;
  /** Seconds to wait for a connection before failing with `DatabaseUnavailableError` (default 10). */
  connectTimeout?: number;
  /** Seconds after which an idle connection is closed (default 0: never). */
  idleTimeout?: number;
}

/** The type handlers that make postgres.js return what PGlite returns. */
const TYPES = {
  bigint: {
    to: INT8_OID,
    from: [INT8_OID],
    serialize: serializeInt8,
    parse: parseInt8,
  },
  json: {
    to: JSONB_OID,
    from: [JSON_OID, JSONB_OID],
    serialize: serializeJson,
    parse: parseJson,
  },
  date: {
    to: 1184,
    from: [...DATE_OIDS],
    serialize: serializeTimestamp,
    parse: parseTimestamp,
  },
  bytea: {
    to: BYTEA_OID,
    from: [BYTEA_OID],
    serialize: serializeBytea,
    parse: parseBytea,
  },
};

/** Array parsers for the built-in array types (postgres.js reads `NULL` elements as text). */
const ARRAY_TYPES = Object.fromEntries(
  Object.entries(BUILTIN_ARRAYS).map(([arrayOid, elementOid]) => [
    `array_${arrayOid}`,
    {
      to: Number(arrayOid),
      from: [Number(arrayOid)],
      serialize: String,
      parse: (text: string) => parseArray(text, elementOid),
    },
  ]),
);

/** The JavaScript types {@linkcode TYPES} produces, as postgres.js tracks them. */
type JsTypes = { bigint: number | bigint; json: unknown; date: Date | number; bytea: Uint8Array };
type Sql = postgres.Sql<JsTypes>;
type AnySql = Sql | postgres.TransactionSql<JsTypes>;
type PgResult = postgres.RowList<Row[]>;

/**
 * SQLSTATEs with which postgres.js rejects a query it never sent: after a backend is terminated
 * mid-query, the connection keeps that FATAL error (`57P01`, `57P02`) and replays it on the
 * first query of its next connection, during startup; `57P03` means the server is still
 * starting. A pool query (never one inside a transaction) that fails so is sent again.
 */
const NEVER_SENT_SQLSTATES = new Set(["57P01", "57P02", "57P03"]);
/** How often a never-sent pool query is sent again. */
const NEVER_SENT_RETRIES = 2;

/**
 * A statement PostgreSQL chose as a deadlock's victim (`40P01`) was rolled back whole; a pool
 * query (its own transaction) that ends so is sent again, up to this many times. Creates,
 * completion batches and the dependency trigger lock jobs in id order, so none is known to
 * remain (docs/state_machine.md); should one, the caller sees a `DatabaseUnavailableError`.
 */
const DEADLOCK_RETRIES = 2;

function deadlocked(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === "40P01";
}

function neverSent(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && NEVER_SENT_SQLSTATES.has(code);
}

/** Creates a {@linkcode Database} backed by a postgres.js pool; connects lazily on first use. */
export function createPostgresDatabase(
  url: string,
  options: PostgresDatabaseOptions = {},
): Database {
  const sql: Sql = postgres(url, {
    max: options.max ?? 10,
    onnotice: options.onnotice ?? (() => {}),
    connect_timeout: options.connectTimeout ?? 10,
    // reconnect quickly after an outage: postgres.js's default waits up to 20 s between tries,
    // with the count shared by the pool, and queued queries wait that out
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1),
    idle_timeout: options.idleTimeout ?? 0,
    connection: { application_name: options.applicationName ?? "jobengine" },
    transform: { undefined: null },
    // Arrays are parsed by ARRAY_TYPES and ArrayTypeCache instead of the type fetch at connect.
    fetch_types: false,
    types: { ...TYPES, ...ARRAY_TYPES } as typeof TYPES,
  });
  const arrays = new ArrayTypeCache();

  async function run(
    conn: AnySql,
    text: string,
    params: readonly unknown[] | undefined,
  ): Promise<Row[]> {
    let result: PgResult | PgResult[] | undefined;
    for (let attempt = 0; result === undefined; attempt++) {
      try {
        result = params && params.length > 0
          ? await conn.unsafe<Row[]>(text, prepareParams(params) as never[], { prepare: true })
          : await conn.unsafe<Row[]>(text);
      } catch (error) {
        if (conn === sql && attempt < NEVER_SENT_RETRIES && neverSent(error)) continue;
        if (conn === sql && attempt < DEADLOCK_RETRIES && deadlocked(error)) continue;
        throw fromDatabaseError(error);
      }
    }
    // The simple protocol answers a multi-statement text with one result per statement.
    const last = isResultList(result) ? result[result.length - 1] : result;
    if (!last) return [];
    const rows = Array.from(last);
    const columns: Column[] = (last.columns ?? []).map((c) => ({ name: c.name, oid: c.type }));
    await arrays.normalize(rows, columns, (t, p) => run(conn, t, p));
    return rows;
  }

  function queryable(conn: AnySql): Queryable {
    return {
      query: <T extends Row = Row>(text: string, params?: readonly unknown[]) =>
        run(conn, text, params) as Promise<T[]>,
    };
  }

  return {
    kind: "postgres",
    ...queryable(sql),
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      for (let attempt = 0;; attempt++) {
        let entered = false;
        try {
          return await sql.begin((tx) => {
            entered = true;
            return fn(queryable(tx));
          }) as T;
        } catch (error) {
          // Only a transaction whose `fn` never ran may be started again.
          if (!entered && attempt < NEVER_SENT_RETRIES && neverSent(error)) continue;
          throw fromDatabaseError(error);
        }
      }
    },
    async listen(channel: string, onNotify: NotifyHandler): Promise<() => Promise<void>> {
      assertChannelName(channel);
      try {
        const request = await sql.listen(channel, (payload) => deliver(onNotify, payload));
        return async () => {
          try {
            await request.unlisten();
          } catch (error) {
            throw fromDatabaseError(error);
          }
        };
      } catch (error) {
        throw fromDatabaseError(error);
      }
    },
    async close(): Promise<void> {
      await sql.end({ timeout: 5 });
    },
  };
}

function isResultList(result: PgResult | PgResult[]): result is PgResult[] {
  return result.length > 0 && Array.isArray(result[0]);
}
