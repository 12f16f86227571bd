import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { connectDatabase, DEFAULT_DATA_DIR } from "../../src/db/connect.ts";

Deno.test("connectDatabase() picks postgres.js when DATABASE_URL is set, without connecting yet", async () => {
  const db = await connectDatabase({
    DATABASE_URL: "postgres://nobody@127.0.0.1:1/none",
    JOBENGINE_DATA_DIR: "/nonexistent/ignored",
  });
  try {
    equal(db.kind, "postgres");
  } finally {
    await db.close();
  }
});

Deno.test("connectDatabase() picks PGlite persisted under JOBENGINE_DATA_DIR when DATABASE_URL is empty", async () => {
  const root = await Deno.makeTempDir({ prefix: "jobengine_connect_" });
  const dataDir = `${root}/a/b`;
  try {
    const db = await connectDatabase({ DATABASE_URL: " ", JOBENGINE_DATA_DIR: dataDir });
    try {
      equal(db.kind, "pglite");
      deepStrictEqual(await db.query("select 1 as one"), [{ one: 1 }]);
    } finally {
      await db.close();
    }
    ok((await Deno.stat(`${dataDir}/PG_VERSION`)).isFile);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("DEFAULT_DATA_DIR is .jobengine/pglite/", () => {
  equal(DEFAULT_DATA_DIR, ".jobengine/pglite/");
});
