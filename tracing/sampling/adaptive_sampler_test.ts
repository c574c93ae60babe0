import assert from "node:assert/strict";
import { ROOT_CONTEXT } from "@opentelemetry/api";
import { AdaptiveSampler, MIN_PROBABILITY, OVERFLOW_OPERATION } from "./adaptive_sampler.ts";
import { isSampled } from "./results.ts";

/** Seeded trace ids, so the statistics below are reproducible. */
function idSource(seed: number): () => string {
  let s = seed >>> 0;
  const word = () => {
    // mulberry32
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0).toString(16).padStart(8, "0");
  };
  return () => word() + word() + word() + word();
}

Deno.test("a busy operation converges to the target rate", () => {
  let now = 0;
  const nextId = idSource(1);
  const sampler = new AdaptiveSampler({
    initialRate: 0.1,
    targetTracesPerSecond: 1,
    intervalMs: 10_000,
    now: () => now,
  });
  const sampledPerInterval: number[] = [];
  // 1000 requests per second for 8 intervals.
  for (let interval = 0; interval < 8; interval++) {
    let sampled = 0;
    for (let i = 0; i < 10_000; i++) {
      now = interval * 10_000 + i;
      if (
        isSampled(sampler.shouldSample(ROOT_CONTEXT, nextId(), "GET /v2/{name}/blobs/{digest}"))
      ) {
        sampled++;
      }
    }
    sampledPerInterval.push(sampled);
  }
  assert.ok(sampledPerInterval[0] > 800, `first interval at 10%: ${sampledPerInterval[0]}`);
  // Target: 1 trace/s = 10 per interval, reached after one interval and held.
  for (const n of sampledPerInterval.slice(1)) {
    assert.ok(n >= 3 && n <= 25, `per interval ${sampledPerInterval.join(",")}`);
  }
  const p = sampler.effectiveRate("GET /v2/{name}/blobs/{digest}");
  assert.ok(p > 0.0003 && p < 0.003, `probability ${p}`);
});

Deno.test("a rare operation is always seen thanks to the floor", () => {
  let now = 0;
  const nextId = idSource(2);
  const sampler = new AdaptiveSampler({
    initialRate: 0,
    floorPerInterval: 1,
    intervalMs: 1000,
    now: () => now,
  });
  for (let interval = 0; interval < 5; interval++) {
    now = interval * 1000 + 500;
    assert.equal(
      isSampled(sampler.shouldSample(ROOT_CONTEXT, nextId(), "replication.trigger")),
      true,
    );
  }
  // With a floor of 3, exactly the first 3 of an interval are guaranteed.
  const floor3 = new AdaptiveSampler({ initialRate: 0, floorPerInterval: 3, now: () => 0 });
  const decisions = Array.from(
    { length: 6 },
    () => isSampled(floor3.shouldSample(ROOT_CONTEXT, nextId(), "op")),
  );
  assert.deepEqual(decisions.slice(0, 3), [true, true, true]);
  assert.equal(floor3.effectiveRate("op"), MIN_PROBABILITY);
});

Deno.test("increases are bounded by max_increase_factor, decreases are immediate", () => {
  let now = 0;
  const nextId = idSource(3);
  const sampler = new AdaptiveSampler({
    initialRate: 0.01,
    floorPerInterval: 0,
    targetTracesPerSecond: 100,
    maxIncreaseFactor: 2,
    intervalMs: 1000,
    now: () => now,
  });
  sampler.shouldSample(ROOT_CONTEXT, nextId(), "quiet");
  now = 1000;
  sampler.shouldSample(ROOT_CONTEXT, nextId(), "quiet");
  assert.equal(sampler.effectiveRate("quiet"), 0.02, "doubled, not jumped to the target");

  now = 0;
  const busy = new AdaptiveSampler({
    initialRate: 1,
    floorPerInterval: 0,
    targetTracesPerSecond: 1,
    intervalMs: 10_000,
    now: () => now,
  });
  for (let i = 0; i < 1000; i++) busy.shouldSample(ROOT_CONTEXT, nextId(), "busy");
  now = 10_000;
  busy.shouldSample(ROOT_CONTEXT, nextId(), "busy");
  // 1000 sampled in 10 s = 100/s against a target of 1/s: p drops 100× in one step.
  assert.ok(Math.abs(busy.effectiveRate("busy") - 0.01) < 1e-12);
});

Deno.test("load above the threshold scales the target down", () => {
  for (const [load, expectedScale] of [[0.5, 1], [0.85, 0.5], [1, 0.1]]) {
    let now = 0;
    const nextId = idSource(4);
    const sampler = new AdaptiveSampler({
      initialRate: 1,
      floorPerInterval: 0,
      targetTracesPerSecond: 1,
      intervalMs: 10_000,
      loadSource: () => load,
      loadThreshold: 0.7,
      now: () => now,
    });
    for (let i = 0; i < 1000; i++) sampler.shouldSample(ROOT_CONTEXT, nextId(), "op");
    now = 10_000;
    sampler.shouldSample(ROOT_CONTEXT, nextId(), "op");
    assert.ok(
      Math.abs(sampler.loadScale - expectedScale) < 1e-9,
      `load ${load}: ${sampler.loadScale}`,
    );
    assert.ok(Math.abs(sampler.effectiveRate("op") - 0.01 * expectedScale) < 1e-12);
  }
});

Deno.test("tracked operations are bounded and idle ones are forgotten", () => {
  let now = 0;
  const nextId = idSource(5);
  const sampler = new AdaptiveSampler({
    initialRate: 0.5,
    maxOperations: 3,
    intervalMs: 1000,
    now: () => now,
  });
  for (let i = 0; i < 10; i++) sampler.shouldSample(ROOT_CONTEXT, nextId(), `op${i}`);
  assert.equal(sampler.operationCount, 3);
  assert.deepEqual([...sampler.effectiveRates()].map(([name]) => name), [
    "op0",
    "op1",
    "op2",
    OVERFLOW_OPERATION,
  ]);
  assert.equal(sampler.effectiveRate("op9"), 0.5, "untracked operations report the initial rate");
  now = 1000;
  sampler.shouldSample(ROOT_CONTEXT, nextId(), "op1");
  now = 2000;
  sampler.shouldSample(ROOT_CONTEXT, nextId(), "op1");
  assert.deepEqual([...sampler.effectiveRates()].map(([name]) => name), ["op1"]);
});
