import assert from "node:assert/strict";
import {
  cpuSecondsFromStat,
  idleCpuMsPerSecond,
  interleavedRuns,
  sampleValue,
  schedstatNanos,
  tracingBlock,
} from "./e2e.ts";

Deno.test("cpuSecondsFromStat: utime + stime in ticks, command names with spaces", () => {
  const stat = "4242 (deno (worker) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 " +
    "12345 1000000 5000 18446744073709551615";
  assert.equal(cpuSecondsFromStat(stat), 3.25);
  assert.throws(() => cpuSecondsFromStat("garbage"), /not a \/proc/);
});

Deno.test("schedstatNanos: the first field, on-CPU nanoseconds; other text refused", () => {
  assert.equal(schedstatNanos("123456789 2345 67\n"), 123456789);
  assert.throws(() => schedstatNanos("nothing here"), /not a schedstat line/);
});

Deno.test("idleCpuMsPerSecond: the median reading of each process; exited threads count nothing", async () => {
  // Cumulative per-thread CPU, ns, at the start and after each of three 50 ms readings.
  const series = new Map([
    // Process 1: 1 ms per reading on its main thread, and a 40 ms burst of housekeeping in the
    // second; thread 12 exits after the first reading, thread 13 starts in the last.
    [1, [
      new Map([["1", 10e9], ["12", 3e9]]),
      new Map([["1", 10e9 + 1e6], ["12", 3e9]]),
      new Map([["1", 10e9 + 42e6]]),
      new Map([["1", 10e9 + 43e6], ["13", 0.5e6]]),
    ]],
    [2, [
      new Map([["2", 0]]),
      new Map([["2", 5e6]]),
      new Map([["2", 10e6]]),
      new Map([["2", 15e6]]),
    ]],
  ]);
  const calls = new Map<number, number>();
  const read = (pid: number) => {
    const n = calls.get(pid) ?? 0;
    calls.set(pid, n + 1);
    return Promise.resolve(series.get(pid)![n]);
  };
  const [a, b] = await idleCpuMsPerSecond([1, 2], { readings: 3, periodMs: 50, read });
  // Readings of process 1: 1, 41 and 1.5 ms per 50 ms (20, 820 and 30 ms/s): the median is 30.
  // Process 2: 5 ms per 50 ms, 100 ms/s. A reading may run a little longer than its period.
  assert.ok(a > 15 && a <= 30, `${a}`);
  assert.ok(b > 50 && b <= 100, `${b}`);
});

Deno.test("sampleValue: unlabelled samples of a Prometheus exposition", () => {
  const text = [
    "# HELP kraken_tracing_spans_sampled_total Span starts that were sampled.",
    "# TYPE kraken_tracing_spans_sampled_total counter",
    "kraken_tracing_spans_sampled_total 1234",
    'kraken_tracing_spans_dropped_total{reason="queue_full"} 3',
    "kraken_tracing_spans_exported_total 1200 1700000000000",
  ].join("\n");
  assert.equal(sampleValue(text, "kraken_tracing_spans_sampled_total"), 1234);
  assert.equal(sampleValue(text, "kraken_tracing_spans_exported_total"), 1200);
  assert.equal(sampleValue(text, "kraken_tracing_spans_dropped_total"), 0);
  assert.equal(sampleValue(text, "kraken_tracing_spans"), 0);
});

Deno.test("tracingBlock: off disables tracing; 10% and 100% export protobuf, shed nothing", () => {
  assert.deepEqual(tracingBlock("off", "http://sink"), { enabled: false });
  const ten = tracingBlock("10%", "http://sink");
  assert.equal(ten.endpoint, "http://sink");
  assert.deepEqual(ten.sampling, { default_rate: 0.1 });
  assert.deepEqual(ten.export, { protocol: "http/protobuf" });
  assert.deepEqual(ten.safeguards, { load_threshold: 1 });
  assert.deepEqual(tracingBlock("100%", "http://sink").sampling, { default_rate: 1 });
});

Deno.test("interleavedRuns: warm-up untimed, requests interleaved, runs bounded in time", async () => {
  const seen: number[] = [];
  // Each CPU reading of process p advances it by p seconds: a run costs p per process.
  const clock = new Map<number, number>();
  const cpu = (pid: number) => {
    clock.set(pid, (clock.get(pid) ?? 0) + pid);
    return Promise.resolve(clock.get(pid)!);
  };
  const runs = await interleavedRuns({
    pids: [1, 2, 3],
    cpu,
    perVariant: 4,
    warmup: 1,
    runs: 2,
    maxRunMs: 60_000,
    request: (v) => {
      seen.push(v);
      return Promise.resolve(100 * (v + 1));
    },
  });
  assert.deepEqual(seen.slice(0, 3), [0, 1, 2]);
  assert.equal(seen.length, 3 + 2 * 12);
  assert.equal(runs.length, 2);
  for (const run of runs) {
    assert.deepEqual(run.map((v) => v.count), [4, 4, 4]);
    assert.deepEqual(run.map((v) => v.p50Micros), [100, 200, 300]);
    assert.deepEqual(run.map((v) => Math.round(v.perSecond)), [10_000, 5_000, 3_333]);
    assert.deepEqual(run.map((v) => v.cpuSeconds), [1, 2, 3]);
  }
  // A run past its time bound stops early and reports what it did.
  let calls = 0;
  const bounded = await interleavedRuns({
    pids: [1],
    cpu,
    perVariant: 1_000_000,
    warmup: 0,
    runs: 1,
    maxRunMs: 50,
    request: async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 5));
      return 5000;
    },
  });
  assert.ok(bounded[0][0].count < 100 && bounded[0][0].count === calls, String(calls));
});
