import assert from "node:assert/strict";
import { ROOT_CONTEXT } from "@opentelemetry/api";
import { SamplingDecision } from "@opentelemetry/sdk-trace";
import { RatioSampler, traceIdSampled } from "./ratio.ts";

function randomTraceId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("traceIdSampled compares the low 56 bits with the rate's threshold", () => {
  // Threshold for 0.5 is 2^55: the top bit of the low 56 bits decides.
  assert.equal(traceIdSampled("0000000000000000" + "80000000000000".padStart(16, "0"), 0.5), true);
  assert.equal(traceIdSampled("ffffffffffffffff" + "007fffffffffffff", 0.5), false);
  // The high 72 bits play no part.
  assert.equal(traceIdSampled("ffffffffffffffffff" + "00000000000000", 0.5), false);
  assert.equal(traceIdSampled("00000000000000000080000000000000", 0.5), true);
  // Upper-case hex reads the same.
  assert.equal(traceIdSampled("000000000000000000FFFFFFFFFFFFFF", 0.001), true);
  assert.equal(traceIdSampled("00000000000000000000000000000000", 1), true);
  assert.equal(traceIdSampled("000000000000000000ffffffffffffff", 0), false);
  assert.equal(traceIdSampled("000000000000000000ffffffffffffff", Number.NaN), false);
});

Deno.test("decisions are deterministic across instances and nested across rates", () => {
  const a = new RatioSampler(0.3);
  const b = new RatioSampler(0.3);
  for (let i = 0; i < 2000; i++) {
    const id = randomTraceId();
    const da = a.shouldSample(ROOT_CONTEXT, id).decision;
    assert.equal(da, b.shouldSample(ROOT_CONTEXT, id).decision);
    // Sampled at 0.1 implies sampled at 0.3 implies sampled at 0.9.
    if (traceIdSampled(id, 0.1)) assert.equal(da, SamplingDecision.RECORD_AND_SAMPLED);
    if (da === SamplingDecision.RECORD_AND_SAMPLED) assert.equal(traceIdSampled(id, 0.9), true);
  }
});

Deno.test("the sampled share matches the rate", () => {
  const n = 20_000;
  for (const rate of [0.01, 0.1, 0.5]) {
    let hits = 0;
    for (let i = 0; i < n; i++) if (traceIdSampled(randomTraceId(), rate)) hits++;
    const sd = Math.sqrt(n * rate * (1 - rate));
    assert.ok(Math.abs(hits - n * rate) < 5 * sd, `rate ${rate}: ${hits} of ${n}`);
  }
});

Deno.test("RatioSampler clamps its rate", () => {
  assert.equal(new RatioSampler(3).rate, 1);
  assert.equal(new RatioSampler(-1).rate, 0);
  assert.equal(new RatioSampler(0.25).toString(), "RatioSampler{0.25}");
});
