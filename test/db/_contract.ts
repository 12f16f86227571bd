/**
 * The behaviour both database adapters must share, registered as `Deno.test` cases by
 * `postgres_test.ts` and `pglite_test.ts`.
 *
 * @module
 */

import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import { InvalidTransitionError, JobNotFoundError, LeaseMismatchError } from "../../src/errors.ts";
import type { Database } from "../../src/db/port.ts";

/** Opens a database for one test; `done()` closes (and drops) it. */
export type OpenDatabase = () => Promise<{ db: Database; done(): Promise<void> }>;

/** A query touching every type whose JS shape the port fixes; no clock, no randomness. */
export const TYPE_PROBE_SQL = `select
  1::int8 as int8,
  9007199254740993::int8 as int8_beyond_safe,
  2::int4 as int4,
  1.5::float8 as float8,
  12345678901234567890.123::numeric as numeric,
  true as bool,
  null::int8 as null_int8,
  'text' as text,
  '00000000-0000-0000-0000-000000000001'::uuid as uuid,
  '2024-01-02T03:04:05.678Z'::timestamptz as timestamptz,
  '0001-02-03T04:05:06.789Z'::timestamptz as timestamptz_year_1,
  '0099-12-31T23:59:59Z'::timestamptz as timestamptz_year_99,
  '0044-03-15T12:00:00Z BC'::timestamptz as timestamptz_bc,
  '2024-01-02'::date as date,
  'infinity'::timestamptz as infinity,
  '1 hour'::interval as interval,
  '{"a":[1,{"b":null}]}'::jsonb as jsonb,
  '"str"'::jsonb as jsonb_string,
  '{"a":1}'::json as json,
  '\\x01ff'::bytea as bytea,
  array[1, null]::int4[] as int4_array,
  array[1, null]::int8[] as int8_array,
  array['a', 'b c', null, 'NULL', '', 'q"u\\o,te{}'] as text_array,
  array[[1, 2], [3, 4]] as nested_array,
  array['2024-01-01T00:00:00Z'::timestamptz, null] as timestamptz_array,
  array['00000000-0000-0000-0000-000000000002'::uuid] as uuid_array,
  array['{"a":1}'::jsonb, null] as jsonb_array,
  array[true, false, null] as bool_array,
  '{}'::text[] as empty_array,
  'running'::probe_status as enum,
  array['pending', null, 'running']::probe_status[] as enum_array,
  $1::jsonb as param_json_text,
  $2::jsonb as param_json_object,
  $3::int8 as param_int8,
  $4::timestamptz as param_date,
  $5::text[] as param_text_array,
  $6::probe_status[] as param_enum_array,
  $7::text as param_undefined,
  $8::int8[] as param_int8_array`;

/** The parameters of {@linkcode TYPE_PROBE_SQL}. */
export const TYPE_PROBE_PARAMS: readonly unknown[] = [
  '{"k":[1]}',
  { z: [1, "two"] },
  5,
  new Date(0),
  ["a", null, "b,c", 'd"e\\f', "NULL"],
  ["running", "pending"],
  undefined,
  [1, null, 3],
];

/** What {@linkcode TYPE_PROBE_SQL} returns on every adapter. */
export const TYPE_PROBE_EXPECTED = {
  int8: 1,
  int8_beyond_safe: 9007199254740993n,
  int4: 2,
  float8: 1.5,
  numeric: "12345678901234567890.123",
  bool: true,
  null_int8: null,
  text: "text",
  uuid: "00000000-0000-0000-0000-000000000001",
  timestamptz: new Date("2024-01-02T03:04:05.678Z"),
  // years below 100 and before the common era: not read as 19xx/20xx
  timestamptz_year_1: new Date("0001-02-03T04:05:06.789Z"),
  timestamptz_year_99: new Date("0099-12-31T23:59:59Z"),
  timestamptz_bc: new Date("-000043-03-15T12:00:00Z"),
  date: new Date("2024-01-02T00:00:00Z"),
  infinity: Infinity,
  interval: "01:00:00",
  jsonb: { a: [1, { b: null }] },
  jsonb_string: "str",
  json: { a: 1 },
  bytea: new Uint8Array([1, 255]),
  int4_array: [1, null],
  int8_array: [1, null],
  text_array: ["a", "b c", null, "NULL", "", 'q"u\\o,te{}'],
  nested_array: [[1, 2], [3, 4]],
  timestamptz_array: [new Date("2024-01-01T00:00:00Z"), null],
  uuid_array: ["00000000-0000-0000-0000-000000000002"],
  jsonb_array: [{ a: 1 }, null],
  bool_array: [true, false, null],
  empty_array: [],
  enum: "running",
  enum_array: ["pending", null, "running"],
  param_json_text: { k: [1] },
  param_json_object: { z: [1, "two"] },
  param_int8: 5,
  param_date: new Date(0),
  param_text_array: ["a", null, "b,c", 'd"e\\f', "NULL"],
  param_enum_array: ["running", "pending"],
  param_undefined: null,
  param_int8_array: [1, null, 3],
};

/**
 * Runs {@linkcode TYPE_PROBE_SQL} on `db`. The enum is created after the connection opened, the
 * way a migration creates `jobengine.job_status`, so neither driver knows it in advance.
 */
export async function runTypeProbe(db: Database): Promise<Record<string, unknown>> {
  await db.query(
    "drop type if exists probe_status; create type probe_status as enum ('pending', 'running')",
  );
  const rows = await db.query(TYPE_PROBE_SQL, TYPE_PROBE_PARAMS);
  equal(rows.length, 1);
  return rows[0]!;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits until `check()` is true, for at most `ms` milliseconds. */
export async function eventually(check: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("Condition not met in time");
    await delay(10);
  }
}

/** Registers the shared adapter contract as tests named `<label> ...`. */
export function adapterContract(label: string, open: OpenDatabase): void {
  const test = (name: string, fn: (db: Database) => Promise<void>) =>
    Deno.test(`${label} ${name}`, async () => {
      const { db, done } = await open();
      try {
        await fn(db);
      } finally {
        await done();
      }
    });

  test("query() normalises every type to the port's shapes", async (db) => {
    deepStrictEqual(await runTypeProbe(db), TYPE_PROBE_EXPECTED);
  });

  test("query() gives every timestamp its own Date, also when rows repeat one", async (db) => {
    const rows = await db.query<{ at: Date }>(
      `select at from (values ('2024-01-02T03:04:05.678Z'::timestamptz, 1), ('2024-01-02T03:04:05.678Z', 2),
         ('1999-12-31T23:59:59.999Z', 3), ('2024-01-02T03:04:05.678Z', 4)) v(at, n) order by n`,
    );
    deepStrictEqual(rows.map((r) => r.at.toISOString()), [
      "2024-01-02T03:04:05.678Z",
      "2024-01-02T03:04:05.678Z",
      "1999-12-31T23:59:59.999Z",
      "2024-01-02T03:04:05.678Z",
    ]);
    rows[0]!.at.setTime(0);
    equal(rows[1]!.at.toISOString(), "2024-01-02T03:04:05.678Z", "a Date is never shared");
  });

  test("query() returns plain row objects and an empty array for no rows", async (db) => {
    const rows = await db.query("select 1 as a where $1::boolean", [false]);
    deepStrictEqual(rows, []);
    const [row] = await db.query("select 1 as a");
    deepStrictEqual(row, { a: 1 });
    equal(Object.getPrototypeOf(row), Object.prototype);
  });

  test("query() without parameters runs several statements and returns the last rows", async (db) => {
    const rows = await db.query(
      "create temporary table multi (x int); insert into multi values (1), (2); " +
        "select x from multi order by x",
    );
    deepStrictEqual(rows, [{ x: 1 }, { x: 2 }]);
  });

  test("transaction() commits when fn resolves", async (db) => {
    await db.query("create table tx_commit (x int)");
    const result = await db.transaction(async (tx) => {
      await tx.query("insert into tx_commit values ($1)", [1]);
      const [row] = await tx.query<{ n: number }>("select count(*)::int8 as n from tx_commit");
      return row!.n;
    });
    equal(result, 1);
    deepStrictEqual(await db.query("select x from tx_commit"), [{ x: 1 }]);
  });

  test("transaction() rolls back and rethrows when fn throws", async (db) => {
    await db.query("create table tx_rollback (x int)");
    const boom = new Error("boom");
    await rejects(
      db.transaction(async (tx) => {
        await tx.query("insert into tx_rollback values (1)");
        throw boom;
      }),
      (error) => error === boom,
    );
    deepStrictEqual(await db.query("select x from tx_rollback"), []);
  });

  test("transaction() rolls back on a SQL error and maps it", async (db) => {
    await db.query("create table tx_sql_error (x int)");
    await rejects(
      db.transaction(async (tx) => {
        await tx.query("insert into tx_sql_error values (1)");
        await tx.query(
          `do $$ begin raise exception 'Cannot transition job 7 to "running"' using errcode = 'JE001',
             detail = '{"from":"completed","to":"running","jobId":"7"}'; end $$`,
        );
      }),
      (error) => error instanceof InvalidTransitionError && error.from === "completed",
    );
    deepStrictEqual(await db.query("select x from tx_sql_error"), []);
  });

  test("query() turns a registered SQLSTATE into its typed error with the detail parsed", async (db) => {
    await rejects(
      db.query(
        `do $$ begin raise exception 'Job 42 not found' using errcode = 'JE004',
           detail = '{"jobId":"42","tenantId":"acme"}'; end $$`,
      ),
      (error) => {
        ok(error instanceof JobNotFoundError, String(error));
        equal(error.code, "not_found");
        equal(error.sqlstate, "JE004");
        equal(error.message, "Job 42 not found");
        deepStrictEqual(error.details, { jobId: "42", tenantId: "acme" });
        ok(error.cause, "keeps the driver error as cause");
        return true;
      },
    );
    // Through a parameterised statement (extended protocol) too.
    await db.query(
      `create function raise_je(p_code text, p_detail text) returns void language plpgsql as $$
       begin raise exception 'Lease mismatch' using errcode = p_code, detail = p_detail; end $$`,
    );
    await rejects(
      db.query("select raise_je($1, $2)", ["JE002", '{"jobId":"9"}']),
      (error) =>
        error instanceof LeaseMismatchError && error.details.jobId === "9" &&
        error.sqlstate === "JE002",
    );
    // Unregistered SQLSTATEs keep the driver's error, with its code.
    await rejects(
      db.query("select 1 / $1::int", [0]),
      (error) => error instanceof Error && (error as { code?: unknown }).code === "22012",
    );
  });

  test("listen() delivers NOTIFY payloads until unlistened", async (db) => {
    const got: string[] = [];
    const unlisten = await db.listen("contract_chan", (payload) => got.push(payload));
    await db.query("select pg_notify('contract_chan', 'one')");
    await db.transaction(async (tx) => {
      await tx.query("select pg_notify('contract_chan', $1)", ["two"]);
    });
    await eventually(() => got.length === 2);
    deepStrictEqual(got, ["one", "two"]);
    await unlisten();
    await db.query("select pg_notify('contract_chan', 'three')");
    await delay(100);
    deepStrictEqual(got, ["one", "two"]);
  });

  test("listen() keeps delivering when a handler throws", async (db) => {
    const got: string[] = [];
    const unlistenBad = await db.listen("contract_throw", () => {
      throw new Error("handler bug");
    });
    const unlisten = await db.listen("contract_throw", (payload) => got.push(payload));
    await db.query("select pg_notify('contract_throw', 'a')");
    await db.query("select pg_notify('contract_throw', 'b')");
    await eventually(() => got.length === 2);
    deepStrictEqual(got, ["a", "b"]);
    await unlisten();
    await unlistenBad();
  });

  test("listen() refuses a channel name the adapters would treat differently", async (db) => {
    await rejects(db.listen("Mixed", () => {}), TypeError);
    await rejects(db.listen("a;b", () => {}), TypeError);
  });

  test("query() serves many concurrent callers", async (db) => {
    const values = await Promise.all(
      Array.from(
        { length: 50 },
        (_, i) => db.query<{ v: number }>("select $1::int as v", [i]).then((rows) => rows[0]!.v),
      ),
    );
    deepStrictEqual(values, Array.from({ length: 50 }, (_, i) => i));
  });

  test("query() outside an open transaction sees its writes only after commit", async (db) => {
    await db.query("create table tx_visibility (x int)");
    let release!: () => void;
    const held = new Promise<void>((resolve) => release = resolve);
    let inserted!: () => void;
    const didInsert = new Promise<void>((resolve) => inserted = resolve);
    const tx = db.transaction(async (tx) => {
      await tx.query("insert into tx_visibility values (1)");
      inserted();
      await held;
    });
    await didInsert;
    const outside = db.query<{ n: number }>("select count(*)::int8 as n from tx_visibility");
    // On PGlite the outside query waits for the transaction; on PostgreSQL it sees 0 rows.
    const early = await Promise.race([outside, delay(100).then(() => "waiting" as const)]);
    ok(early === "waiting" || early[0]?.n === 0, `unexpected ${JSON.stringify(early)}`);
    release();
    await tx;
    const after = await db.query<{ n: number }>("select count(*)::int8 as n from tx_visibility");
    equal(after[0]!.n, 1);
    await outside;
  });
}
