import { deepStrictEqual, equal, match, ok, rejects } from "node:assert/strict";
import {
  migrate,
  type Migration,
  MigrationChecksumError,
  MigrationError,
  MIGRATIONS,
  sha256Hex,
} from "../../src/db/migrate.ts";
import { createPgliteDatabase } from "../../src/db/pglite.ts";
import { createPostgresDatabase } from "../../src/db/postgres.ts";
import type { Database } from "../../src/db/port.ts";
import { transitionPairs } from "../../src/job/state_machine.ts";
import { findPgBin } from "../../scripts/pg_cluster.ts";
import { freshDatabase } from "../_db.ts";

/** Builds a migration list from `[name, kind, sql]` triples. */
async function files(
  ...specs: Array<[string, Migration["kind"], string]>
): Promise<Migration[]> {
  return await Promise.all(
    specs.map(async ([name, kind, sql]) => ({ name, kind, sql, checksum: await sha256Hex(sql) })),
  );
}

const V1 = "create table jobengine.t_a (id int primary key, note text);\n" +
  "create table jobengine.t_log (name text);\n" +
  "insert into jobengine.t_log values ('000001_a.sql');";
const V2 = "create table jobengine.t_b (a_id int references jobengine.t_a (id));\n" +
  "insert into jobengine.t_log values ('000002_b.sql');";
const R10 =
  "create or replace function jobengine.t_answer() returns int language sql as $$ select 1 $$;\n" +
  "insert into jobengine.t_log values ('010_fn.sql');";
const R20 = "create or replace view jobengine.t_view as\n" +
  "  select a.id, jobengine.t_answer() as answer from jobengine.t_a a join jobengine.t_b b on b.a_id = a.id;\n" +
  "insert into jobengine.t_log values ('020_view.sql');";

/** The test list, deliberately out of order: migrate() sorts it. */
function testList(): Promise<Migration[]> {
  return files(
    ["020_view.sql", "repeatable", R20],
    ["000002_b.sql", "versioned", V2],
    ["010_fn.sql", "repeatable", R10],
    ["000001_a.sql", "versioned", V1],
  );
}

async function logOf(db: Database): Promise<string[]> {
  const rows = await db.query<{ name: string }>("select name from jobengine.t_log");
  return rows.map((row) => row.name);
}

// Starting PGlite takes seconds, so the PGlite tests share one instance and reset the schema.
let shared: Promise<Database> | undefined;
function withPglite(name: string, fn: (db: Database) => Promise<void>): void {
  Deno.test(name, async () => {
    shared ??= createPgliteDatabase();
    const db = await shared;
    await db.query("drop schema if exists jobengine cascade");
    await fn(db);
  });
}

withPglite(
  "migrate() applies versioned files in order, then repeatable ones by name",
  async (db) => {
    const result = await migrate(db, { migrations: await testList() });
    const order = ["000001_a.sql", "000002_b.sql", "010_fn.sql", "020_view.sql"];
    deepStrictEqual(result, { applied: order, skipped: 0 });
    deepStrictEqual(await logOf(db), order);
    const rows = await db.query(
      "select version, name, kind, checksum, applied_at from jobengine.schema_migrations order by name",
    );
    deepStrictEqual(rows.map((row) => [row.version, row.name, row.kind]), [
      ["000001", "000001_a.sql", "versioned"],
      ["000002", "000002_b.sql", "versioned"],
      ["R__010_fn", "010_fn.sql", "repeatable"],
      ["R__020_view", "020_view.sql", "repeatable"],
    ]);
    ok(rows.every((row) => row.applied_at instanceof Date));
    equal(rows[0]!.checksum, await sha256Hex(V1));
  },
);

withPglite("migrate() a second time is a no-op", async (db) => {
  const list = await testList();
  await migrate(db, { migrations: list });
  deepStrictEqual(await migrate(db, { migrations: list }), { applied: [], skipped: 4 });
  deepStrictEqual((await logOf(db)).length, 4);
});

withPglite("migrate() refuses a versioned file edited after it was applied", async (db) => {
  await migrate(db, { migrations: await testList() });
  const edited = await files(
    ["000001_a.sql", "versioned", V1 + "\n-- a harmless-looking edit"],
    ["000002_b.sql", "versioned", V2],
    ["000003_c.sql", "versioned", "create table jobengine.t_c (x int);"],
  );
  await rejects(migrate(db, { migrations: edited }), (error) => {
    ok(error instanceof MigrationChecksumError, String(error));
    equal(error.migration, "000001_a.sql");
    match(
      error.message,
      /^Migration 000001_a\.sql was edited after it was applied: checksum [0-9a-f]{64} \(now\) != [0-9a-f]{64} \(applied\)$/,
    );
    return true;
  });
  // Nothing after the refusal ran.
  deepStrictEqual(await db.query("select to_regclass('jobengine.t_c') as t"), [{ t: null }]);
});

withPglite(
  "migrate() re-applies a repeatable file whose checksum changed, and only it",
  async (db) => {
    const list = await testList();
    await migrate(db, { migrations: list });
    const changed = list.map(async (m) =>
      m.name === "010_fn.sql"
        ? (await files([m.name, m.kind, m.sql.replace("select 1", "select 42")]))[0]!
        : m
    );
    const result = await migrate(db, { migrations: await Promise.all(changed) });
    deepStrictEqual(result, { applied: ["010_fn.sql"], skipped: 3 });
    deepStrictEqual(await db.query("select jobengine.t_answer() as answer"), [{ answer: 42 }]);
    deepStrictEqual((await logOf(db)).filter((name) => name === "010_fn.sql").length, 2);
  },
);

withPglite(
  "migrate() applies a versioned file added later before changed repeatable ones",
  async (db) => {
    const list = await testList();
    await migrate(db, { migrations: list });
    const later = [
      ...list.filter((m) => m.name !== "020_view.sql"),
      ...await files(
        ["020_view.sql", "repeatable", R20 + "\n-- changed"],
        ["000003_c.sql", "versioned", "insert into jobengine.t_log values ('000003_c.sql');"],
      ),
    ];
    const result = await migrate(db, { migrations: later });
    deepStrictEqual(result.applied, ["000003_c.sql", "020_view.sql"]);
  },
);

withPglite("migrate() rolls back a failing file and reports it; earlier files stay", async (db) => {
  const list = await files(
    ["000001_a.sql", "versioned", V1],
    ["000002_bad.sql", "versioned", "create table jobengine.t_half (x int);\nselect 1 / 0;"],
    ["000003_c.sql", "versioned", "create table jobengine.t_c (x int);"],
  );
  await rejects(migrate(db, { migrations: list }), (error) => {
    ok(error instanceof MigrationError, String(error));
    equal(error.migration, "000002_bad.sql");
    match(error.message, /^Migration 000002_bad\.sql failed: division by zero$/);
    ok(error.cause);
    return true;
  });
  const names = await db.query<{ name: string }>(
    "select name from jobengine.schema_migrations order by name",
  );
  deepStrictEqual(names.map((row) => row.name), ["000001_a.sql"]);
  deepStrictEqual(await db.query("select to_regclass('jobengine.t_half') as t"), [{ t: null }]);
});

withPglite(
  "migrate() refuses malformed names and duplicate versions before touching anything",
  async (db) => {
    await rejects(
      migrate(db, { migrations: await files(["1_a.sql", "versioned", "select 1"]) }),
      /Invalid versioned migration name "1_a\.sql": expected NNNNNN_name\.sql/,
    );
    await rejects(
      migrate(db, { migrations: await files(["0001_a.sql", "repeatable", "select 1"]) }),
      /Invalid repeatable migration name "0001_a\.sql": expected NNN_name\.sql/,
    );
    await rejects(
      migrate(db, {
        migrations: await files(
          ["000001_a.sql", "versioned", "select 1"],
          ["000001_b.sql", "versioned", "select 2"],
        ),
      }),
      MigrationError,
    );
    deepStrictEqual(await db.query("select to_regnamespace('jobengine') as s"), [{ s: null }]);
  },
);

Deno.test("migrate() test instance closes", async () => {
  if (shared) await (await shared).close();
});

Deno.test("MIGRATIONS embeds every SQL file with its SHA-256, versioned first, by name", async () => {
  ok(MIGRATIONS.length > 0, "the generated module lists the files of sql/");
  for (const m of MIGRATIONS) equal(m.checksum, await sha256Hex(m.sql), m.name);
  const versioned = MIGRATIONS.filter((m) => m.kind === "versioned").map((m) => m.name);
  const repeatable = MIGRATIONS.filter((m) => m.kind === "repeatable").map((m) => m.name);
  deepStrictEqual(MIGRATIONS.map((m) => m.name), [...versioned, ...repeatable]);
  deepStrictEqual(versioned, [...versioned].sort());
  deepStrictEqual(repeatable, [...repeatable].sort());
  ok(repeatable.includes("010_job_transitions.sql"));
});

Deno.test("the embedded MIGRATIONS apply cleanly to a new in-memory PGlite", async () => {
  const db = await createPgliteDatabase();
  try {
    const result = await migrate(db);
    deepStrictEqual(result, { applied: MIGRATIONS.map((m) => m.name), skipped: 0 });
    const pairs = await db.query<{ from_status: string; to_status: string }>(
      "select from_status, to_status from jobengine.job_transitions order by 1, 2",
    );
    const expected = transitionPairs().map(([from, to]) => `${from}->${to}`).sort();
    deepStrictEqual(pairs.map((row) => `${row.from_status}->${row.to_status}`).sort(), expected);
    deepStrictEqual(await migrate(db), { applied: [], skipped: MIGRATIONS.length });
  } finally {
    await db.close();
  }
});

Deno.test("postgres: the test template is up to date with the embedded MIGRATIONS", async () => {
  const fresh = await freshDatabase();
  const db = createPostgresDatabase(fresh.url, { max: 1 });
  try {
    deepStrictEqual(await migrate(db), { applied: [], skipped: MIGRATIONS.length });
  } finally {
    await db.close();
    await fresh.drop();
  }
});

Deno.test("postgres: concurrent migrate() calls apply each file exactly once", async () => {
  const fresh = await freshDatabase();
  const pools = Array.from({ length: 4 }, () => createPostgresDatabase(fresh.url, { max: 2 }));
  try {
    await pools[0]!.query("drop schema jobengine cascade");
    const list = await testList();
    const results = await Promise.all(pools.map((db) => migrate(db, { migrations: list })));
    const applied = results.flatMap((r) => r.applied).sort();
    deepStrictEqual(applied, ["000001_a.sql", "000002_b.sql", "010_fn.sql", "020_view.sql"]);
    for (const r of results) equal(r.applied.length + r.skipped, 4);
    deepStrictEqual((await logOf(pools[0]!)).sort(), applied);

    // The real schema, too, from an empty database.
    await pools[0]!.query("drop schema jobengine cascade");
    const real = await Promise.all(pools.map((db) => migrate(db)));
    deepStrictEqual(
      real.flatMap((r) => r.applied).sort(),
      MIGRATIONS.map((m) => m.name).sort(),
    );
    const [count] = await pools[0]!.query<{ n: number }>(
      "select count(*)::int8 as n from jobengine.schema_migrations",
    );
    equal(count!.n, MIGRATIONS.length);
  } finally {
    for (const db of pools) await db.close();
    await fresh.drop();
  }
});

/**
 * Upgrade to version 3 (the outbox split by write path) from a version-2 database that holds
 * events: they move over unchanged, in order, into the right partition, and the global sequence
 * continues after them. Version 2's own repeatable files are not kept; the ones that apply to a
 * version-2 schema stand in for them (among them `record_egress_blocked`, which returns the
 * table's row type and so must be dropped and created again), and the events are inserted the
 * way version 2's table took them, numbered by its identity.
 */
async function upgradeKeepsTheOutbox(db: Database): Promise<void> {
  const v2 = MIGRATIONS.filter((m) =>
    m.name < "000003" || m.name === "000_core.sql" || m.name === "030_lifecycle.sql"
  );
  equal(v2.length, 5);
  await migrate(db, { migrations: v2 });
  await db.query(
    `insert into jobengine.timeline_events (type, tenant_id, subject_id, data)
     select t, 'default', '01a22706-c84d-7cbf-a50e-43ffd2e47990'::uuid, jsonb_build_object('n', n)
       from unnest(array['job.created', 'job.scheduled', 'job.started', 'job.completed', 'job.blocked',
                         'sealed.egress_blocked']) with ordinality u(t, n)`,
  );
  const before = await db.query<{ sequence: number; id: string; type: string }>(
    "select sequence, id, type, data from jobengine.timeline_events order by sequence",
  );
  equal(before.length, 6);

  await migrate(db);
  const after = await db.query<{ sequence: number; id: string; type: string; part: string }>(
    `select sequence, id, type, data, tableoid::regclass::text as part
       from jobengine.timeline_events order by sequence`,
  );
  deepStrictEqual(after.map(({ part: _, ...row }) => row), before);
  deepStrictEqual(after.map((row) => row.part.replace("jobengine.timeline_events_", "")), [
    "intake",
    "intake",
    "work",
    "work",
    "intake",
    "work",
  ]);
  await db.query(
    `select count(*) from jobengine.create_workflow('[{"ref": "a", "type": "after.upgrade"}]')`,
  );
  const [next] = await db.query<{ sequence: number; type: string }>(
    "select sequence, type from jobengine.timeline_events order by sequence desc limit 1",
  );
  deepStrictEqual(next, { sequence: before.at(-1)!.sequence + 1, type: "job.created" });
  deepStrictEqual(await migrate(db), { applied: [], skipped: MIGRATIONS.length });
}

Deno.test("pglite: upgrading to version 3 keeps every event and continues the sequence", async () => {
  const db = await createPgliteDatabase();
  try {
    await upgradeKeepsTheOutbox(db);
  } finally {
    await db.close();
  }
});

Deno.test("postgres: upgrading to version 3 keeps every event and continues the sequence", async () => {
  const fresh = await freshDatabase({ empty: true });
  const db = createPostgresDatabase(fresh.url, { max: 1 });
  try {
    await upgradeKeepsTheOutbox(db);
  } finally {
    await db.close();
    await fresh.drop();
  }
});

/** Runs one SQL file through the real psql, as one transaction, stopping at the first error. */
async function psqlFile(url: string, path: string): Promise<void> {
  const out = await new Deno.Command(`${Deno.env.get("JOBENGINE_PG_BIN") ?? findPgBin()}/psql`, {
    args: ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-d", url, "-f", path],
    stdout: "piped",
    stderr: "piped",
    env: { PGCONNECT_TIMEOUT: "10" },
  }).output();
  ok(out.success, `psql -f ${path}: ${new TextDecoder().decode(out.stderr)}`);
}

type SchemaPart =
  | "relations"
  | "columns"
  | "constraints"
  | "indexes"
  | "functions"
  | "triggers"
  | "enums"
  | "rows";

/** The schema `jobengine` as text, OIDs left out: relations, columns, constraints, indexes,
 * functions (with a digest of their bodies), triggers, enum labels, and the generated rows. */
async function schemaOf(db: Database): Promise<Record<SchemaPart, string[]>> {
  const lines = async (sql: string) =>
    (await db.query<{ line: string }>(sql)).map((row) => row.line);
  return {
    relations: await lines(
      `select c.relname || ' ' || c.relkind::text || ' ' || coalesce(c.reloptions::text, '') as line
      from pg_class c where c.relnamespace = 'jobengine'::regnamespace order by 1`,
    ),
    columns: await lines(
      `select c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
        || ' ' || a.attnotnull::text || ' ' || a.attidentity::text || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '') as line
      from pg_attribute a join pg_class c on c.oid = a.attrelid
      left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
      where c.relnamespace = 'jobengine'::regnamespace and a.attnum > 0 and not a.attisdropped order by 1`,
    ),
    constraints: await lines(
      `select conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) as line
      from pg_constraint where connamespace = 'jobengine'::regnamespace order by 1`,
    ),
    indexes: await lines(
      `select indexdef as line from pg_indexes where schemaname = 'jobengine' order by 1`,
    ),
    functions: await lines(`select proname || '(' || pg_get_function_identity_arguments(oid) || ') '
        || pg_get_function_result(oid) || ' ' || provolatile::text || ' ' || coalesce(proconfig::text, '') || ' ' || md5(prosrc) as line
      from pg_proc where pronamespace = 'jobengine'::regnamespace order by 1`),
    triggers: await lines(
      `select pg_get_triggerdef(t.oid) as line from pg_trigger t join pg_class c on c.oid = t.tgrelid
      where c.relnamespace = 'jobengine'::regnamespace and not t.tgisinternal order by 1`,
    ),
    enums: await lines(
      `select t.typname || ' ' || string_agg(e.enumlabel, ',' order by e.enumsortorder) as line
      from pg_enum e join pg_type t on t.oid = e.enumtypid
      where t.typnamespace = 'jobengine'::regnamespace group by t.typname order by 1`,
    ),
    rows: await lines(
      `select 'job_transitions ' || from_status || '->' || to_status as line from jobengine.job_transitions
      union all select 'settings ' || key from jobengine.settings order by 1`,
    ),
  };
}

Deno.test("postgres: sql/ applied with plain psql, file by file, gives the schema migrate() gives", async () => {
  const plain = await freshDatabase({ empty: true });
  const migrated = await freshDatabase({ empty: true });
  const a = createPostgresDatabase(plain.url, { max: 1 });
  const b = createPostgresDatabase(migrated.url, { max: 1 });
  try {
    const root = new URL("../../sql/", import.meta.url);
    for (const dir of ["migrations", "repeatable"]) {
      const names = [...Deno.readDirSync(new URL(`${dir}/`, root))]
        .map((entry) => entry.name).filter((name) => name.endsWith(".sql")).sort();
      ok(names.length > 0, `sql/${dir}/ has files`);
      for (const name of names) await psqlFile(plain.url, new URL(`${dir}/${name}`, root).pathname);
    }
    await migrate(b);
    const viaPsql = await schemaOf(a);
    ok(viaPsql.functions.some((line) => line.startsWith("claim_jobs(")), "the SQL API is there");
    deepStrictEqual(viaPsql, await schemaOf(b));
    // The runner (and so `deno task start`) takes the psql-built database over: it records the
    // versioned files as applied (their rows came with the last repeatable file) and runs only
    // the repeatable ones again, which are written to be run again.
    const takenOver = await migrate(a);
    deepStrictEqual(
      takenOver.applied.filter((name) =>
        MIGRATIONS.find((m) => m.name === name)?.kind === "versioned"
      ),
      [],
    );
    deepStrictEqual(await schemaOf(a), viaPsql);
    deepStrictEqual(await migrate(a), { applied: [], skipped: MIGRATIONS.length });
    const bookkeeping =
      "select version, name, kind, checksum from jobengine.schema_migrations order by 1";
    deepStrictEqual(await a.query(bookkeeping), await b.query(bookkeeping));
  } finally {
    await a.close();
    await b.close();
    await plain.drop();
    await migrated.drop();
  }
});
