import assert from "node:assert/strict";
import { EXPORT_LATENCY_BUCKETS, TracingMetrics } from "./metrics.ts";
import { Histogram, MAX_PENDING_SAMPLES } from "./registry.ts";

Deno.test("export outcomes and queue-full drops land in the counters", () => {
  const m = new TracingMetrics();
  m.onExport(512, true, 40);
  m.onExport(100, false, 10_000);
  m.onQueueFull();
  m.onQueueFull();
  assert.equal(m.spansExported, 512);
  assert.equal(m.exportErrors, 1);
  assert.equal(m.droppedQueueFull, 2);
  assert.equal(m.exportLatency.count, 2);
  assert.equal(m.exportLatency.sum, 10.04, "seconds");
});

Deno.test("histogram buckets: inclusive upper bounds and an overflow slot", () => {
  const h = new Histogram(EXPORT_LATENCY_BUCKETS);
  for (const s of [0.0005, 0.001, 0.00101, 10, 10.001]) h.observe(s, null);
  const counts = Array.from(h.counts);
  assert.equal(counts.length, EXPORT_LATENCY_BUCKETS.length + 1);
  assert.equal(counts[0], 2, "0.5 ms and 1 ms fall in le=0.001");
  assert.equal(counts[1], 1, "1.01 ms falls in le=0.005");
  assert.equal(counts[EXPORT_LATENCY_BUCKETS.length - 1], 1, "10 s falls in le=10");
  assert.equal(counts[EXPORT_LATENCY_BUCKETS.length], 1, "10.001 s overflows");
});

Deno.test("pending histogram samples are drained once and bounded", () => {
  const h = new Histogram([1]);
  h.observe(3, null);
  h.observe(4, null);
  assert.deepEqual(h.drainSamples(), [3, 4]);
  assert.deepEqual(h.drainSamples(), []);
  for (let i = 0; i < MAX_PENDING_SAMPLES + 10; i++) h.observe(i, null);
  const drained = h.drainSamples();
  assert.equal(drained.length, MAX_PENDING_SAMPLES);
  assert.equal(drained[0], 10, "the most recent samples are kept");
  assert.equal(drained.at(-1), MAX_PENDING_SAMPLES + 9);
});

Deno.test("gauge sources default to constants and can be replaced", () => {
  const m = new TracingMetrics({ queueSize: () => 7 });
  assert.equal(m.gauges.queueSize(), 7);
  assert.equal(m.gauges.breakerState(), 0);
  assert.deepEqual([...m.gauges.samplingRates()], []);
  m.gauges.breakerState = () => 2;
  assert.equal(m.gauges.breakerState(), 2);
});
