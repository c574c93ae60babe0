import assert from "node:assert/strict";
import {
  encodeDuplicatePut,
  encodeDuplicateReplicate,
  encodeListResponse,
  parseDuplicatePut,
  parseDuplicateReplicate,
  parseListResponse,
  TagWireError,
} from "./tags.ts";

Deno.test("ListResponse round-trips, and Go's null result reads as empty", () => {
  const body = { Links: { next: "/list/a?offset=x", self: "/list/a" }, size: 1, result: ["a:b"] };
  const text = encodeListResponse(body);
  assert.ok(text.endsWith("}\n"));
  assert.deepEqual(parseListResponse(text), body);
  assert.deepEqual(
    parseListResponse('{"Links":{"next":"","self":"/list/"},"size":0,"result":null}'),
    {
      Links: { next: "", self: "/list/" },
      size: 0,
      result: [],
    },
  );
  assert.deepEqual(parseListResponse("null").result, []);
  assert.throws(() => parseListResponse("{"), TagWireError);
});

Deno.test("the duplicate put body is the delay in nanoseconds under `delay`", () => {
  assert.equal(encodeDuplicatePut(2.5), '{"delay":2500000}');
  assert.equal(parseDuplicatePut(JSON.parse(encodeDuplicatePut(420_000))), 420_000);
  assert.equal(parseDuplicatePut({}), 0);
  assert.equal(parseDuplicatePut(null), 0);
  assert.throws(() => parseDuplicatePut({ delay: -1 }), /non-negative/);
  assert.throws(() => parseDuplicatePut({ delay: "1s" }), TagWireError);
});

Deno.test("the duplicate replicate body carries dependencies and the delay in nanoseconds", () => {
  const deps = [`sha256:${"ab".repeat(32)}`];
  const text = encodeDuplicateReplicate({ dependencies: deps, delayMs: 1200 });
  assert.equal(text, `{"dependencies":["${deps[0]}"],"delay":1200000000}`);
  assert.deepEqual(parseDuplicateReplicate(JSON.parse(text)), {
    dependencies: deps,
    delayMs: 1200,
  });
  // Go decodes keys case-insensitively and a nil slice as null.
  assert.deepEqual(parseDuplicateReplicate({ Dependencies: null, Delay: 0 }), {
    dependencies: [],
    delayMs: 0,
  });
  assert.throws(() => parseDuplicateReplicate([]), TagWireError);
  assert.throws(() => parseDuplicateReplicate({ dependencies: [1] }), /list of digest strings/);
  assert.throws(() => parseDuplicateReplicate({ delay: -1 }), /non-negative/);
});
