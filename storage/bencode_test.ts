import assert from "node:assert/strict";
import { bencode } from "./bencode.ts";

const text = (v: Parameters<typeof bencode>[0]) => new TextDecoder().decode(bencode(v));

Deno.test("bencode scalars and lists", () => {
  assert.equal(text(0), "i0e");
  assert.equal(text(-42), "i-42e");
  assert.equal(text(2n ** 63n - 1n), "i9223372036854775807e");
  assert.equal(text(""), "0:");
  assert.equal(text("spam"), "4:spam");
  assert.equal(text("é"), "2:é"); // length counts UTF-8 bytes
  assert.deepEqual(bencode(new Uint8Array([0, 255])), new Uint8Array([0x32, 0x3a, 0, 255]));
  assert.equal(text([]), "le");
  assert.equal(text([1, "a", [2]]), "li1e1:ali2eee");
});

Deno.test("bencode sorts dictionary keys byte-wise", () => {
  assert.equal(text({ b: 1, a: 2, B: 3 }), "d1:Bi3e1:ai2e1:bi1ee");
  // Insertion order must not matter (info hash stability).
  assert.equal(
    text({ PieceSums: [], PieceLength: 4, Name: "n", Length: 5 }),
    "d6:Lengthi5e4:Name1:n11:PieceLengthi4e9:PieceSumslee",
  );
});

Deno.test("bencode rejects non-integers", () => {
  assert.throws(() => bencode(1.5), TypeError);
  assert.throws(() => bencode(Number.NaN), TypeError);
  assert.throws(() => bencode(2 ** 60), TypeError);
});
