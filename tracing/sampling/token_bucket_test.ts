import assert from "node:assert/strict";
import { TokenBucket } from "./token_bucket.ts";

Deno.test("a token bucket starts full and refills at its rate", () => {
  let now = 0;
  const bucket = new TokenBucket({ ratePerSecond: 5, now: () => now });
  let taken = 0;
  while (bucket.tryTake()) taken++;
  assert.equal(taken, 5, "burst is one second's worth");
  now = 199;
  assert.equal(bucket.tryTake(), false);
  now = 200;
  assert.equal(bucket.tryTake(), true, "one token per 200 ms");
  assert.equal(bucket.tryTake(), false);
  now = 60_000;
  taken = 0;
  while (bucket.tryTake()) taken++;
  assert.equal(taken, 5, "refill is capped at the burst");
});

Deno.test("a fractional rate still allows one token", () => {
  let now = 0;
  const bucket = new TokenBucket({ ratePerSecond: 0.5, now: () => now });
  assert.equal(bucket.tryTake(), true);
  assert.equal(bucket.tryTake(), false);
  now = 2000;
  assert.equal(bucket.tryTake(), true);
});

Deno.test("a zero rate never gives a token", () => {
  const bucket = new TokenBucket({ ratePerSecond: 0, now: () => 1e9 });
  assert.equal(bucket.tryTake(), false);
});
