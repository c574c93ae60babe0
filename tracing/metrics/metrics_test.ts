import assert from "node:assert/strict";
import { LATENCY_BUCKETS_MS, MAX_PENDING_SAMPLES, TracingMetrics } from "./metrics.ts";

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
  assert.equal(m.exportLatency.sum, 10_040);
});

Deno.test("latency buckets: inclusive upper bounds and an overflow slot", () => {
  const m = new TracingMetrics();
  for (const ms of [0.5, 1, 1.01, 10_000, 10_001]) m.exportLatency.observe(ms);
  const counts = Array.from(m.exportLatency.counts);
  assert.equal(counts.length, LATENCY_BUCKETS_MS.length + 1);
  assert.equal(counts[0], 2, "0.5 and 1 fall in le=1");
  assert.equal(counts[1], 1, "1.01 falls in le=5");
  assert.equal(counts[LATENCY_BUCKETS_MS.length - 1], 1, "10000 falls in le=10000");
  assert.equal(counts[LATENCY_BUCKETS_MS.length], 1, "10001 overflows");
});

Deno.test("pending latency samples are drained once and bounded", () => {
  const m = new TracingMetrics();
  m.exportLatency.observe(3);
  m.exportLatency.observe(4);
  assert.deepEqual(m.exportLatency.drainSamples(), [3, 4]);
  assert.deepEqual(m.exportLatency.drainSamples(), []);
  for (let i = 0; i < MAX_PENDING_SAMPLES + 10; i++) m.exportLatency.observe(i);
  const drained = m.exportLatency.drainSamples();
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
