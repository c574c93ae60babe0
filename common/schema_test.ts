import assert from "node:assert/strict";
import {
  applyFlags,
  ConfigError,
  docRows,
  duration,
  type Infer,
  int,
  list,
  object,
  oneOf,
  path,
  port,
  string,
  variant,
} from "./schema.ts";

function throwsMessage(fn: () => unknown, message: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ConfigError, String(error));
    assert.equal(error.message, message);
    assert.equal(error.key, message.slice(0, message.indexOf(": ")));
    return true;
  });
}

Deno.test("orList: a list goes to the list schema at the same key, anything else to the mapping", () => {
  const names = object({ names: list(string()) }).map((c) => c.names)
    .orList(list(string()));
  assert.deepEqual(names.parse(["a", "b"], "k"), ["a", "b"]);
  assert.deepEqual(names.parse({ names: ["c"] }, "k"), ["c"]);
  throwsMessage(() => names.parse(["a", 1], "k"), "k[1]: must be a non-empty string");
  throwsMessage(() => names.parse({ names: [1] }, "k"), "k.names[0]: must be a non-empty string");
  assert.deepEqual(docRows(names, "k").map((r) => r.key), ["k.names"]);
});

Deno.test("object: defaults in YAML spelling, renames, inferred type, unknown keys refused", () => {
  const schema = object({
    ttl: duration({ positive: true }).default("5m"),
    workers: int({ min: 1 }).default(4),
    name: string().optional(),
    inner: object({ port: port().default(1) }),
  }, { rename: { ttl: "ttlMs" } });
  const value: Infer<typeof schema> = schema.parse({ ttl: "1m30s" }, "");
  assert.deepEqual(value, { ttlMs: 90_000, workers: 4, name: undefined, inner: { port: 1 } });
  throwsMessage(
    () => schema.parse({ inner: { prot: 1 } }, "x"),
    "x.inner.prot: unknown key (allowed: port)",
  );
  throwsMessage(() => schema.parse({ ttl: "0s" }, ""), "ttl: must be longer than 0");
  throwsMessage(() => schema.parse({ workers: 0 }, "w"), "w.workers: must be an integer >= 1");
  throwsMessage(() => schema.parse([], "w"), "w: must be a mapping");
  throwsMessage(() => object({ a: string() }).parse({}, "top"), "top.a: is required");
});

Deno.test("list, variant and oneOf name the dotted key", () => {
  const entry = object({
    kind: variant({ a: object({ x: int() }), b: object({}) }),
    mode: oneOf(["on", "off"]).default("on"),
  });
  const schema = list(entry, { of: "entries" });
  assert.deepEqual(schema.parse([{ kind: { a: { x: 2 } } }], "e"), [
    { kind: { kind: "a", value: { x: 2 } }, mode: "on" },
  ]);
  throwsMessage(() => schema.parse({}, "e"), "e: must be a list of entries");
  throwsMessage(
    () => schema.parse([{ kind: { b: {} } }, { kind: { c: {} } }], "e"),
    "e[1].kind.c: unknown key (allowed: a, b)",
  );
  throwsMessage(
    () => schema.parse([{ kind: { a: {}, b: {} } }], "e"),
    "e[0].kind: must have exactly one of a, b",
  );
  throwsMessage(
    () => schema.parse([{ kind: { b: {} }, mode: "auto" }], "e"),
    "e[0].mode: must be on or off",
  );
});

Deno.test("path resolves relative values against the base directory", () => {
  assert.equal(path().parse("data", "p", { baseDir: "/etc/kraken" }), "/etc/kraken/data");
  assert.equal(path().parse("/abs", "p", { baseDir: "/etc/kraken" }), "/abs");
});

Deno.test("applyFlags: flags override keys, bad or unknown flags are named", () => {
  const schema = object({
    listen: object({ host: string().default("h"), port: port().default(1) }),
  });
  const flags = { port: "listen.port", host: "listen.host" };
  assert.deepEqual(schema.parse(applyFlags(schema, {}, { port: "9" }, flags), ""), {
    listen: { host: "h", port: 9 },
  });
  throwsMessage(
    () => applyFlags(schema, {}, { port: "x" }, flags),
    '--port: must be a port number 0-65535, got "x"',
  );
  throwsMessage(
    () => applyFlags(schema, {}, { verbose: "1" }, flags),
    "--verbose: unknown flag (allowed: --port, --host)",
  );
  throwsMessage(
    () => applyFlags(schema, {}, { host: "" }, flags),
    "--host: must be a non-empty string",
  );
});

Deno.test("docRows: one row per leaf key with type, default and description", () => {
  const schema = object({
    a: int({ min: 1 }).default(3).describe("A count."),
    b: object({ c: duration().default("5s").describe("A wait.") }),
    d: list(object({ e: string().describe("A name.") })).default([]),
  });
  assert.deepEqual(docRows(schema), [
    { key: "a", type: "integer ≥ 1", default: "`3`", description: "A count." },
    { key: "b.c", type: "duration", default: "`5s`", description: "A wait." },
    { key: "d[].e", type: "string", default: "required", description: "A name." },
  ]);
});
