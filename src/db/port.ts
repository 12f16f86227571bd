/**
 * The database port: the one small interface everything above the adapters uses.
 *
 * Two adapters implement it: postgres.js against a real PostgreSQL (`DATABASE_URL`) and PGlite
 * (the embedded default). Row values are normalised the same way by both adapters:
 * `timestamptz` -> `Date`, `int8` -> `number`, `jsonb` -> parsed value, arrays -> JS arrays,
 * enums and `uuid` -> `string`. Pass JSON parameters as strings with an explicit `::jsonb` cast.
 *
 * @module
 */

/** One result row, keyed by column name. */
export type Row = Record<string, unknown>;

/** Something that runs one SQL statement with positional parameters (`$1`, `$2`, ...). */
export interface Queryable {
  /** Runs `text` with `params` and returns the rows. */
  query<T extends Row = Row>(text: string, params?: readonly unknown[]): Promise<T[]>;
}

/** Which adapter is behind a {@linkcode Database}. */
export type DatabaseKind = "postgres" | "pglite";

/** A callback for `LISTEN`: receives the NOTIFY payload. */
export type NotifyHandler = (payload: string) => void;

/** The database port. */
export interface Database extends Queryable {
  /** Which adapter this is. */
  readonly kind: DatabaseKind;
  /** Runs `fn` inside one transaction; commits when it resolves, rolls back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Subscribes to a NOTIFY channel; resolves to a function that unsubscribes. */
  listen(channel: string, onNotify: NotifyHandler): Promise<() => Promise<void>>;
  /** Closes every connection. */
  close(): Promise<void>;
}
