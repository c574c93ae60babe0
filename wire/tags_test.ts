import assert from "node:assert/strict";
import {
  encodeDuplicatePut,
  encodeListResponse,
  parseDuplicatePut,
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
