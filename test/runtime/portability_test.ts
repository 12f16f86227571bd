/**
 * SPEC: "no runtime-specific API outside `src/runtime/`". Every source file under `src/` but
 * `src/runtime/` is read with its comments taken out, and none may use the `Deno` namespace.
 *
 * @module
 */
import assert from "node:assert/strict";

const SRC = new URL("../../src/", import.meta.url);

/** Every `.ts` file under `dir`, as paths relative to `src/`. */
async function sourceFiles(dir: URL, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = prefix + entry.name;
    if (entry.isDirectory) {
      out.push(...await sourceFiles(new URL(`${entry.name}/`, dir), `${path}/`));
    } else if (entry.name.endsWith(".ts")) out.push(path);
  }
  return out.sort();
}

/** The code of a TypeScript file without its block and line comments (strings kept). */
function withoutComments(text: string): string {
  let out = "";
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    const next = text[i + 1];
    if (ch === "/" && next === "*") {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? text.length : end + 2;
    } else if (ch === "/" && next === "/") {
      const end = text.indexOf("\n", i);
      i = end < 0 ? text.length : end;
    } else if (ch === '"' || ch === "'" || ch === "`") {
      let j = i + 1;
      while (j < text.length && text[j] !== ch) j += text[j] === "\\" ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
    } else {
      out += ch;
      i++;
    }
  }
  return out;
}

Deno.test("withoutComments keeps code and strings and drops comments", () => {
  const code = [
    "/** Deno.serve(app.fetch) */",
    'const url = "postgres://host/db"; // Deno.env',
    "Deno.exit(1);",
  ].join("\n");
  const stripped = withoutComments(code);
  assert.match(stripped, /postgres:\/\/host\/db/);
  assert.match(stripped, /Deno\.exit\(1\)/);
  assert.doesNotMatch(stripped, /Deno\.serve|Deno\.env/);
});

Deno.test("no source file outside src/runtime/ uses the Deno namespace", async () => {
  const files = (await sourceFiles(SRC)).filter((path) => !path.startsWith("runtime/"));
  assert.ok(files.length > 20, `expected the source tree, found ${files.length} files`);
  const offenders: string[] = [];
  for (const path of files) {
    const code = withoutComments(await Deno.readTextFile(new URL(path, SRC)));
    for (const [index, line] of code.split("\n").entries()) {
      if (/\bDeno\s*\./.test(line)) offenders.push(`src/${path}:${index + 1}: ${line.trim()}`);
    }
  }
  assert.deepEqual(offenders, []);
});
