/**
 * Value normalisation shared by both adapters, so that a row reads the same whether it came
 * from postgres.js or PGlite. Imported only from `src/db/`.
 *
 * - `int8` -> `number` (a `bigint` only beyond `Number.MAX_SAFE_INTEGER`, never a lossy number)
 * - `timestamptz`, `timestamp`, `date` -> `Date` (`infinity` -> `Infinity`)
 * - `json`, `jsonb` -> parsed value; a string parameter is sent as JSON text unchanged
 * - `bytea` -> `Uint8Array`
 * - arrays -> JS arrays, including arrays of types created after the connection opened
 *   (enums from a migration), which neither driver knows about on its own
 * - `numeric`, `interval`, enums, `uuid` -> `string`
 *
 * @module
 */

import type { Row } from "./port.ts";

/** `int8`. */
export const INT8_OID = 20;
/** `json`. */
export const JSON_OID = 114;
/** `jsonb`. */
export const JSONB_OID = 3802;
/** `bytea`. */
export const BYTEA_OID = 17;
/** `date`, `timestamp`, `timestamptz`. */
export const DATE_OIDS = [1082, 1114, 1184] as const;
/** OIDs below this are built in; user-defined types (enums, their arrays) start here. */
export const FIRST_USER_OID = 16384;

/** Parses `int8` text: a number when exact, a bigint beyond the safe integer range. */
export function parseInt8(text: string): number | bigint {
  const value = BigInt(text);
  return value < Number.MIN_SAFE_INTEGER || value > Number.MAX_SAFE_INTEGER ? value : Number(value);
}

/** Serialises an `int8` parameter. */
export function serializeInt8(value: unknown): string {
  return String(value);
}

/** Recently parsed timestamp texts and their epoch milliseconds (cleared when full). */
const timestampCache = new Map<string, number>();
const TIMESTAMP_CACHE_SIZE = 64;

/**
 * Parses `date`, `timestamp` and `timestamptz` text. The rows of one statement mostly share
 * their timestamps (`now()` is the transaction's; a batch was created, scheduled or claimed
 * together), so recent texts are remembered: a repeat costs a map lookup instead of a date
 * parse. Every call returns its own `Date`.
 */
export function parseTimestamp(text: string): Date | number {
  const ms = timestampCache.get(text);
  if (ms !== undefined) return new Date(ms);
  if (text === "infinity") return Infinity;
  if (text === "-infinity") return -Infinity;
  const date = parseTimestamptzText(text) ?? new Date(text);
  if (timestampCache.size >= TIMESTAMP_CACHE_SIZE) timestampCache.clear();
  timestampCache.set(text, date.getTime());
  return date;
}

/** `timestamptz` text as PostgreSQL writes it (ISO DateStyle): `2026-11-29 16:22:00.123456+05:30`. */
const TIMESTAMPTZ_TEXT =
  /^(\d{4,})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d+))?([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?( BC)?$/;

/**
 * Parses `timestamptz` text field by field; null for any other shape. JavaScript's own parser
 * reads the years 0 to 99 of this (non-ISO) form as 1900-1999 or 2000-2049, so `0001-01-01`
 * would come back as 2001.
 */
function parseTimestamptzText(text: string): Date | null {
  const m = TIMESTAMPTZ_TEXT.exec(text);
  if (!m) return null;
  const year = m[12] ? 1 - Number(m[1]) : Number(m[1]);
  const date = new Date(0);
  date.setUTCFullYear(year, Number(m[2]) - 1, Number(m[3]));
  const ms = m[7] ? Math.floor(Number(`0.${m[7]}`) * 1000 + 1e-6) : 0;
  date.setUTCHours(Number(m[4]), Number(m[5]), Number(m[6]), ms);
  const offset = (Number(m[9]) * 3600 + Number(m[10] ?? 0) * 60 + Number(m[11] ?? 0)) * 1000;
  return new Date(date.getTime() - (m[8] === "-" ? -offset : offset));
}

/** Serialises a timestamp parameter: a `Date`, epoch milliseconds, or text passed through. */
export function serializeTimestamp(value: unknown): string {
  if (value instanceof Date) return value.toISOString();
  if (value === Infinity) return "infinity";
  if (value === -Infinity) return "-infinity";
  if (typeof value === "number") return new Date(value).toISOString();
  return String(value);
}

/** Parses `json` / `jsonb` text. */
export function parseJson(text: string): unknown {
  return JSON.parse(text);
}

/** Serialises a JSON parameter: strings are taken as JSON text already, anything else is encoded. */
export function serializeJson(value: unknown): string {
  if (typeof value === "string") return value;
  return JSON.stringify(value, (_key, v) => typeof v === "bigint" ? v.toString() : v);
}

/** Parses `bytea` hex text (`\x0102`). */
export function parseBytea(text: string): Uint8Array {
  const hex = text.slice(2);
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

/** Serialises a `bytea` parameter. */
export function serializeBytea(value: unknown): string {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError("Invalid bytea parameter: expected a Uint8Array");
  }
  return "\\x" + Array.from(value, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A nested array whose leaves are strings or null. */
export type TextArray = Array<string | null | TextArray>;

/**
 * Parses a PostgreSQL array literal (`{a,"b c",NULL,{1,2}}`) into nested arrays of strings.
 * An optional dimension prefix (`[0:1]={...}`) is ignored.
 */
export function parseArrayLiteral(text: string, delimiter = ","): TextArray {
  let i = text.indexOf("{");
  if (i < 0) throw new SyntaxError(`Invalid array literal: ${text}`);
  const parseLevel = (): TextArray => {
    const out: TextArray = [];
    i++; // skip "{"
    let expectElement = true;
    while (i < text.length) {
      const ch = text[i]!;
      if (ch === "}") {
        i++;
        return out;
      }
      if (ch === delimiter) {
        i++;
        expectElement = true;
        continue;
      }
      if (!expectElement) throw new SyntaxError(`Invalid array literal: ${text}`);
      if (ch === "{") {
        out.push(parseLevel());
      } else if (ch === '"') {
        let value = "";
        i++;
        while (i < text.length && text[i] !== '"') {
          if (text[i] === "\\") i++;
          value += text[i] ?? "";
          i++;
        }
        i++; // closing quote
        out.push(value);
      } else {
        let end = i;
        while (end < text.length && text[end] !== delimiter && text[end] !== "}") end++;
        const raw = text.slice(i, end).trim();
        out.push(raw.toUpperCase() === "NULL" ? null : raw);
        i = end;
      }
      expectElement = false;
    }
    throw new SyntaxError(`Invalid array literal: ${text}`);
  };
  return parseLevel();
}

/** Serialises a JS array as a PostgreSQL array literal with every element quoted. */
export function serializeArrayLiteral(
  value: readonly unknown[],
  serializeElement: (element: unknown) => string = String,
  delimiter = ",",
): string {
  const items = value.map((element) => {
    if (element === null || element === undefined) return "NULL";
    if (Array.isArray(element)) return serializeArrayLiteral(element, serializeElement, delimiter);
    const text = serializeElement(element);
    return `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
  });
  return `{${items.join(delimiter)}}`;
}

function serializeArrayElement(value: unknown): string {
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Uint8Array) return serializeBytea(value);
  if (typeof value === "object") return serializeJson(value);
  return String(value);
}

/**
 * Prepares parameters for either driver: `undefined` becomes `null`, and a JS array becomes
 * PostgreSQL array text, so arrays of types the driver does not know yet (an enum created by a
 * migration after the connection opened) work too. JSON, including a JSON array, is passed as a
 * string with a `::jsonb` cast.
 */
export function prepareParams(params: readonly unknown[]): unknown[] {
  return params.map((value) => {
    if (value === undefined) return null;
    if (Array.isArray(value)) return serializeArrayLiteral(value, serializeArrayElement);
    return value;
  });
}

/** Parses one array element's text by the element type OID. */
export type ElementParser = (text: string) => unknown;

const parseNumber: ElementParser = (text) => Number(text);
const parseBool: ElementParser = (text) => text === "t";

/** Element parsers by element OID; elements of any other type stay strings. */
export const ELEMENT_PARSERS: Readonly<Record<number, ElementParser>> = {
  16: parseBool,
  17: parseBytea,
  20: parseInt8,
  21: parseNumber,
  23: parseNumber,
  26: parseNumber,
  114: parseJson,
  700: parseNumber,
  701: parseNumber,
  1082: parseTimestamp,
  1114: parseTimestamp,
  1184: parseTimestamp,
  3802: parseJson,
};

/** Built-in array type OIDs and their element OIDs (the ones a job engine meets). */
export const BUILTIN_ARRAYS: Readonly<Record<number, number>> = {
  1000: 16, // bool[]
  1001: 17, // bytea[]
  1005: 21, // int2[]
  1007: 23, // int4[]
  1009: 25, // text[]
  1014: 1042, // bpchar[]
  1015: 1043, // varchar[]
  1016: 20, // int8[]
  1021: 700, // float4[]
  1022: 701, // float8[]
  1028: 26, // oid[]
  1115: 1114, // timestamp[]
  1182: 1082, // date[]
  1185: 1184, // timestamptz[]
  1187: 1186, // interval[]
  1231: 1700, // numeric[]
  199: 114, // json[]
  2951: 2950, // uuid[]
  3807: 3802, // jsonb[]
  1263: 2275, // cstring[]
  1002: 18, // char[]
  1003: 19, // name[]
};

/** Nested arrays of parsed elements. */
export type ParsedArray = Array<unknown>;

/** Parses array text whose elements have type `elementOid`. */
export function parseArray(text: string, elementOid: number, delimiter = ","): ParsedArray {
  const parser = ELEMENT_PARSERS[elementOid];
  const literal = parseArrayLiteral(text, delimiter);
  if (!parser) return literal;
  const map = (items: TextArray): ParsedArray =>
    items.map((item) => item === null ? null : Array.isArray(item) ? map(item) : parser(item));
  return map(literal);
}

/** A result column: its name and its type OID. */
export interface Column {
  /** The column name (the row key). */
  name: string;
  /** The type OID from the row description. */
  oid: number;
}

/** Runs a catalog query on the same connection (or transaction) that produced the rows. */
export type CatalogQuery = (text: string, params: unknown[]) => Promise<Row[]>;

/**
 * Remembers which user-defined type OIDs are array types, so arrays of types the driver does not
 * know (for example `jobengine.job_status[]`, created by a migration after the connection
 * opened) are still returned as arrays. Their elements stay strings.
 */
export class ArrayTypeCache {
  #delimiters = new Map<number, string | null>();

  /**
   * Parses, in place, every string value in a user-defined array column of `rows`. Looks each
   * unknown OID up in `pg_type` once, through `catalog` (the same connection or transaction).
   */
  async normalize(rows: Row[], columns: readonly Column[], catalog: CatalogQuery): Promise<void> {
    if (rows.length === 0) return;
    const suspects = columns.filter((column) =>
      column.oid >= FIRST_USER_OID && this.#delimiters.get(column.oid) !== null &&
      rows.some((row) => typeof row[column.name] === "string")
    );
    if (suspects.length === 0) return;
    const unknown = [
      ...new Set(suspects.map((c) => c.oid).filter((oid) => !this.#delimiters.has(oid))),
    ];
    if (unknown.length > 0) {
      const found = await catalog(
        "select oid::int8 as oid, typdelim::text as delimiter from pg_catalog.pg_type " +
          "where oid = any($1::oid[]) and typcategory = 'A'",
        [unknown],
      );
      for (const oid of unknown) this.#delimiters.set(oid, null);
      for (const row of found) this.#delimiters.set(Number(row.oid), String(row.delimiter));
    }
    for (const column of suspects) {
      const delimiter = this.#delimiters.get(column.oid);
      if (delimiter === null || delimiter === undefined) continue;
      for (const row of rows) {
        const value = row[column.name];
        if (typeof value === "string") row[column.name] = parseArrayLiteral(value, delimiter);
      }
    }
  }
}

/** Channel names both adapters treat the same way (PGlite does not quote, postgres.js does). */
const CHANNEL_NAME = /^[a-z_][a-z0-9_]*$/;

/** Throws a `TypeError` unless `channel` is a lowercase SQL identifier. */
export function assertChannelName(channel: string): void {
  if (!CHANNEL_NAME.test(channel) || channel.length > 63) {
    throw new TypeError(
      `Invalid channel name "${channel}": use lowercase letters, digits and underscores`,
    );
  }
}

/** Calls a NOTIFY handler, ignoring what it throws so a faulty handler cannot kill the connection. */
export function deliver(handler: (payload: string) => void, payload: string): void {
  try {
    handler(payload);
  } catch {
    // A handler must not throw; its error must not break the shared LISTEN connection.
  }
}
