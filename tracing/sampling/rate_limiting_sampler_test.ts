import assert from "node:assert/strict";
import { ROOT_CONTEXT, SpanKind } from "@opentelemetry/api";
import { RateLimitingSampler } from "./rate_limiting_sampler.ts";
import { RatioSampler } from "./ratio.ts";
import { isSampled } from "./results.ts";

const ID = "0af7651916cd43dd8448eb211c80319c";

Deno.test("the rate limiter caps sampled decisions per second and counts drops", () => {
  let now = 0;
  let drops = 0;
  const sampler = new RateLimitingSampler({
    delegate: new RatioSampler(1),
    maxPerSecond: 10,
    now: () => now,
    onDrop: () => drops++,
  });
  let sampled = 0;
  // 1000 root spans spread over 10 simulated seconds.
  for (let i = 0; i < 1000; i++) {
    now = i * 10;
    if (isSampled(sampler.shouldSample(ROOT_CONTEXT, ID, "op", SpanKind.SERVER, {}, []))) {
      sampled++;
    }
  }
  assert.ok(sampled >= 100 && sampled <= 110, `sampled ${sampled}`);
  assert.equal(drops, 1000 - sampled);
});

Deno.test("unsampled delegate decisions cost no token", () => {
  const now = 0;
  let drops = 0;
  const never = new RateLimitingSampler({
    delegate: new RatioSampler(0),
    maxPerSecond: 1,
    now: () => now,
    onDrop: () => drops++,
  });
  for (let i = 0; i < 5; i++) never.shouldSample(ROOT_CONTEXT, ID, "op", SpanKind.SERVER, {}, []);
  assert.equal(drops, 0);
  assert.match(never.toString(), /^RateLimitingSampler\{1\/s, RatioSampler\{0\}\}$/);
});
