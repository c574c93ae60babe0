import assert from "node:assert/strict";
import {
  decodeFileName,
  encodeFileName,
  MAX_FILE_NAME_BYTES,
  PathError,
  resolveInside,
} from "./paths.ts";

const ROOT = "/srv/kraken";

Deno.test("encodeFileName keeps safe characters and encodes the rest", () => {
  assert.equal(encodeFileName("TODO"), "TODO");
  assert.equal(encodeFileName("library/ubuntu"), "library%2Fubuntu");
  assert.equal(encodeFileName("library/ubuntu:latest"), "library%2Fubuntu%3Alatest");
  assert.equal(encodeFileName("a.b_c-d"), "a.b_c-d");
  assert.equal(encodeFileName(".hidden"), "%2Ehidden");
  assert.equal(encodeFileName("100%"), "100%25");
  assert.equal(encodeFileName("ü"), "%C3%BC");
});

Deno.test("hostile names never produce unsafe file names", () => {
  const hostile = [
    "..",
    ".",
    "../../etc/passwd",
    "%2e%2e",
    "%2E%2E",
    "..%2F",
    "..\\..\\x",
    "/etc/passwd",
    "a/../../b",
    "~",
    "-rf",
  ];
  for (const name of hostile) {
    const enc = encodeFileName(name);
    assert.ok(!enc.includes("/") && !enc.includes("\0"), enc);
    assert.ok(enc !== "." && enc !== ".." && !enc.startsWith("."), enc);
    assert.equal(decodeFileName(enc), name);
    const p = resolveInside(ROOT, "tags", enc);
    assert.equal(p, `${ROOT}/tags/${enc}`);
  }
});

Deno.test("encodeFileName is injective on tricky pairs", () => {
  const names = ["a/b", "a%2Fb", "a%252Fb", ".a", "%2Ea", "a.", "A", "a", "a:b", "a%3Ab"];
  const encoded = new Set(names.map(encodeFileName));
  assert.equal(encoded.size, names.length);
});

Deno.test("encodeFileName rejects empty, NUL, lone surrogates and over-long names", () => {
  assert.throws(() => encodeFileName(""), PathError);
  assert.throws(() => encodeFileName("a\0b"), /NUL/);
  assert.throws(() => encodeFileName("a\uD800"), /well-formed/);
  assert.equal(encodeFileName("a".repeat(MAX_FILE_NAME_BYTES)).length, MAX_FILE_NAME_BYTES);
  assert.throws(() => encodeFileName("a".repeat(MAX_FILE_NAME_BYTES + 1)), /too long/);
  assert.throws(() => encodeFileName("/".repeat(86)), /too long/); // 86 × 3 = 258
  assert.throws(() => encodeFileName("x".repeat(1_000_000)), /too long/);
});

Deno.test("decodeFileName accepts only canonical encodings", () => {
  for (const bad of ["", "a/b", ".x", "..", "%2e", "%2f", "a%62", "%", "%G0", "%00", "%C3", "é"]) {
    assert.throws(() => decodeFileName(bad), PathError, JSON.stringify(bad));
  }
});

Deno.test("resolveInside refuses to leave the root", () => {
  assert.equal(resolveInside(ROOT), ROOT);
  assert.equal(resolveInside(ROOT, "cache", "ab", "x"), `${ROOT}/cache/ab/x`);
  assert.equal(resolveInside(ROOT, "a/../b"), `${ROOT}/b`);
  assert.equal(resolveInside("/", "etc"), "/etc");
  const escapes = [
    [".."],
    ["../../etc/passwd"],
    ["cache", "..", ".."],
    ["/etc/passwd"],
    ["..", "kraken-evil"], // sibling with a common prefix
    ["x/../../kraken2"],
  ];
  for (const parts of escapes) {
    assert.throws(() => resolveInside(ROOT, ...parts), PathError, parts.join(","));
  }
  assert.throws(() => resolveInside(ROOT, "a\0b"), /NUL/);
});
