import assert from "node:assert/strict";
import { maxPieceLength, verifyPiece } from "./torrent.ts";
import { MemoryStorage } from "./_test_util.ts";

// Metainfo vector from kraken-wire.md §3: "hello" in 4-byte pieces.
const hello = new TextEncoder().encode("hello");

Deno.test("piece sums are CRC-32 IEEE as unsigned integers", () => {
  const s = new MemoryStorage(hello, 4);
  assert.equal(s.numPieces, 2);
  assert.deepEqual([s.pieceSum(0), s.pieceSum(1)], [478544099, 252678980]);
  assert.equal(s.digestHex, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
  assert.equal(maxPieceLength(s), 4);
  assert.equal(maxPieceLength(new MemoryStorage(new Uint8Array(0), 4)), 0);
});

Deno.test("verifyPiece checks length and checksum", () => {
  const s = new MemoryStorage(hello, 4);
  assert.ok(verifyPiece(s, 0, hello.subarray(0, 4)));
  assert.ok(verifyPiece(s, 1, hello.subarray(4)));
  assert.ok(!verifyPiece(s, 0, new TextEncoder().encode("hELl")));
  assert.ok(!verifyPiece(s, 1, hello.subarray(3)));
});
