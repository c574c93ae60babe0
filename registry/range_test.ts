import assert from "node:assert/strict";
import { RegistryError } from "./errors.ts";
import { partialContentHeaders, resolveRange } from "./range.ts";

function refusal(header: string, size: number): RegistryError {
  try {
    resolveRange(header, size);
  } catch (error) {
    assert.ok(error instanceof RegistryError);
    return error;
  }
  assert.fail(`${header} was not refused`);
}

Deno.test("resolveRange: one range, open ends and suffixes", () => {
  assert.equal(resolveRange(null, 100), null);
  assert.deepEqual(resolveRange("bytes=10-19", 100), { start: 10, end: 19 });
  assert.deepEqual(resolveRange("bytes=90-", 100), { start: 90, end: 99 });
  assert.deepEqual(resolveRange("bytes=90-500", 100), { start: 90, end: 99 }, "end cut to size");
  assert.deepEqual(resolveRange("bytes=-10", 100), { start: 90, end: 99 });
  assert.deepEqual(resolveRange("bytes=-500", 100), { start: 0, end: 99 });
  assert.deepEqual(resolveRange("Bytes = 0-0", 100), { start: 0, end: 0 });
  assert.deepEqual(resolveRange("bytes=200-300, 5-6", 100), { start: 5, end: 6 });
});

Deno.test("resolveRange: other units and disjoint ranges serve the whole blob", () => {
  assert.equal(resolveRange("items=0-1", 100), null);
  assert.equal(resolveRange("bytes=0-9, 20-29", 100), null);
});

Deno.test("resolveRange: unsatisfiable, malformed and overlapping ranges are 416 RANGE_INVALID", () => {
  for (
    const [header, size, why] of [
      ["bytes=100-", 100, "no range within"],
      ["bytes=100-200", 100, "no range within"],
      ["bytes=-0", 100, "no range within"],
      ["bytes=0-", 0, "no range within"],
      ["bytes=5-1", 100, "ends before it starts"],
      ["bytes=a-b", 100, "malformed"],
      ["bytes=-", 100, "malformed"],
      ["0-10", 100, "expected bytes="],
      ["bytes=0-50, 40-60", 100, "overlapping"],
      ["bytes=0-10, -95", 100, "overlapping"],
    ] as const
  ) {
    const e = refusal(header, size);
    assert.equal(e.code, "RANGE_INVALID", header);
    assert.equal(e.status, 416, header);
    assert.match(e.message, new RegExp(why), header);
    assert.equal(e.headers["content-range"], `bytes */${size}`, header);
  }
});

Deno.test("partialContentHeaders", () => {
  assert.deepEqual(partialContentHeaders({ start: 10, end: 19 }, 100), {
    "content-range": "bytes 10-19/100",
    "content-length": "10",
  });
});

Deno.test("resolveRange: If-Range other than the blob's entity tag gets the whole blob", () => {
  const etag = '"sha256:abc"';
  assert.deepEqual(resolveRange("bytes=1-2", 10, { ifRange: etag, etag }), { start: 1, end: 2 });
  assert.equal(resolveRange("bytes=1-2", 10, { ifRange: '"sha256:other"', etag }), null);
  assert.equal(
    resolveRange("bytes=1-2", 10, { ifRange: "Wed, 21 Oct 2015 07:28:00 GMT", etag }),
    null,
  );
});
