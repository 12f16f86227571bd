/**
 * The embedded adapter (PGlite: PostgreSQL compiled to WebAssembly), the default when no
 * `DATABASE_URL` is set.
 *
 * PGlite has one connection and serialises every query on it: concurrent `query()` calls
 * queue, and a query issued outside a transaction that is open in another async flow waits for
 * that transaction to finish. Inside `transaction(fn)`, use only the `tx` handed to `fn`:
 * calling the outer database from within `fn` waits for `fn` itself and never returns.
 * `query(text)` without parameters may hold several statements (the rows of the last are
 * returned). Values and errors are normalised exactly as by the postgres.js adapter.
 *
 * @module
 */

import { PGlite, type Results, type Transaction } from "@electric-sql/pglite";
import { mkdir } from "node:fs/promises";
import { fromDatabaseError } from "../errors.ts";
import type { Database, NotifyHandler, Queryable, Row } from "./port.ts";
import {
  ArrayTypeCache,
  assertChannelName,
  BYTEA_OID,
  DATE_OIDS,
  deliver,
  INT8_OID,
  JSON_OID,
  JSONB_OID,
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

/** Options of {@linkcode createPgliteDatabase}. */
export interface PgliteDatabaseOptions {
  /** Directory holding the database files, created if missing; omit for an in-memory database. */
  dataDir?: string;
}

type Parser = (text: string) => unknown;
type Serializer = (value: unknown) => string;

function byOid<F>(entries: ReadonlyArray<readonly [readonly number[], F]>): Record<number, F> {
  const out: Record<number, F> = {};
  for (const [oids, fn] of entries) for (const oid of oids) out[oid] = fn;
  return out;
}

const PARSERS = byOid<Parser>([
  [[INT8_OID], parseInt8],
  [[JSON_OID, JSONB_OID], parseJson],
  [DATE_OIDS, parseTimestamp],
  [[BYTEA_OID], parseBytea],
]);

const SERIALIZERS = byOid<Serializer>([
  [[INT8_OID], serializeInt8],
  [[JSON_OID, JSONB_OID], serializeJson],
  [DATE_OIDS, serializeTimestamp],
  [[BYTEA_OID], serializeBytea],
]);

/** Opens (or creates) a PGlite database and returns it as a {@linkcode Database}. */
export async function createPgliteDatabase(options: PgliteDatabaseOptions = {}): Promise<Database> {
  if (options.dataDir !== undefined) await mkdir(options.dataDir, { recursive: true });
  let pg: PGlite;
  try {
    pg = await PGlite.create({
      dataDir: options.dataDir,
      parsers: PARSERS,
      serializers: SERIALIZERS,
    });
  } catch (error) {
    throw fromDatabaseError(error);
  }
  const arrays = new ArrayTypeCache();

  async function run(
    conn: PGlite | Transaction,
    text: string,
    params: readonly unknown[] | undefined,
  ): Promise<Row[]> {
    let result: Results<Row> | undefined;
    try {
      result = params && params.length > 0
        ? await conn.query<Row>(text, prepareParams(params))
        : (await conn.exec(text)).at(-1) as Results<Row> | undefined;
    } catch (error) {
      throw fromDatabaseError(error);
    }
    if (!result) return [];
    const rows = result.rows;
    const columns = result.fields.map((f) => ({ name: f.name, oid: f.dataTypeID }));
    await arrays.normalize(rows, columns, (t, p) => run(conn, t, p));
    return rows;
  }

  function queryable(conn: PGlite | Transaction): Queryable {
    return {
      query: <T extends Row = Row>(text: string, params?: readonly unknown[]) =>
        run(conn, text, params) as Promise<T[]>,
    };
  }

  return {
    kind: "pglite",
    ...queryable(pg),
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      try {
        return await pg.transaction((tx) => fn(queryable(tx)));
      } catch (error) {
        throw fromDatabaseError(error);
      }
    },
    async listen(channel: string, onNotify: NotifyHandler): Promise<() => Promise<void>> {
      assertChannelName(channel);
      try {
        const unlisten = await pg.listen(channel, (payload) => deliver(onNotify, payload));
        return async () => {
          if (pg.closed) return;
          try {
            await unlisten();
          } catch (error) {
            throw fromDatabaseError(error);
          }
        };
      } catch (error) {
        throw fromDatabaseError(error);
      }
    },
    async close(): Promise<void> {
      if (!pg.closed) await pg.close();
    },
  };
}
