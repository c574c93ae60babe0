import assert from "node:assert/strict";
import {
  allTargets,
  completenessTargets,
  DEFAULT_OPTIONS,
  type E2eMeasurement,
  e2eTargets,
  embedReport,
  formatAddedMicros,
  formatBytes,
  formatMicros,
  inProcessTargets,
  interleave,
  median,
  overheadPercent,
  p2pTargets,
  parsePerfArgs,
  percentile,
  type PerfReport,
  renderReport,
  REPORT_MARKERS,
  summarizeLatencies,
  tracerTargets,
  type VariantRun,
} from "./report.ts";

Deno.test("percentile: nearest rank over unsorted values", () => {
  const values = [9, 1, 8, 2, 7, 3, 6, 4, 5, 10];
  assert.equal(percentile(values, 50), 5);
  assert.equal(percentile(values, 99), 10);
  assert.equal(percentile(values, 90), 9);
  assert.equal(percentile(values, 0), 1);
  assert.equal(percentile(values, 100), 10);
  assert.ok(Number.isNaN(percentile([], 50)));
  assert.throws(() => percentile(values, 101), RangeError);
  // The input is not reordered.
  assert.deepEqual(values.slice(0, 3), [9, 1, 8]);
  const hundred = Array.from({ length: 1000 }, (_, i) => i + 1);
  assert.equal(percentile(hundred, 99), 990);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([3, 1, 2]), 2);
});

Deno.test("summarizeLatencies: count, p50, p99", () => {
  const us = [...Array.from({ length: 99 }, () => 500), 5000];
  assert.deepEqual(summarizeLatencies(us), { count: 100, p50Micros: 500, p99Micros: 500 });
  const tail = [...Array.from({ length: 98 }, () => 500), 5000, 6000];
  assert.equal(summarizeLatencies(tail).p99Micros, 5000);
});

Deno.test("interleave: every variant equally often, in every position", () => {
  const order = interleave(3, 300);
  assert.equal(order.length, 900);
  for (let v = 0; v < 3; v++) assert.equal(order.filter((x) => x === v).length, 300);
  for (let block = 0; block < 300; block++) {
    assert.deepEqual(order.slice(3 * block, 3 * block + 3).toSorted(), [0, 1, 2]);
  }
  for (let position = 0; position < 3; position++) {
    for (let v = 0; v < 3; v++) {
      const n = order.filter((x, i) => i % 3 === position && x === v).length;
      assert.equal(n, 100, `variant ${v} at position ${position}`);
    }
  }
  assert.deepEqual(interleave(3, 2), [0, 1, 2, 1, 2, 0]);
  assert.deepEqual(interleave(1, 0), []);
  assert.throws(() => interleave(0, 1), RangeError);
});

function run(p50s: number[], p99s: number[]): VariantRun[] {
  return p50s.map((p50, i) => ({
    count: 100,
    p50Micros: p50,
    p99Micros: p99s[i],
    perSecond: 1e6 / p50,
    cpuSeconds: 0.05,
  }));
}

Deno.test("e2eTargets: median overhead over runs against the issue's limits", () => {
  const m: E2eMeasurement = {
    title: "GET",
    node: "agent",
    runs: [
      run([1000, 1004, 1020], [2000, 2010, 2100]),
      run([1000, 1002, 1040], [2000, 2030, 2300]),
    ],
  };
  const t = e2eTargets(m);
  assert.deepEqual(t.map((x) => x.met), [true, true, true, true]);
  assert.equal(t[0].name, "agent GET, 10%: p50 over off");
  assert.equal(t[0].measured, "+0.3% (+0.2% to +0.4%)");
  assert.equal(t[3].measured, "+10.0% (+5.0% to +15.0%)");
  // 0.6% at p50 misses the 10% target; 11% at p99 misses the 100% one.
  const miss = e2eTargets({
    ...m,
    runs: [
      run([1000, 1006, 1000], [2000, 2000, 2220]),
      run([1000, 1006, 1000], [2000, 2000, 2220]),
    ],
  });
  assert.deepEqual(miss.map((x) => x.met), [false, true, true, false]);
  assert.equal(overheadPercent(200, 250), 25);
});

Deno.test("p2p, in-process, tracer and completeness targets", () => {
  const p2p = {
    agents: 1,
    sizeBytes: 512 << 20,
    rounds: 3,
    pages: "recycled" as const,
    mbPerSecond: { median: 510, min: 400, max: 520 },
    agentCpuSecondsPerGiB: 1.7,
    originCpuSecondsPerGiB: 0.4,
  };
  assert.deepEqual(p2pTargets(p2p).map((t) => t.met), [true, false, true]);
  const four = { ...p2p, agents: 4, mbPerSecond: { median: 590, min: 500, max: 600 } };
  assert.deepEqual(p2pTargets(undefined, four).map((t) => [t.name, t.met]), [
    ["P2P 1→4: aggregate MB/s median", false],
  ]);
  const inproc = {
    untracedMicros: 10,
    sampledMicros: 12.9,
    unsampledMicros: 10.8,
    sampledAddedMicros: 2.9,
    unsampledAddedMicros: 0.8,
  };
  assert.deepEqual(inProcessTargets(inproc).map((t) => t.met), [true, false]);
  const tracer = (krakenNs: number, memoryBytesPerTrace: number) => ({
    operations: [{ name: "span start+end sampled", krakenNs, sdkNs: 1000 }],
    memoryBytesPerTrace,
    spansPerTrace: 10,
  });
  assert.deepEqual(tracerTargets(tracer(300, 4096)).map((t) => t.met), [true, true]);
  assert.deepEqual(tracerTargets(tracer(301, 4097)).map((t) => t.met), [false, false]);
  // Without the sampled pair only the memory target is judged.
  assert.deepEqual(
    tracerTargets({ ...tracer(1, 1), operations: [] }).map((t) => t.name),
    ["tracer: heap held per queued 10-span trace"],
  );
  const c = {
    pull: { traces: 200, whole: 198 },
    push: { traces: 200, whole: 197 },
    spans: { sampled: 10_000, exported: 9_990 },
    exportErrors: 0,
    spansPerTrace: { pull: 9, push: 12 },
  };
  assert.deepEqual(completenessTargets(c).map((t) => t.met), [true, false, true]);
  assert.equal(completenessTargets(c)[1].measured, "98.5% (197/200)");
  // Nothing looked up is not "met".
  const none = { ...c, pull: { traces: 0, whole: 0 }, spans: { sampled: 0, exported: 0 } };
  assert.deepEqual(completenessTargets(none).map((t) => t.met), [false, false, false]);
});

Deno.test("formatAddedMicros writes the sign of a difference once", () => {
  assert.equal(formatAddedMicros(0.824), "+0.82 µs");
  assert.equal(formatAddedMicros(-1.014), "-1.01 µs");
  assert.equal(formatAddedMicros(0), "+0.00 µs");
});

Deno.test("formatMicros and formatBytes", () => {
  assert.equal(formatMicros(612.4), "612 µs");
  assert.equal(formatMicros(2720), "2.72 ms");
  assert.equal(formatMicros(NaN), "—");
  assert.equal(formatBytes(64 * 1024), "64 KiB");
  assert.equal(formatBytes(512 * 2 ** 20), "512 MiB");
  assert.equal(formatBytes(2 ** 31), "2 GiB");
  assert.equal(formatBytes(1536), "1.5 KiB");
});

function sampleReport(): PerfReport {
  return {
    info: {
      cpu: "Test CPU",
      cores: 2,
      memoryBytes: 4 * 2 ** 30,
      deno: "2.9.6",
      date: "2026-12-02T04:00:00.000Z",
      command: "npm run perf",
      load: { start: 0.5, end: 1.5 },
      seconds: 300,
    },
    p2p: {
      oneToOne: {
        agents: 1,
        sizeBytes: 512 << 20,
        rounds: 3,
        pages: "recycled",
        mbPerSecond: { median: 510, min: 400, max: 520 },
        agentCpuSecondsPerGiB: 1.2,
        originCpuSecondsPerGiB: 0.4,
      },
      goOneToOne: {
        agents: 1,
        sizeBytes: 512 << 20,
        rounds: 3,
        pages: "recycled",
        mbPerSecond: { median: 300, min: 250, max: 320 },
        agentCpuSecondsPerGiB: 3.5,
        originCpuSecondsPerGiB: 0.9,
      },
      pageCache: { bytes: 512 << 20, freshCpuSecondsPerGiB: 2.4, reusedCpuSecondsPerGiB: 0.42 },
    },
    inProcess: { error: "boom" },
    tracer: {
      figures: {
        operations: [
          { name: "span start+end sampled", krakenNs: 445, sdkNs: 1710 },
          { name: "traceparent inject", krakenNs: 79, sdkNs: 233 },
        ],
        memoryBytesPerTrace: 3350,
        spansPerTrace: 10,
      },
    },
    e2e: [{
      title: "GET of a cached 64 KB blob",
      node: "agent",
      runs: [run([500, 505, 530], [1500, 1510, 1700])],
      spans: { "10%": { sampled: 10, exported: 10 } },
    }],
    e2ePinning: "client on CPU 0, nodes under test on CPU 1",
    e2eIdle: [{ node: "agent", msPerSecond: [1.5, 1.75, 2] }],
    failures: [{ part: "completeness", error: "Jaeger missing" }],
  };
}

Deno.test("renderReport: the in-process part's allocation line", () => {
  const report = sampleReport();
  report.inProcess = {
    figures: {
      untracedMicros: 20,
      sampledMicros: 27,
      unsampledMicros: 21,
      sampledAddedMicros: 7,
      unsampledAddedMicros: 1,
    },
    allocation: {
      requests: 500,
      untracedBytes: 14022.4,
      sampledBytes: 17122.6,
      unsampledBytes: 13990,
    },
  };
  assert.match(
    renderReport(report),
    /Bytes allocated per request \(`perf\/request_allocation\.ts`, V8's sampling heap profiler, 500 requests per stack\): no tracing 14022, sampled 17123 \(\+3100\), not sampled 13990 \(-32\)\./,
  );
});

Deno.test("renderReport: every section, figures, targets marked", () => {
  const md = renderReport(sampleReport());
  for (
    const heading of [
      "## `npm run perf` report",
      "### P2P",
      "### In-process",
      "### Tracer against the stock SDK",
      "### End to end",
      "### agent GET of a cached 64 KB blob",
      "### Trace completeness",
      "### Scale inputs",
      "### Targets",
      "### Parts that failed",
    ]
  ) {
    assert.ok(md.includes(heading), `missing ${heading}:\n${md}`);
  }
  assert.match(md, /Machine: Test CPU, 2 cores, 4 GiB memory; Deno 2\.9\.6/);
  assert.match(md, /per request\. CPUs: client on CPU 0, nodes under test on CPU 1\./);
  assert.match(md, /\| 1 → 1 \| 512 MiB × 3 \| 510 \(400–520\) \| 1\.20 \| 0\.40 \| — \|/);
  assert.match(
    md,
    /\| 1 → 1, Go Kraken agent \| 512 MiB × 3 \| 300 \(250–320\) \| 3\.50 \| 0\.90 \| — \|/,
  );
  assert.match(
    md,
    /512 MiB into a new file costs 2\.40 CPU s\/GiB in fresh pages and 0\.42 s\/GiB/,
  );
  assert.match(md, /Pages: right before each timed GET, a scratch file .* is written and deleted/);
  assert.match(md, /\| 1 \| 10% \| 100 \| 505 µs \(\+1\.0%\) \| 1\.51 ms \(\+0\.7%\) \|/);
  assert.match(md, /Idle CPU of each node after the runs, ms per second/);
  assert.match(md, /\| agent \| 1\.50 \| 1\.75 \| 2\.00 \|/);
  assert.match(md, /Not measured: boom/);
  assert.match(md, /\| span start\+end sampled \| 445 ns \| 1\.71 µs \| 0\.26× \|/);
  assert.match(md, /\| traceparent inject \| 79 ns \| 233 ns \| 0\.34× \|/);
  assert.match(md, /Heap held per queued 10-span trace until export .*: 3350 bytes\./);
  assert.match(md, /\| tracer: sampled span, kraken \/ stock SDK \| ≤ 0\.3× \| 0\.26× \| met \|/);
  assert.match(md, /\| tracer: heap held per queued 10-span trace \| ≤ 4096 B \| 3350 B \| met \|/);
  assert.match(md, /\| P2P 1→1: MB\/s median \| ≥ 500 \| 510 \| met \|/);
  assert.match(
    md,
    /\| agent GET of a cached 64 KB blob, 10%: p50 over off \| ≤ 0\.5% \| .* \*\*not met\*\* \|/,
  );
  const targets = allTargets(sampleReport());
  assert.match(
    md,
    new RegExp(`${targets.filter((t) => t.met).length} of ${targets.length} targets met`),
  );
  assert.match(md, /- completeness: Jaeger missing/);
});

Deno.test("embedReport: replaces only the marked section, headings one level down", () => {
  const doc =
    `# Perf\n\nintro\n\n${REPORT_MARKERS.start}\nold\n${REPORT_MARKERS.end}\n\n## After\n`;
  const out = embedReport(doc, "## `npm run perf` report\n\ntext\n\n### P2P");
  assert.equal(
    out,
    `# Perf\n\nintro\n\n${REPORT_MARKERS.start}\n\n### \`npm run perf\` report\n\ntext\n\n#### P2P\n\n${REPORT_MARKERS.end}\n\n## After\n`,
  );
  // Embedding again gives the same document.
  assert.equal(embedReport(out, "## `npm run perf` report\n\ntext\n\n### P2P"), out);
  assert.throws(() => embedReport("# no markers", "x"), /perf-report:start/);
});

Deno.test("parsePerfArgs: defaults, sizes, counts, skip; bad input named", () => {
  const d = parsePerfArgs([]);
  assert.equal(d.sizeBytes, DEFAULT_OPTIONS.sizeBytes);
  assert.equal(d.gets, 20_000);
  assert.equal(d.writeDocs, false);
  const o = parsePerfArgs([
    "--size=2GiB",
    "--rounds=5",
    "--gets=100",
    "--upload-size=1MB",
    "--write-docs",
    "--skip=p2p,scale",
    "--out=/tmp/r.md",
    "--go-agent=/opt/kraken-agent",
    "--pages=fresh",
  ]);
  assert.equal(o.sizeBytes, 2 * 2 ** 30);
  assert.equal(o.rounds, 5);
  assert.equal(o.gets, 100);
  assert.equal(o.uploadBytes, 2 ** 20);
  assert.equal(o.writeDocs, true);
  assert.deepEqual([...o.skip], ["p2p", "scale"]);
  assert.equal(o.out, "/tmp/r.md");
  assert.equal(o.goAgent, "/opt/kraken-agent");
  assert.equal(d.goAgent, undefined);
  assert.equal(o.pages, "fresh");
  assert.equal(d.pages, "recycled");
  assert.throws(() => parsePerfArgs(["--pages=warm"]), /--pages=warm: expected recycled or fresh/);
  // The defaults are not shared between calls.
  assert.equal(parsePerfArgs([]).skip.size, 0);
  assert.throws(() => parsePerfArgs(["--size=2XB"]), /--size: invalid byte size/);
  assert.throws(() => parsePerfArgs(["--size=0"]), /at least 1 byte/);
  assert.throws(() => parsePerfArgs(["--rounds=0"]), /--rounds=0: expected a positive integer/);
  assert.throws(() => parsePerfArgs(["--gets"]), /--gets needs a value/);
  assert.throws(() => parsePerfArgs(["--fast"]), /unknown argument --fast/);
  assert.throws(() => parsePerfArgs(["--skip=p2p,x"]), /unknown part x/);
  assert.throws(() => parsePerfArgs(["size=1"]), /unexpected argument/);
});
