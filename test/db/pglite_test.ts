import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { createPgliteDatabase } from "../../src/db/pglite.ts";
import type { Database } from "../../src/db/port.ts";
import { adapterContract } from "./_contract.ts";

// One in-memory instance serves the whole contract (each test uses its own table names):
// starting PGlite takes seconds, and the last registered test closes it.
let shared: Promise<Database> | undefined;
adapterContract("pglite:", async () => {
  shared ??= createPgliteDatabase();
  return { db: await shared, done: async () => {} };
});
Deno.test("pglite: the contract's shared instance closes", async () => {
  if (shared) await (await shared).close();
});

Deno.test("createPgliteDatabase() creates a nested data directory and persists across reopen", async () => {
  const root = await Deno.makeTempDir({ prefix: "jobengine_pglite_" });
  const dataDir = `${root}/nested/pglite`;
  try {
    const first = await createPgliteDatabase({ dataDir });
    await first.query("create table kept (x int); insert into kept values (7)");
    await first.close();
    ok((await Deno.stat(`${dataDir}/PG_VERSION`)).isFile);
    const second = await createPgliteDatabase({ dataDir });
    try {
      deepStrictEqual(await second.query("select x from kept"), [{ x: 7 }]);
    } finally {
      await second.close();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("pglite: a query issued during another flow's transaction waits for its commit", async () => {
  const db = await createPgliteDatabase();
  try {
    await db.query("create table waits (x int)");
    const order: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => release = resolve);
    const tx = db.transaction(async (tx) => {
      await tx.query("insert into waits values (1)");
      order.push("tx inserted");
      await held;
      order.push("tx done");
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    const outside = db.query<{ n: number }>("select count(*)::int8 as n from waits").then(
      (rows) => {
        order.push("outside ran");
        return rows[0]!.n;
      },
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    deepStrictEqual(order, ["tx inserted"]);
    release();
    await tx;
    equal(await outside, 1);
    deepStrictEqual(order, ["tx inserted", "tx done", "outside ran"]);
  } finally {
    await db.close();
  }
});

Deno.test("pglite: close() is idempotent and unlisten after close is a no-op", async () => {
  const db = await createPgliteDatabase();
  equal(db.kind, "pglite");
  const unlisten = await db.listen("after_close", () => {});
  await db.close();
  await db.close();
  await unlisten();
});
