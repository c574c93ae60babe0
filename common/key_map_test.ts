import assert from "node:assert/strict";
import { ConfigError } from "./config.ts";
import { applyKeyRules, type KeyRule } from "./key_map.ts";

function refusedAs(fn: () => unknown, message: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ConfigError, String(error));
    assert.equal(error.message, message);
    return true;
  });
}

const RULES: KeyRule[] = [
  { key: "nginx", ignore: "no nginx" },
  { key: "store.cache_cleanup", ignore: "not evicted" },
  { key: "store", to: "storage", convert: (v) => ({ root: (v as { dir: string }).dir }) },
  { key: "metainfogen", to: "metainfo" },
  { key: "server.conn.timeout", to: "server.timeout" },
  { key: "backends[].bandwidth", ignore: "no limiter" },
  { key: "factory", refuse: "always addr_hash", accept: (v) => v === "addr_hash" },
  { key: "listener", when: (v) => v === "unix", ignore: "behind nginx" },
  { key: "listener", to: "listen" },
];

Deno.test("key rules: moves, converts, drops with a warning each, in table order", () => {
  const raw = {
    nginx: { name: "x" },
    store: { dir: "/var/cache", cache_cleanup: { ttl: "24h" } },
    metainfogen: { piece_lengths: { 0: "4MB" } },
    server: { conn: { timeout: "5s" }, port: 1 },
    backends: [{ namespace: ".*", bandwidth: { enable: true } }, { namespace: "a" }],
    keep: 1,
  };
  const before = structuredClone(raw);
  const { raw: out, warnings } = applyKeyRules(RULES, raw);
  assert.deepEqual(out, {
    storage: { root: "/var/cache" },
    metainfo: { piece_lengths: { 0: "4MB" } },
    server: { timeout: "5s", port: 1 },
    backends: [{ namespace: ".*" }, { namespace: "a" }],
    keep: 1,
  });
  assert.deepEqual(warnings, [
    { key: "nginx", reason: "no nginx" },
    { key: "store.cache_cleanup", reason: "not evicted" },
    { key: "backends[0].bandwidth", reason: "no limiter" },
  ]);
  assert.deepEqual(raw, before, "the input is not modified");
});

Deno.test("key rules: a mapping emptied by the rewrite is removed; null values count as given", () => {
  const { raw, warnings } = applyKeyRules(RULES, {
    server: { conn: { timeout: "1s" } },
    nginx: null,
  });
  assert.deepEqual(raw, { server: { timeout: "1s" } });
  assert.deepEqual(warnings, [{ key: "nginx", reason: "no nginx" }]);
  assert.deepEqual(applyKeyRules(RULES, {}).raw, {});
});

Deno.test("key rules: refused unless accepted; `when` picks between rules of one key", () => {
  refusedAs(() => applyKeyRules(RULES, { factory: "random" }), "factory: always addr_hash");
  assert.deepEqual(applyKeyRules(RULES, { factory: "addr_hash" }), { raw: {}, warnings: [] });
  assert.deepEqual(applyKeyRules(RULES, { listener: "unix" }).warnings, [
    { key: "listener", reason: "behind nginx" },
  ]);
  assert.deepEqual(applyKeyRules(RULES, { listener: "tcp" }).raw, { listen: "tcp" });
});

Deno.test("key rules: a foreign key and ours for the same thing together are refused", () => {
  refusedAs(
    () => applyKeyRules(RULES, { metainfogen: {}, metainfo: {} }),
    "metainfogen: given together with metainfo, which it maps to; give one",
  );
  refusedAs(
    () => applyKeyRules(RULES, { server: { conn: { timeout: "1s" }, timeout: "2s" } }),
    "server.conn.timeout: given together with server.timeout, which it maps to; give one",
  );
});

Deno.test("key rules: a conversion's error is reported against the foreign key", () => {
  const rules: KeyRule[] = [{
    key: "a.b",
    to: "c",
    convert: () => {
      throw new RangeError("bad value");
    },
  }];
  refusedAs(() => applyKeyRules(rules, { a: { b: 1 } }), "a.b: bad value");
});
