import assert from "node:assert/strict";
import { ROOT_CONTEXT, SpanKind } from "@opentelemetry/api";
import { RateLimitingSampler } from "./rate_limiting_sampler.ts";
import { RatioSampler } from "./ratio.ts";
import { isSampled } from "./results.ts";

const ID = "0af7651916cd43dd8448eb211c80319c";

/** A limiter over a ratio sampler on a clock the test sets, counting its drops. */
function limiter(delegateRate: number, maxPerSecond: number) {
  const state = { now: 0, drops: 0 };
  const sampler = new RateLimitingSampler({
    delegate: new RatioSampler(delegateRate),
    maxPerSecond,
    now: () => state.now,
    onDrop: () => state.drops++,
  });
  const decide = () => sampler.shouldSample(ROOT_CONTEXT, ID, "op", SpanKind.SERVER, {}, []);
  return { state, sampler, decide };
}

Deno.test("the rate limiter caps sampled decisions per second and counts drops", () => {
  const { state, decide } = limiter(1, 10);
  let sampled = 0;
  // 1000 root spans spread over 10 simulated seconds.
  for (let i = 0; i < 1000; i++) {
    state.now = i * 10;
    if (isSampled(decide())) sampled++;
  }
  assert.ok(sampled >= 100 && sampled <= 110, `sampled ${sampled}`);
  assert.equal(state.drops, 1000 - sampled);
});

Deno.test("unsampled delegate decisions cost no token", () => {
  const { state, sampler, decide } = limiter(0, 1);
  for (let i = 0; i < 5; i++) decide();
  assert.equal(state.drops, 0);
  assert.match(sampler.toString(), /^RateLimitingSampler\{1\/s, RatioSampler\{0\}\}$/);
});
