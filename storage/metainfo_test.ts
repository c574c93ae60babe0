import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { Digest, digestOfBytes } from "./digest.ts";
import {
  generateMetaInfo,
  InfoHash,
  MetaInfo,
  MetaInfoError,
  PieceLengthTable,
} from "./metainfo.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

// kraken-wire.md Appendix A, [verified] vector from an upstream unit test.
const VECTOR_JSON =
  '{"Info":{"PieceLength":4194304,"PieceSums":[2131691452],"Name":"289314c356bc2a19802c3e31505506db30ea81a0bcaea4ec3e079524c8ac3cf5","Length":236}}';
const VECTOR_BENCODE =
  "d6:Lengthi236e4:Name64:289314c356bc2a19802c3e31505506db30ea81a0bcaea4ec3e079524c8ac3cf511:PieceLengthi4194304e9:PieceSumsli2131691452eee";
const VECTOR_HASH = "85b978c4377625b3963df406d0dd3a1da5a7d9c3";

// Appendix A, [derived] vector: content "hello", piece length 4.
const HELLO_JSON =
  '{"Info":{"PieceLength":4,"PieceSums":[478544099,252678980],"Name":"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824","Length":5}}';
const HELLO_HASH = "c0f6bdcd41110923c17e772a91e21a9633884dd6";

function streamOf(bytes: Uint8Array, chunk: number): ReadableStream<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += chunk) parts.push(bytes.subarray(i, i + chunk));
  return ReadableStream.from(parts);
}

Deno.test("Appendix A verified vector: bencoding, info hash and JSON round trip", () => {
  const mi = MetaInfo.deserialize(VECTOR_JSON);
  assert.equal(dec.decode(mi.bencodeInfo()), VECTOR_BENCODE);
  assert.equal(mi.infoHash.hex, VECTOR_HASH);
  assert.equal(mi.infoHash.toString(), VECTOR_HASH);
  assert.deepEqual(mi.infoHash.bytes, InfoHash.fromHex(VECTOR_HASH).bytes);
  assert.equal(mi.serialize(), VECTOR_JSON);
  assert.equal(mi.digest.hex, "289314c356bc2a19802c3e31505506db30ea81a0bcaea4ec3e079524c8ac3cf5");
  assert.equal(mi.numPieces, 1);
  assert.equal(mi.pieceLengthAt(0), 236);
});

Deno.test("Appendix A derived vector: generated from content 'hello'", async () => {
  const bytes = enc.encode("hello");
  const d = await digestOfBytes(bytes);
  for (const chunk of [1, 2, 3, 5]) {
    const mi = await generateMetaInfo(d, { stream: streamOf(bytes, chunk), size: 5 }, 4);
    assert.equal(mi.serialize(), HELLO_JSON);
    assert.equal(mi.infoHash.hex, HELLO_HASH);
    assert.deepEqual(mi.pieceSums, [478544099, 252678980]);
    assert.equal(mi.pieceLengthAt(0), 4);
    assert.equal(mi.pieceLengthAt(1), 1);
    assert.ok(mi.verifyPiece(0, bytes.subarray(0, 4)));
    assert.ok(mi.verifyPiece(1, bytes.subarray(4)));
    assert.ok(!mi.verifyPiece(1, enc.encode("x")));
    assert.ok(!mi.verifyPiece(0, bytes)); // wrong length
    assert.throws(() => mi.pieceLengthAt(2), RangeError);
  }
  const parsed = MetaInfo.deserialize(enc.encode(HELLO_JSON));
  assert.equal(parsed.infoHash.hex, HELLO_HASH);
});

Deno.test("InfoHash JSON form is an array of 20 integers", () => {
  const h = InfoHash.fromHex(VECTOR_HASH);
  assert.equal(JSON.stringify(h), `[${Array.from(h.bytes).join(",")}]`);
  assert.equal(h.bytes.length, 20);
  assert.ok(h.equals(InfoHash.fromBytes(h.bytes)));
  assert.throws(() => InfoHash.fromHex("zz"), MetaInfoError);
  const upper = InfoHash.fromHex(VECTOR_HASH.toUpperCase());
  assert.equal(upper.hex, VECTOR_HASH.toLowerCase());
  assert.ok(upper.equals(h));
  assert.equal(InfoHash.fromBytes(h.bytes).hex, h.hex);
  assert.throws(() => InfoHash.fromBytes(new Uint8Array(19)), MetaInfoError);
});

Deno.test("empty blob: PieceSums null in JSON, 'le' in bencoding", async () => {
  const d = await digestOfBytes(new Uint8Array());
  const mi = await generateMetaInfo(d, { stream: ReadableStream.from([]), size: 0 }, 4);
  assert.equal(mi.numPieces, 0);
  assert.equal(
    mi.serialize(),
    `{"Info":{"PieceLength":4,"PieceSums":null,"Name":"${d.hex}","Length":0}}`,
  );
  assert.match(dec.decode(mi.bencodeInfo()), /9:PieceSumslee$/);
  // An explicit empty list decodes to the same metainfo.
  const alt = MetaInfo.deserialize(mi.serialize().replace("null", "[]"));
  assert.ok(alt.infoHash.equals(mi.infoHash));
});

Deno.test("deserialize ignores legacy keys and validates fields", () => {
  const legacy =
    `{"Announce":"x","AnnounceList":null,"CreationDate":1,"Comment":"","CreatedBy":"k",${
      VECTOR_JSON.slice(1)
    }`;
  assert.equal(MetaInfo.deserialize(legacy).infoHash.hex, VECTOR_HASH);
  const info = JSON.parse(VECTOR_JSON).Info;
  const bad: unknown[] = [
    "not json",
    "[]",
    "{}",
    { Info: null },
    { Info: { ...info, Name: info.Name.toUpperCase() } },
    { Info: { ...info, Name: `sha256:${info.Name}` } },
    { Info: { ...info, PieceLength: 0 } },
    { Info: { ...info, PieceLength: "4194304" } },
    { Info: { ...info, PieceLength: 1.5 } },
    { Info: { ...info, Length: -1 } },
    { Info: { ...info, PieceSums: [2 ** 32] } },
    { Info: { ...info, PieceSums: [-1] } },
    { Info: { ...info, PieceSums: "x" } },
    { Info: { ...info, PieceSums: [1, 2] } }, // count must match Length/PieceLength
    { Info: { ...info, PieceSums: null } },
    { Info: { ...info, Length: undefined } },
  ];
  for (const b of bad) {
    const s = typeof b === "string" ? b : JSON.stringify(b);
    assert.throws(() => MetaInfo.deserialize(s), MetaInfoError, s);
  }
});

Deno.test("generateMetaInfo streams a file with pieces spanning chunk boundaries", async () => {
  const size = 3 * 65536 + 1234;
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 7919) & 0xff;
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeFile(path, bytes);
    const d = await digestOfBytes(bytes);
    const pieceLength = 50_000; // not a multiple of Deno's read chunk size
    const mi = await generateMetaInfo(d, path, new PieceLengthTable({ 0: pieceLength }));
    assert.equal(mi.numPieces, Math.ceil(size / pieceLength));
    for (let i = 0; i < mi.numPieces; i++) {
      const piece = bytes.subarray(i * pieceLength, Math.min(size, (i + 1) * pieceLength));
      assert.equal(mi.pieceSums[i], crc32(piece));
      assert.equal(mi.pieceLengthAt(i), piece.length);
    }
    const again = await generateMetaInfo(d, { stream: streamOf(bytes, 777), size }, pieceLength);
    assert.ok(again.infoHash.equals(mi.infoHash));
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("generateMetaInfo rejects a stream whose length differs from size", async () => {
  const d = Digest.fromHex("0".repeat(64));
  const bytes = enc.encode("hello");
  await assert.rejects(
    generateMetaInfo(d, { stream: streamOf(bytes, 2), size: 4 }, 4),
    /longer than its size/,
  );
  await assert.rejects(
    generateMetaInfo(d, { stream: streamOf(bytes, 2), size: 6 }, 4),
    /has 5 bytes, expected 6/,
  );
  await assert.rejects(
    generateMetaInfo(d, { stream: streamOf(bytes, 2), size: 5 }, 0),
    MetaInfoError,
  );
});

Deno.test("PieceLengthTable picks the largest size ≤ blob size, else the smallest entry", () => {
  const t = new PieceLengthTable({ "1MB": "2MB", "2GB": "8MB", "100MB": "4MB" });
  assert.equal(t.pieceLengthFor(0), 2 * 2 ** 20); // below every key
  assert.equal(t.pieceLengthFor(2 ** 20), 2 * 2 ** 20);
  assert.equal(t.pieceLengthFor(100 * 2 ** 20 - 1), 2 * 2 ** 20);
  assert.equal(t.pieceLengthFor(100 * 2 ** 20), 4 * 2 ** 20);
  assert.equal(t.pieceLengthFor(2 * 2 ** 30), 8 * 2 ** 20);
  assert.equal(t.pieceLengthFor(2 ** 50), 8 * 2 ** 20);
  const base = new PieceLengthTable(new Map([[0, "4MB"]]));
  assert.equal(base.pieceLengthFor(236), 4194304);
});

Deno.test("PieceLengthTable rejects empty and invalid tables", () => {
  assert.throws(() => new PieceLengthTable({}), /empty/);
  assert.throws(() => new PieceLengthTable(new Map()), /empty/);
  assert.throws(() => new PieceLengthTable({ 0: 0 }), /must be > 0/);
  assert.throws(() => new PieceLengthTable({ 0: "4XB" }), RangeError);
  assert.throws(() => new PieceLengthTable({ "1KB": 1, "1024": 2 }), /two entries/);
});
