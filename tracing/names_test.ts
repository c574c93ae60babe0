import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { ATTR, SPAN } from "./names.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const CATALOGUE = "tracing/names.ts";
const NAMES: ReadonlySet<string> = new Set(Object.values(SPAN));

/** Every `.ts` file of the tree outside node_modules, relative to the repository root. */
async function sourceFiles(dir = ROOT): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.startsWith(".") || entry.name === "node_modules") continue;
    const path = `${dir}${entry.name}`;
    if (entry.isDirectory) out.push(...await sourceFiles(`${path}/`));
    else if (entry.name.endsWith(".ts")) out.push(path.slice(ROOT.length));
  }
  return out.sort();
}

/** Code that ships: not tests, test helpers, fixtures or benches. */
function isProductCode(path: string): boolean {
  return !/(_test\.ts|_test_util\.ts)$/.test(path) && !/^(tests|bench)\//.test(path);
}

/** `text` without its comment lines and doc comments (they may name spans in prose). */
function withoutComments(text: string): string {
  return text.replace(/^\s*\/\*[\s\S]*?\*\//gm, "").replace(/^\s*\/\/.*$/gm, "");
}

/** The backticked span names in the operation-span table of docs/tracing.md. */
async function documentedNames(): Promise<Set<string>> {
  const text = await Deno.readTextFile(`${ROOT}docs/tracing.md`);
  const start = text.indexOf("| flow ");
  assert(start >= 0, "docs/tracing.md has no operation-span table");
  const end = text.indexOf("\n\n", start);
  const table = text.slice(start, end);
  return new Set([...table.matchAll(/`([a-z_]+\.[a-z_]+)`/g)].map((m) => m[1]));
}

Deno.test("catalogue: span names are unique and follow <component>.<operation>", () => {
  const values = Object.values(SPAN);
  assert.equal(new Set(values).size, values.length);
  for (const name of values) assert(/^[a-z]+(_[a-z]+)*\.[a-z]+(_[a-z]+)*$/.test(name), name);
});

Deno.test("catalogue: docs/tracing.md lists exactly the catalogue's spans", async () => {
  const documented = await documentedNames();
  assert.deepEqual(
    [...documented].filter((n) => !NAMES.has(n)).sort(),
    [],
    "documented, not emitted",
  );
  assert.deepEqual(
    [...NAMES].filter((n) => !documented.has(n)).sort(),
    [],
    "emitted, not documented",
  );
});

Deno.test("catalogue: every span name is used by product code, only through SPAN", async () => {
  const unused = new Set(Object.keys(SPAN));
  const literals: string[] = [];
  for (const path of (await sourceFiles()).filter(isProductCode)) {
    if (path === CATALOGUE) continue;
    const text = withoutComments(await Deno.readTextFile(`${ROOT}${path}`));
    for (const m of text.matchAll(/\bSPAN\.(\w+)/g)) unused.delete(m[1]);
    // A span name written as a string literal instead of the constant.
    for (const m of text.matchAll(/["'`]([a-z_]+\.[a-z_]+)["'`]/g)) {
      if (NAMES.has(m[1])) literals.push(`${path}: ${m[0]}`);
    }
    // A span started with a literal name that the catalogue lacks.
    for (const m of text.matchAll(/\b(?:withSpan|startSpan)\(\s*(["'`][^"'`]*["'`])/g)) {
      literals.push(`${path}: ${m[1]}`);
    }
  }
  assert.deepEqual([...unused].sort(), [], "catalogue entries no product code uses");
  assert.deepEqual(literals, [], "span names written as literals");
});

Deno.test("catalogue: attribute keys are unique, dotted lower snake case", () => {
  const values = Object.values(ATTR);
  assert.equal(new Set(values).size, values.length);
  for (const key of values) {
    assert(/^[a-z0-9]+(_[a-z0-9]+)*(\.[a-z0-9]+(_[a-z0-9]+)*)*$/.test(key), key);
  }
  for (const key of values.filter((k) => k.startsWith("kraken."))) {
    assert(!Object.values(SPAN).includes(key as never), `${key} is also a span name`);
  }
});

Deno.test("catalogue: every attribute key is used by product code, only through ATTR", async () => {
  const unused = new Set(Object.keys(ATTR));
  // Dotted keys are unambiguous in source; semantic-convention ones also name config keys
  // (`server.port`), so only kraken's and the ERD's are checked.
  const semconv = /^(http|url|server|client|network|user_agent|error)\./;
  const dotted: ReadonlySet<string> = new Set(
    Object.values(ATTR).filter((k) => k.includes(".") && !semconv.test(k)),
  );
  const literals: string[] = [];
  for (const path of (await sourceFiles()).filter(isProductCode)) {
    if (path === CATALOGUE) continue;
    const text = withoutComments(await Deno.readTextFile(`${ROOT}${path}`));
    for (const m of text.matchAll(/\bATTR\.(\w+)/g)) unused.delete(m[1]);
    for (const m of text.matchAll(/["'`]([a-z_]+(?:\.[a-z_]+)+)["'`]/g)) {
      if (dotted.has(m[1])) literals.push(`${path}: ${m[0]}`);
    }
    for (const m of text.matchAll(/\.setAttributes?\(\s*(?:\{\s*)?(["'`][^"'`]*["'`])/g)) {
      literals.push(`${path}: ${m[1]}`);
    }
  }
  assert.deepEqual([...unused].sort(), [], "catalogue keys no product code uses");
  assert.deepEqual(literals, [], "attribute keys written as literals");
});
