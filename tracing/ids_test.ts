import assert from "node:assert/strict";
import { isZeroId, LocalSpanContext, newSpanId, newTraceId } from "./ids.ts";

Deno.test("isZeroId: only ids of zero digits are the invalid id", () => {
  assert.equal(isZeroId("0".repeat(32)), true);
  assert.equal(isZeroId("0".repeat(16)), true);
  // A substring, as the ids are, and a non-zero digit in the first or the last place.
  const padded = `x${"0".repeat(32)}x`;
  assert.equal(isZeroId(padded.slice(1, 33)), true);
  assert.equal(isZeroId(padded.slice(0, 32)), false);
  assert.equal(isZeroId(padded.slice(2, 34)), false);
  assert.equal(isZeroId(`${"0".repeat(15)}1`), false);
  assert.equal(isZeroId("4bf92f3577b34da6a3ce929d0e0e4736"), false);
});

Deno.test("ids: fresh trace and span ids are valid lowercase hex of their length", () => {
  for (let i = 0; i < 1000; i++) {
    const traceId = newTraceId();
    const spanId = newSpanId();
    const local = new LocalSpanContext(traceId, 1, undefined).spanId;
    assert.match(traceId, /^[0-9a-f]{32}$/);
    assert.match(spanId, /^[0-9a-f]{16}$/);
    assert.match(local, /^[0-9a-f]{16}$/);
    assert.equal(isZeroId(traceId) || isZeroId(spanId) || isZeroId(local), false);
  }
});
