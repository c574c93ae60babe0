import assert from "node:assert/strict";
import {
  Digest,
  DigestError,
  DigestHasher,
  digestOfBytes,
  digestOfStream,
  parseDigest,
  parseDigestLoose,
} from "./digest.ts";

const HELLO_HEX = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
const hello = new TextEncoder().encode("hello");

Deno.test("parseDigest accepts sha256:<hex> and lowercases", () => {
  const d = parseDigest(`sha256:${HELLO_HEX.toUpperCase()}`);
  assert.equal(d.hex, HELLO_HEX);
  assert.equal(d.toString(), `sha256:${HELLO_HEX}`);
  assert.equal(JSON.stringify({ d }), `{"d":"sha256:${HELLO_HEX}"}`);
  assert.equal(d.shardId, "2cf2");
});

Deno.test("parseDigest rejects everything else with DigestError", () => {
  const bad = [
    HELLO_HEX, // bare hex is loose-only
    "",
    "sha256:",
    `sha256:${HELLO_HEX}0`,
    `sha256:${HELLO_HEX.slice(1)}`,
    `sha256:${HELLO_HEX.slice(1)}g`,
    `SHA256:${HELLO_HEX}`,
    `sha512:${HELLO_HEX}`,
    `sha256:${HELLO_HEX} `,
    ` sha256:${HELLO_HEX}`,
    `sha256:${HELLO_HEX}\n`,
    `sha256:${"a".repeat(10_000)}`,
  ];
  for (const s of bad) assert.throws(() => parseDigest(s), DigestError, JSON.stringify(s));
});

Deno.test("parseDigestLoose also accepts bare hex, nothing more", () => {
  assert.equal(parseDigestLoose(HELLO_HEX).hex, HELLO_HEX);
  assert.equal(parseDigestLoose(`sha256:${HELLO_HEX}`).hex, HELLO_HEX);
  assert.throws(() => parseDigestLoose(HELLO_HEX.slice(2)), DigestError);
  assert.throws(() => parseDigestLoose(`md5:${HELLO_HEX}`), DigestError);
});

Deno.test("Digest.fromBytes checks length; equals compares content", () => {
  assert.throws(() => Digest.fromBytes(new Uint8Array(31)), DigestError);
  assert.ok(Digest.fromHex(HELLO_HEX).equals(parseDigest(`sha256:${HELLO_HEX}`)));
  assert.ok(!Digest.fromHex(HELLO_HEX).equals(Digest.fromHex("0".repeat(64))));
});

Deno.test("digestOfBytes, DigestHasher and digestOfStream agree", async () => {
  assert.equal((await digestOfBytes(hello)).hex, HELLO_HEX);
  const h = new DigestHasher();
  h.update(hello.subarray(0, 2));
  h.update(hello.subarray(2));
  assert.equal(h.digest().hex, HELLO_HEX);
  assert.throws(() => h.digest(), /already finished/);
  const s = ReadableStream.from([hello.subarray(0, 1), hello.subarray(1)]);
  assert.equal((await digestOfStream(s)).hex, HELLO_HEX);
  assert.equal(
    (await digestOfBytes(new Uint8Array())).hex,
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
});
