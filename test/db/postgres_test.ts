import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import { DatabaseUnavailableError } from "../../src/errors.ts";
import { createPgliteDatabase } from "../../src/db/pglite.ts";
import { createPostgresDatabase } from "../../src/db/postgres.ts";
import { freshDatabase } from "../_db.ts";
import { adapterContract, runTypeProbe } from "./_contract.ts";

adapterContract("postgres:", async () => {
  const fresh = await freshDatabase();
  const db = createPostgresDatabase(fresh.url, { max: 4 });
  return {
    db,
    async done() {
      await db.close();
      await fresh.drop();
    },
  };
});

Deno.test("postgres and pglite return identical values for the same query", async () => {
  const fresh = await freshDatabase();
  const postgres = createPostgresDatabase(fresh.url, { max: 2 });
  const pglite = await createPgliteDatabase();
  try {
    equal(postgres.kind, "postgres");
    equal(pglite.kind, "pglite");
    deepStrictEqual(await runTypeProbe(postgres), await runTypeProbe(pglite));
  } finally {
    await postgres.close();
    await pglite.close();
    await fresh.drop();
  }
});

Deno.test("postgres: a query against a closed port fails fast with DatabaseUnavailableError", async () => {
  // Bind a port, then free it: nothing listens there afterwards.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  const db = createPostgresDatabase(`postgres://nobody@127.0.0.1:${port}/none`, {
    connectTimeout: 2,
  });
  try {
    const started = Date.now();
    await rejects(db.query("select 1"), (error) => {
      ok(error instanceof DatabaseUnavailableError, String(error));
      equal(error.code, "database_unavailable");
      return true;
    });
    await rejects(db.transaction(async () => {}), DatabaseUnavailableError);
    await rejects(db.listen("down_chan", () => {}), DatabaseUnavailableError);
    ok(Date.now() - started < 5000, "fails within the connect timeout");
  } finally {
    await db.close();
  }
});

Deno.test("postgres: a query cut off by a terminated backend fails, then the pool recovers", async () => {
  const fresh = await freshDatabase();
  const db = createPostgresDatabase(fresh.url, { max: 1 });
  const admin = createPostgresDatabase(fresh.url, { max: 1 });
  const cutOff = async () => {
    const [row] = await db.query<{ pid: number }>("select pg_backend_pid() as pid");
    const sleeping = db.query("select pg_sleep(5)");
    await new Promise((resolve) => setTimeout(resolve, 200));
    await admin.query("select pg_terminate_backend($1)", [row!.pid]);
    await rejects(sleeping, DatabaseUnavailableError);
  };
  try {
    await cutOff();
    deepStrictEqual(await db.query("select 1 as ok"), [{ ok: 1 }]);
    await cutOff();
    equal(await db.transaction(async (tx) => (await tx.query("select 2 as ok"))[0]!.ok), 2);
  } finally {
    await admin.close();
    await db.close();
    await fresh.drop();
  }
});

Deno.test("postgres: listen() survives its connection being terminated", async () => {
  const fresh = await freshDatabase();
  const db = createPostgresDatabase(fresh.url, { max: 2, applicationName: "je_listen_test" });
  try {
    const got: string[] = [];
    const unlisten = await db.listen("survivor", (payload) => got.push(payload));
    await db.query(
      "select pg_terminate_backend(pid) from pg_stat_activity " +
        "where datname = current_database() and pid <> pg_backend_pid() and query ilike 'listen%'",
    );
    // postgres.js re-subscribes after a back-off; keep notifying until one arrives.
    const deadline = Date.now() + 10_000;
    while (got.length === 0 && Date.now() < deadline) {
      await db.query("select pg_notify('survivor', 'again')");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    ok(got.includes("again"), "a notification arrives after the reconnect");
    await unlisten();
  } finally {
    await db.close();
    await fresh.drop();
  }
});

Deno.test("postgres: a pool query chosen as a deadlock's victim is sent again and succeeds", async () => {
  const fresh = await freshDatabase();
  const db = createPostgresDatabase(fresh.url, { max: 1 });
  const other = createPostgresDatabase(fresh.url, { max: 1 });
  try {
    await db.query(`
      create table t (id int primary key);
      insert into t values (1), (2);
      create sequence attempts;
      -- Locks row a, waits (first attempt only) until another session waits for a lock, then
      -- locks row b. Its short deadlock_timeout makes it the session PostgreSQL aborts.
      create function lock_two(a int, b int) returns bigint language plpgsql
        set deadlock_timeout = '50ms' as $$
      begin
        perform nextval('attempts');
        perform from t where id = a for update;
        if currval('attempts') = 1 then
          -- pg_stat_activity is read once per transaction unless the snapshot is cleared
          while not exists (select from pg_stat_activity
                            where datname = current_database() and wait_event_type = 'Lock') loop
            perform pg_sleep(0.01);
            perform pg_stat_clear_snapshot();
          end loop;
        end if;
        perform from t where id = b for update;
        return currval('attempts');
      end $$`);
    // The order is forced, not timed: `other` holds row 2, lock_two takes row 1, `other` waits
    // for row 1, then lock_two asks for row 2 and is the one whose deadlock check fires first.
    let holdsRowTwo!: () => void;
    const rowTwoHeld = new Promise<void>((resolve) => holdsRowTwo = resolve);
    const opposite = other.transaction(async (tx) => {
      await tx.query("set local deadlock_timeout = '10s'");
      await tx.query("select from t where id = 2 for update");
      holdsRowTwo();
      // until lock_two holds row 1 and sleeps in its loop
      while (
        !(await tx.query<{ sleeping: boolean }>(
          `select pg_stat_clear_snapshot(), exists (select from pg_stat_activity
             where datname = current_database() and wait_event = 'PgSleep') as sleeping`,
        ))[0]!.sleeping
      ) await new Promise((resolve) => setTimeout(resolve, 10));
      await tx.query("select from t where id = 1 for update"); // waits for lock_two's row 1
    });
    await rowTwoHeld;
    const [row] = await db.query<{ attempt: number }>("select lock_two(1, 2) as attempt");
    // the first attempt deadlocked and was rolled back; the second waited for `opposite`
    equal(Number(row!.attempt), 2);
    await opposite;
  } finally {
    await other.close();
    await db.close();
    await fresh.drop();
  }
});

Deno.test("postgres: a deadlock's victim in a transaction is a DatabaseUnavailableError (try again: HTTP 503), not a raw error (500)", async () => {
  const fresh = await freshDatabase();
  const a = createPostgresDatabase(fresh.url, { max: 1 });
  const b = createPostgresDatabase(fresh.url, { max: 1 });
  try {
    await a.query("create table t (id int primary key); insert into t values (1), (2)");
    let held!: () => void;
    const bothHeld = new Promise<void>((resolve) => held = resolve);
    let aHolds!: () => void;
    const aHeld = new Promise<void>((resolve) => aHolds = resolve);
    const first = a.transaction(async (tx) => {
      await tx.query("set local deadlock_timeout = '50ms'"); // the victim: its check runs first
      await tx.query("select from t where id = 1 for update");
      aHolds();
      await bothHeld;
      await tx.query("select from t where id = 2 for update");
    });
    const second = b.transaction(async (tx) => {
      await tx.query("set local deadlock_timeout = '10s'");
      await aHeld;
      await tx.query("select from t where id = 2 for update");
      held();
      await tx.query("select from t where id = 1 for update");
    });
    const [victim, survivor] = await Promise.allSettled([first, second]);
    equal(survivor.status, "fulfilled");
    equal(victim.status, "rejected");
    const error = (victim as PromiseRejectedResult).reason;
    ok(error instanceof DatabaseUnavailableError, String(error));
    equal((error.cause as { code?: string }).code, "40P01");
  } finally {
    await a.close();
    await b.close();
    await fresh.drop();
  }
});
