import assert from "node:assert/strict";
import { parseDuration } from "./duration.ts";

Deno.test("parseDuration reads ms, s, m, h and sums", () => {
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration("5s"), 5000);
  assert.equal(parseDuration("1m"), 60_000);
  assert.equal(parseDuration("1h"), 3_600_000);
  assert.equal(parseDuration("1m30s"), 90_000);
  assert.equal(parseDuration("1.5s"), 1500);
  assert.equal(parseDuration("0"), 0);
  assert.equal(parseDuration(0), 0);
});

Deno.test("parseDuration refuses bare numbers and unknown units", () => {
  for (const bad of [5, "5", "5 s", "5sec", "-1s", "", "s", "1d"]) {
    assert.throws(() => parseDuration(bad), /must be a duration like 500ms, 5s, 1m or 1h/);
  }
});
