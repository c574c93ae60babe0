import assert from "node:assert/strict";
import { Bitfield, BitfieldError } from "./bitfield.ts";
import { prng } from "./_test_util.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const unhex = (s: string) => Uint8Array.from(s.match(/../g) ?? [], (x) => parseInt(x, 16));

Deno.test("Appendix A vector: 10 pieces with {0, 1, 9}", () => {
  const b = new Bitfield(10);
  for (const i of [0, 1, 9]) b.set(i);
  assert.equal(hex(b.encode()), "000000000000000a0000000000000203");
  const decoded = Bitfield.decode(unhex("000000000000000A0000000000000203"));
  assert.equal(decoded.length, 10);
  assert.deepEqual([...Array(10).keys()].filter((i) => decoded.get(i)), [0, 1, 9]);
  assert.equal(decoded.count(), 3);
  assert.ok(decoded.equals(b));
});

Deno.test("an empty bitfield is 8 zero bytes and complete", () => {
  assert.equal(hex(new Bitfield(0).encode()), "0000000000000000");
  assert.ok(Bitfield.decode(new Uint8Array(8)).complete());
});

Deno.test("bits map LSB-first into big-endian words", () => {
  const b = new Bitfield(130);
  b.set(63);
  b.set(64);
  b.set(129);
  assert.equal(
    hex(b.encode()),
    "0000000000000082" + "8000000000000000" + "0000000000000001" + "0000000000000002",
  );
});

Deno.test("allSet sets exactly the first n bits", () => {
  for (const n of [1, 7, 8, 9, 63, 64, 65, 128, 2560]) {
    const b = Bitfield.allSet(n);
    assert.equal(b.count(), n);
    assert.ok(b.complete());
    assert.ok(Bitfield.decode(b.encode()).equals(b), `round trip ${n}`);
  }
  assert.equal(hex(Bitfield.allSet(10).encode()), "000000000000000a00000000000003ff");
});

Deno.test("set, clear, count, complete and clone", () => {
  const b = new Bitfield(3);
  assert.ok(!b.complete());
  b.set(0);
  b.set(1);
  b.set(2);
  assert.ok(b.complete());
  const copy = b.clone();
  b.set(1, false);
  assert.equal(b.count(), 2);
  assert.ok(!b.get(1));
  assert.ok(copy.get(1), "clone is independent");
  assert.ok(!b.equals(copy));
});

Deno.test("random bitfields round-trip", () => {
  const rand = prng(7);
  for (let c = 0; c < 200; c++) {
    const n = Math.floor(rand() * 300);
    const b = new Bitfield(n);
    for (let i = 0; i < n; i++) if (rand() < 0.5) b.set(i);
    const d = Bitfield.decode(b.encode());
    assert.ok(d.equals(b));
    assert.equal(d.count(), b.count());
  }
});

Deno.test("decode rejects wrong lengths, stray bits and huge counts", () => {
  const bad = [
    "", // no header
    "00000000000000", // short header
    "000000000000000a", // missing word
    "000000000000000a000000000000020300", // trailing byte
    "00000000000000000000000000000000", // word for 0 bits
    "000000000000000a0000000000000403", // bit 10 set in a 10-bit field
    "000000000000000a8000000000000000", // bit 63 set
    "ffffffffffffffff0000000000000000", // 2^64-1 bits
    "000000007fffffff", // a huge count with no words must not allocate
  ];
  for (const h of bad) assert.throws(() => Bitfield.decode(unhex(h)), BitfieldError, h);
});

Deno.test("out-of-range indexes and lengths throw", () => {
  const b = new Bitfield(4);
  assert.throws(() => b.get(4), BitfieldError);
  assert.throws(() => b.set(-1), BitfieldError);
  assert.throws(() => b.get(1.5), BitfieldError);
  assert.throws(() => new Bitfield(-1), BitfieldError);
});
