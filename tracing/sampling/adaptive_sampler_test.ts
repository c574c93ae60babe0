import assert from "node:assert/strict";
import { ROOT_CONTEXT } from "@opentelemetry/api";
import {
  AdaptiveSampler,
  type AdaptiveSamplerOptions,
  MIN_PROBABILITY,
  OVERFLOW_OPERATION,
} from "./adaptive_sampler.ts";
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

/**
 * A sampler on a clock the test sets (`clock.now`), fed trace ids seeded by `seed`; `decide(op)`
 * asks it about one root span of `op`.
 */
function clocked(seed: number, options: Omit<AdaptiveSamplerOptions, "now">) {
  const clock = { now: 0 };
  const nextId = idSource(seed);
  const sampler = new AdaptiveSampler({ ...options, now: () => clock.now });
  const decide = (op: string) => isSampled(sampler.shouldSample(ROOT_CONTEXT, nextId(), op));
  return { clock, sampler, decide };
}

Deno.test("a busy operation converges to the target rate", () => {
  const { clock, sampler, decide } = clocked(1, {
    initialRate: 0.1,
    targetTracesPerSecond: 1,
    intervalMs: 10_000,
  });
  const sampledPerInterval: number[] = [];
  // 1000 requests per second for 8 intervals.
  for (let interval = 0; interval < 8; interval++) {
    let sampled = 0;
    for (let i = 0; i < 10_000; i++) {
      clock.now = interval * 10_000 + i;
      if (decide("GET /v2/{name}/blobs/{digest}")) sampled++;
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
  const { clock, decide } = clocked(2, { initialRate: 0, floorPerInterval: 1, intervalMs: 1000 });
  for (let interval = 0; interval < 5; interval++) {
    clock.now = interval * 1000 + 500;
    assert.equal(decide("replication.trigger"), true);
  }
  // With a floor of 3, exactly the first 3 of an interval are guaranteed.
  const floor3 = clocked(2, { initialRate: 0, floorPerInterval: 3 });
  const decisions = Array.from({ length: 6 }, () => floor3.decide("op"));
  assert.deepEqual(decisions.slice(0, 3), [true, true, true]);
  assert.equal(floor3.sampler.effectiveRate("op"), MIN_PROBABILITY);
});

Deno.test("increases are bounded by max_increase_factor, decreases are immediate", () => {
  const quiet = clocked(3, {
    initialRate: 0.01,
    floorPerInterval: 0,
    targetTracesPerSecond: 100,
    maxIncreaseFactor: 2,
    intervalMs: 1000,
  });
  quiet.decide("quiet");
  quiet.clock.now = 1000;
  quiet.decide("quiet");
  assert.equal(quiet.sampler.effectiveRate("quiet"), 0.02, "doubled, not jumped to the target");

  const busy = clocked(3, {
    initialRate: 1,
    floorPerInterval: 0,
    targetTracesPerSecond: 1,
    intervalMs: 10_000,
  });
  for (let i = 0; i < 1000; i++) busy.decide("busy");
  busy.clock.now = 10_000;
  busy.decide("busy");
  // 1000 sampled in 10 s = 100/s against a target of 1/s: p drops 100× in one step.
  assert.ok(Math.abs(busy.sampler.effectiveRate("busy") - 0.01) < 1e-12);
});

Deno.test("load above the threshold scales the target down", () => {
  for (const [load, expectedScale] of [[0.5, 1], [0.85, 0.5], [1, 0.1]]) {
    const { clock, sampler, decide } = clocked(4, {
      initialRate: 1,
      floorPerInterval: 0,
      targetTracesPerSecond: 1,
      intervalMs: 10_000,
      loadSource: () => load,
      loadThreshold: 0.7,
    });
    for (let i = 0; i < 1000; i++) decide("op");
    clock.now = 10_000;
    decide("op");
    assert.ok(
      Math.abs(sampler.loadScale - expectedScale) < 1e-9,
      `load ${load}: ${sampler.loadScale}`,
    );
    assert.ok(Math.abs(sampler.effectiveRate("op") - 0.01 * expectedScale) < 1e-12);
  }
});

Deno.test("tracked operations are bounded and idle ones are forgotten", () => {
  const { clock, sampler, decide } = clocked(5, {
    initialRate: 0.5,
    maxOperations: 3,
    intervalMs: 1000,
  });
  for (let i = 0; i < 10; i++) decide(`op${i}`);
  assert.equal(sampler.operationCount, 3);
  assert.deepEqual([...sampler.effectiveRates()].map(([name]) => name), [
    "op0",
    "op1",
    "op2",
    OVERFLOW_OPERATION,
  ]);
  assert.equal(sampler.effectiveRate("op9"), 0.5, "untracked operations report the initial rate");
  clock.now = 1000;
  decide("op1");
  clock.now = 2000;
  decide("op1");
  assert.deepEqual([...sampler.effectiveRates()].map(([name]) => name), ["op1"]);
});
