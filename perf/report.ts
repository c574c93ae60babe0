/**
 * The logic of the `npm run perf` report, free of processes and I/O so it is unit-tested: latency
 * percentiles, the interleaving schedule of the end-to-end loads, overhead ratios and the issue's
 * targets (each marked met or not met), the command line, the markdown rendering, and the
 * rewriting of the report section of `docs/performance.md`.
 *
 * ```ts
 * import { interleave, percentile, summarizeLatencies } from "./report.ts";
 * interleave(3, 2); // [0, 1, 2, 1, 2, 0]
 * percentile([5, 1, 3], 50); // 3
 * summarizeLatencies([500, 520, 2000]).p99Micros; // 2000
 * ```
 *
 * @module
 */

import { parseByteSize } from "../common/byte_size.ts";
import type { P2pResult } from "./p2p.ts";
import { type PageCacheWrite, type PageState, parsePageState } from "./page_cache.ts";
import { TRACE_MEMORY_LIMIT_BYTES } from "./trace_memory.ts";

/** The three tracing settings every end-to-end measurement compares, in this order. */
export const TRACING_VARIANTS = ["off", "10%", "100%"] as const;

/** One of {@linkcode TRACING_VARIANTS}. */
export type TracingVariant = typeof TRACING_VARIANTS[number];

/** The sampling rate of a variant (`off` has tracing disabled, not rate 0). */
export function variantRate(variant: TracingVariant): number | undefined {
  return variant === "off" ? undefined : variant === "10%" ? 0.1 : 1;
}

/**
 * The nearest-rank percentile `p` (0–100) of `values`: the smallest value with at least `p`% of
 * the values at or below it. `NaN` for no values.
 */
export function percentile(values: readonly number[], p: number): number {
  if (p < 0 || p > 100 || Number.isNaN(p)) throw new RangeError(`percentile ${p} not in 0-100`);
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

/** The median of `values` (the mean of the middle two for an even count); `NaN` for none. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Latency percentiles of one variant in one run. */
export interface LatencySummary {
  /** Requests timed. */
  count: number;
  /** Median, µs. */
  p50Micros: number;
  /** 99th percentile, µs. */
  p99Micros: number;
}

/** {@linkcode LatencySummary} of latencies given in µs. */
export function summarizeLatencies(micros: readonly number[]): LatencySummary {
  return {
    count: micros.length,
    p50Micros: percentile(micros, 50),
    p99Micros: percentile(micros, 99),
  };
}

/**
 * The order in which `variants` targets get `perVariant` requests each, interleaved so drift of a
 * loaded machine hits all alike: blocks of one request per variant, each block's order rotated by
 * one, so every variant goes first, second, ... equally often.
 */
export function interleave(variants: number, perVariant: number): number[] {
  if (!Number.isInteger(variants) || variants < 1) throw new RangeError("variants must be >= 1");
  if (!Number.isInteger(perVariant) || perVariant < 0) {
    throw new RangeError("perVariant must be >= 0");
  }
  const order: number[] = [];
  for (let block = 0; block < perVariant; block++) {
    for (let i = 0; i < variants; i++) order.push((block + i) % variants);
  }
  return order;
}

/** `(value - baseline) / baseline` in percent. */
export function overheadPercent(baseline: number, value: number): number {
  return ((value - baseline) / baseline) * 100;
}

/** One variant's figures in one run of an end-to-end measurement. */
export interface VariantRun extends LatencySummary {
  /** Requests per second while this variant's requests ran (count / their summed time). */
  perSecond: number;
  /** CPU seconds of the variant's node process during the run. */
  cpuSeconds: number;
}

/** An end-to-end measurement: three nodes side by side, timed in interleaved runs. */
export interface E2eMeasurement {
  /** What was timed, e.g. `agent GET of a cached 64 KB blob`. */
  title: string;
  /** The node under test, e.g. `agent`. */
  node: string;
  /** `runs[r][v]`: run `r`, variant `v` (in {@linkcode TRACING_VARIANTS} order). */
  runs: VariantRun[][];
  /** Spans the traced nodes exported / recorded, by variant (after the runs, queues flushed). */
  spans?: Partial<Record<TracingVariant, { sampled: number; exported: number }>>;
}

/** A target of the issue and whether this run met it. */
export interface TargetResult {
  /** What is measured, e.g. `agent GET, 10%: p50 over off`. */
  name: string;
  /** The limit as written, e.g. `≤ 0.5%`. */
  limit: string;
  /** The measured value as written, e.g. `+0.3% (-0.1 to +0.7%)`. */
  measured: string;
  /** Whether it is met. */
  met: boolean;
}

/** The end-to-end overhead targets over tracing off, in percent. */
export const E2E_TARGETS: Record<Exclude<TracingVariant, "off">, { p50: number; p99: number }> = {
  "10%": { p50: 0.5, p99: 1 },
  "100%": { p50: 3, p99: 10 },
};

function signed(x: number, digits = 1): string {
  return `${x >= 0 ? "+" : ""}${x.toFixed(digits)}%`;
}

/**
 * The overhead targets of one measurement. Each run's overhead is the variant's percentile over
 * tracing off's in the same run; the target is met when the median over runs is within the limit
 * (the range over runs is shown beside it).
 */
export function e2eTargets(m: E2eMeasurement): TargetResult[] {
  const out: TargetResult[] = [];
  for (const variant of ["10%", "100%"] as const) {
    const v = TRACING_VARIANTS.indexOf(variant);
    for (const p of ["p50", "p99"] as const) {
      const key = p === "p50" ? "p50Micros" : "p99Micros";
      const overheads = m.runs.map((run) => overheadPercent(run[0][key], run[v][key]));
      const mid = median(overheads);
      const limit = E2E_TARGETS[variant][p];
      out.push({
        name: `${m.node} ${m.title}, ${variant}: ${p} over off`,
        limit: `≤ ${limit}%`,
        measured: `${signed(mid)} (${rangeOf(overheads, (x) => signed(x))})`,
        met: mid <= limit,
      });
    }
  }
  return out;
}

function rangeOf(values: readonly number[], show: (x: number) => string): string {
  const lo = Math.min(...values), hi = Math.max(...values);
  return lo === hi ? show(lo) : `${show(lo)} to ${show(hi)}`;
}

/** The P2P figures `perf/p2p.ts` reports (the fields the report reads). */
export type P2pFigures = Pick<
  P2pResult,
  | "agents"
  | "sizeBytes"
  | "rounds"
  | "pages"
  | "mbPerSecond"
  | "agentCpuSecondsPerGiB"
  | "originCpuSecondsPerGiB"
  | "agentToAgentPieceShare"
>;

/** The in-process figures `perf/inprocess.ts` reports. */
export interface InProcessFigures {
  /** µs per request without tracing. */
  untracedMicros: number;
  /** µs per request, traced and sampled. */
  sampledMicros: number;
  /** µs per request, traced at 0%: the sampler turns the request down. */
  unsampledMicros: number;
  /** µs tracing adds to a sampled request. */
  sampledAddedMicros: number;
  /** µs tracing adds to an unsampled request. */
  unsampledAddedMicros: number;
}

/** Bytes each in-process stack allocates per request (`perf/request_allocation.ts`). */
export interface InProcessAllocation {
  /** Requests profiled per stack. */
  requests: number;
  /** Bytes per request without tracing. */
  untracedBytes: number;
  /** Bytes per request, traced and sampled. */
  sampledBytes: number;
  /** Bytes per request, traced at 0%. */
  unsampledBytes: number;
}

/** The P2P targets of the issue (absolute on this VM, from the same run). */
export function p2pTargets(oneToOne?: P2pFigures, oneToFour?: P2pFigures): TargetResult[] {
  const out: TargetResult[] = [];
  if (oneToOne) {
    out.push({
      name: "P2P 1→1: MB/s median",
      limit: "≥ 500",
      measured: oneToOne.mbPerSecond.median.toFixed(0),
      met: oneToOne.mbPerSecond.median >= 500,
    }, {
      name: "P2P 1→1: agent CPU s per GiB",
      limit: "≤ 1.6",
      measured: oneToOne.agentCpuSecondsPerGiB.toFixed(2),
      met: oneToOne.agentCpuSecondsPerGiB <= 1.6,
    }, {
      name: "P2P 1→1: origin CPU s per GiB",
      limit: "≤ 0.5",
      measured: oneToOne.originCpuSecondsPerGiB.toFixed(2),
      met: oneToOne.originCpuSecondsPerGiB <= 0.5,
    });
  }
  if (oneToFour) {
    out.push({
      name: `P2P 1→${oneToFour.agents}: aggregate MB/s median`,
      limit: "≥ 600",
      measured: oneToFour.mbPerSecond.median.toFixed(0),
      met: oneToFour.mbPerSecond.median >= 600,
    });
  }
  return out;
}

/** The in-process per-request targets of the issue. */
export function inProcessTargets(f: InProcessFigures): TargetResult[] {
  return [{
    name: "in-process: µs added, sampled",
    limit: "≤ 3",
    measured: f.sampledAddedMicros.toFixed(2),
    met: f.sampledAddedMicros <= 3,
  }, {
    name: "in-process: µs added, unsampled",
    limit: "≤ 0.7",
    measured: f.unsampledAddedMicros.toFixed(2),
    met: f.unsampledAddedMicros <= 0.7,
  }];
}

/** The tracer against the stock SDK (`bench/tracer_bench.ts`) and the heap a queued trace holds. */
export interface TracerFigures {
  /** ns per operation, kraken and the SDK, same run, in the bench's order. */
  operations: { name: string; krakenNs: number; sdkNs: number }[];
  /** Heap bytes one queued trace holds until export (`perf/trace_memory.ts`). */
  memoryBytesPerTrace: number;
  /** Spans in that trace. */
  spansPerTrace: number;
}

/** The sampled span's largest ratio to the stock SDK the issue accepts. */
export const TRACER_SAMPLED_RATIO_TARGET = 0.3;

/** The tracer targets: a sampled span at ≤ 0.3× the SDK's time, ≤ 4 KB held per queued trace. */
export function tracerTargets(f: TracerFigures): TargetResult[] {
  const out: TargetResult[] = [];
  const sampled = f.operations.find((o) => o.name === "span start+end sampled");
  if (sampled) {
    const ratio = sampled.krakenNs / sampled.sdkNs;
    out.push({
      name: "tracer: sampled span, kraken / stock SDK",
      limit: `≤ ${TRACER_SAMPLED_RATIO_TARGET}×`,
      measured: `${ratio.toFixed(2)}×`,
      met: ratio <= TRACER_SAMPLED_RATIO_TARGET,
    });
  }
  out.push({
    name: `tracer: heap held per queued ${f.spansPerTrace}-span trace`,
    limit: `≤ ${TRACE_MEMORY_LIMIT_BYTES} B`,
    measured: `${f.memoryBytesPerTrace.toFixed(0)} B`,
    met: f.memoryBytesPerTrace <= TRACE_MEMORY_LIMIT_BYTES,
  });
  return out;
}

/** Trace completeness under load, from Jaeger and from the nodes' export metrics. */
export interface CompletenessFigures {
  /** Pull traces looked up, and how many were whole (every span's parent present). */
  pull: { traces: number; whole: number };
  /** Push traces looked up, and how many were whole. */
  push: { traces: number; whole: number };
  /** Spans the nodes recorded (sampled) and exported successfully, summed over nodes. */
  spans: { sampled: number; exported: number };
  /** Failed export requests summed over nodes. */
  exportErrors: number;
  /** Spans per trace, median, pull and push (what "whole" covered). */
  spansPerTrace: { pull: number; push: number };
}

/** The completeness targets: ≥ 99% whole traces, ≥ 99.9% export success. */
export function completenessTargets(c: CompletenessFigures): TargetResult[] {
  const share = (whole: number, n: number) => n === 0 ? 0 : (whole / n) * 100;
  const pull = share(c.pull.whole, c.pull.traces);
  const push = share(c.push.whole, c.push.traces);
  const exported = share(c.spans.exported, c.spans.sampled);
  return [{
    name: "completeness: pull traces whole",
    limit: "≥ 99%",
    measured: `${pull.toFixed(1)}% (${c.pull.whole}/${c.pull.traces})`,
    met: c.pull.traces > 0 && pull >= 99,
  }, {
    name: "completeness: push traces whole",
    limit: "≥ 99%",
    measured: `${push.toFixed(1)}% (${c.push.whole}/${c.push.traces})`,
    met: c.push.traces > 0 && push >= 99,
  }, {
    name: "completeness: spans exported / recorded",
    limit: "≥ 99.9%",
    measured: `${exported.toFixed(2)}% (${c.spans.exported}/${c.spans.sampled})`,
    met: c.spans.sampled > 0 && exported >= 99.9,
  }];
}

/** Announces against one tracker on the Redis peer store (`perf/e2e_redis.ts`). */
export interface RedisFigures {
  /** Announces timed. */
  announces: number;
  /** Announces in flight. */
  concurrency: number;
  /** Announces per second the tracker answered. */
  perSecond: number;
  /** Tracker CPU µs per announce. */
  trackerCpuMicros: number;
  /** redis-server CPU µs per announce. */
  redisCpuMicros: number;
}

/** Figures behind the scale note of `docs/performance.md`. */
export interface ScaleFigures {
  /** OTLP/protobuf bytes per exported span, from the sink's byte count (end-to-end part). */
  otlpBytesPerSpan?: number;
  /** Spans the 100% tracker recorded per announce (end-to-end part). */
  spansPerAnnounce?: number;
  /** One tracker on real Redis. */
  redis?: RedisFigures;
}

/** The machine and the run, for the report's header. */
export interface RunInfo {
  /** CPU model. */
  cpu: string;
  /** Logical cores. */
  cores: number;
  /** Memory in bytes. */
  memoryBytes: number;
  /** Deno version. */
  deno: string;
  /** ISO date of the run's start. */
  date: string;
  /** The command as run. */
  command: string;
  /** Load average (1 min) at the start and the end. */
  load: { start: number; end: number };
  /** Wall time of the whole run, seconds. */
  seconds: number;
}

/** Idle CPU of one kind of end-to-end node, ms per second, in {@linkcode TRACING_VARIANTS} order. */
export interface IdleCpu {
  /** `agent`, `tracker` or `proxy`. */
  node: string;
  /** One figure per tracing variant. */
  msPerSecond: number[];
}

/** Everything the report shows; a missing part renders as "not measured (reason)". */
export interface PerfReport {
  /** The machine and the run. */
  info: RunInfo;
  /** P2P 1→1 and 1→n, and the machine's page-cache write floor under the agent's CPU. */
  p2p: {
    oneToOne?: P2pFigures;
    oneToMany?: P2pFigures;
    /** The same shapes with upstream Go Kraken agents on our origin (`--go-agent=`). */
    goOneToOne?: P2pFigures;
    goOneToMany?: P2pFigures;
    pageCache?: PageCacheWrite;
    error?: string;
  };
  /** In-process per-request overhead. */
  inProcess: { figures?: InProcessFigures; allocation?: InProcessAllocation; error?: string };
  /** The tracer against the stock SDK, and memory per queued trace. */
  tracer: { figures?: TracerFigures; error?: string };
  /** End-to-end measurements (agent GET, tracker announce, proxy upload). */
  e2e: E2eMeasurement[];
  /** Where the e2e client and nodes under test ran (`perf/cpu_pinning.ts`). */
  e2ePinning?: string;
  /** Idle CPU of the e2e nodes after their runs, by node kind. */
  e2eIdle?: IdleCpu[];
  /** Trace completeness. */
  completeness?: CompletenessFigures;
  /** Scale-note figures. */
  scale?: ScaleFigures;
  /** Parts that failed, by name, with the error. */
  failures: { part: string; error: string }[];
}

/** Every target of the report, in report order. */
export function allTargets(report: PerfReport): TargetResult[] {
  return [
    ...p2pTargets(report.p2p.oneToOne, report.p2p.oneToMany),
    ...(report.inProcess.figures ? inProcessTargets(report.inProcess.figures) : []),
    ...(report.tracer.figures ? tracerTargets(report.tracer.figures) : []),
    ...report.e2e.flatMap(e2eTargets),
    ...(report.completeness ? completenessTargets(report.completeness) : []),
  ];
}

/** Formats ns as `445 ns` or `1.71 µs`. */
export function formatNanos(ns: number): string {
  return ns < 1000 ? `${ns.toFixed(0)} ns` : `${(ns / 1000).toFixed(2)} µs`;
}

/** Formats µs as `612 µs` or `2.72 ms`. */
export function formatMicros(us: number): string {
  if (!Number.isFinite(us)) return "—";
  return us < 1000 ? `${us.toFixed(0)} µs` : `${(us / 1000).toFixed(2)} ms`;
}

/** Formats a difference in µs with its sign, two decimals: `+0.82 µs`, `-1.01 µs`. */
export function formatAddedMicros(us: number): string {
  return `${us >= 0 ? "+" : ""}${us.toFixed(2)} µs`;
}

/** Formats a byte count in binary units (`64 KiB`, `512 MiB`, `2 GiB`). */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0, x = bytes;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${Number.isInteger(x) ? x : x.toFixed(1)} ${units[i]}`;
}

/** Renders a markdown table (`align`: `l` or `r` per column). */
export function table(header: string[], rows: string[][], align?: ("l" | "r")[]): string {
  const a = align ?? header.map((_, i) => i === 0 ? "l" : "r");
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [
    line(header),
    line(a.map((x) => x === "r" ? "---:" : "---")),
    ...rows.map(line),
  ].join("\n");
}

function p2pRow(label: string, f: P2pFigures): string[] {
  const mb = f.mbPerSecond;
  return [
    label,
    `${formatBytes(f.sizeBytes)} × ${f.rounds}`,
    `${mb.median.toFixed(0)} (${mb.min.toFixed(0)}–${mb.max.toFixed(0)})`,
    f.agentCpuSecondsPerGiB.toFixed(2),
    f.originCpuSecondsPerGiB.toFixed(2),
    f.agentToAgentPieceShare === undefined
      ? "—"
      : `${(f.agentToAgentPieceShare * 100).toFixed(0)}%`,
  ];
}

function e2eSection(m: E2eMeasurement): string {
  const rows: string[][] = [];
  m.runs.forEach((run, r) => {
    run.forEach((v, i) => {
      const off = run[0];
      const over = (key: "p50Micros" | "p99Micros") =>
        i === 0 ? "" : ` (${signed(overheadPercent(off[key], v[key]))})`;
      rows.push([
        `${r + 1}`,
        TRACING_VARIANTS[i],
        `${v.count}`,
        `${formatMicros(v.p50Micros)}${over("p50Micros")}`,
        `${formatMicros(v.p99Micros)}${over("p99Micros")}`,
        v.perSecond.toFixed(v.perSecond < 100 ? 1 : 0),
        (v.cpuSeconds * 1e6 / Math.max(1, v.count)).toFixed(0),
      ]);
    });
  });
  const parts = [
    `#### ${m.node} ${m.title}`,
    "",
    table(
      ["run", "tracing", "requests", "p50", "p99", "req/s", `${m.node} CPU µs/req`],
      rows,
      ["r", "l", "r", "r", "r", "r", "r"],
    ),
  ];
  if (m.spans) {
    const s = Object.entries(m.spans).map(([v, x]) =>
      `${v}: ${x!.exported}/${x!.sampled} spans exported`
    );
    parts.push("", `Spans of the traced ${m.node} nodes: ${s.join("; ")}.`);
  }
  return parts.join("\n");
}

/** Renders the whole report as markdown (no trailing newline). */
export function renderReport(report: PerfReport): string {
  const { info } = report;
  const out: string[] = [];
  out.push(
    "## `npm run perf` report",
    "",
    `Command: \`${info.command}\`; ${info.date}; ${info.seconds.toFixed(0)} s wall time.`,
    `Machine: ${info.cpu}, ${info.cores} cores, ${formatBytes(info.memoryBytes)} memory; ` +
      `Deno ${info.deno}; load average ${info.load.start.toFixed(1)} at the start, ` +
      `${info.load.end.toFixed(1)} at the end.`,
    "",
    "### P2P (origin → agents, loopback)",
    "",
  );
  const p2pRows: string[][] = [];
  const { oneToOne, oneToMany, goOneToOne, goOneToMany } = report.p2p;
  if (oneToOne) p2pRows.push(p2pRow("1 → 1", oneToOne));
  if (goOneToOne) p2pRows.push(p2pRow("1 → 1, Go Kraken agent", goOneToOne));
  if (oneToMany) p2pRows.push(p2pRow(`1 → ${oneToMany.agents}, aggregate`, oneToMany));
  if (goOneToMany) {
    p2pRows.push(p2pRow(`1 → ${goOneToMany.agents}, Go Kraken agents, aggregate`, goOneToMany));
  }
  if (p2pRows.length) {
    out.push(table(
      [
        "origin → agents",
        "blob × rounds",
        "MB/s median (min–max)",
        "agent CPU s/GiB",
        "origin CPU s/GiB",
        "pieces agent→agent",
      ],
      p2pRows,
    ));
  }
  const pages = oneToOne?.pages ?? oneToMany?.pages;
  if (pages === "recycled") {
    out.push(
      "",
      "Pages: right before each timed GET, a scratch file as large as the agents' downloads is " +
        "written and deleted, so every agent (ours and Go's alike) writes into page-cache pages " +
        "just freed, as on a host whose page cache is full (`--pages=fresh` leaves the machine's " +
        "page state as it is).",
    );
  } else if (pages === "fresh") {
    out.push(
      "",
      "Pages: as the machine hands them out (`--pages=fresh`); a round's blob is new, so its " +
        "writes mostly land in fresh pages.",
    );
  }
  const floor = report.p2p.pageCache;
  if (floor) {
    out.push(
      "",
      `Machine floor, same run (\`perf/page_cache.ts\`): writing ${
        formatBytes(floor.bytes)
      } into a ` +
        `new file costs ${floor.freshCpuSecondsPerGiB.toFixed(2)} CPU s/GiB in fresh pages and ` +
        `${floor.reusedCpuSecondsPerGiB.toFixed(2)} s/GiB in pages just freed by deleting a file.`,
    );
  }
  if (report.p2p.error) out.push(`Not measured: ${report.p2p.error}`);
  out.push("", "### In-process per-request overhead (the shared router, one blob route)", "");
  const f = report.inProcess.figures;
  if (f) {
    out.push(table(["", "µs per request", "added by tracing", "traced / untraced"], [
      ["no tracing", f.untracedMicros.toFixed(2), "—", "1.00"],
      [
        "traced, sampled",
        f.sampledMicros.toFixed(2),
        f.sampledAddedMicros.toFixed(2),
        (f.sampledMicros / f.untracedMicros).toFixed(2),
      ],
      [
        "traced, not sampled (0% sampler)",
        f.unsampledMicros.toFixed(2),
        f.unsampledAddedMicros.toFixed(2),
        (f.unsampledMicros / f.untracedMicros).toFixed(2),
      ],
    ]));
  }
  const a = report.inProcess.allocation;
  if (a) {
    const added = (bytes: number) => {
      const d = Math.round(bytes - a.untracedBytes);
      return `${d >= 0 ? "+" : ""}${d}`;
    };
    out.push(
      "",
      `Bytes allocated per request (\`perf/request_allocation.ts\`, V8's sampling heap profiler, ` +
        `${a.requests} requests per stack): no tracing ${Math.round(a.untracedBytes)}, sampled ` +
        `${Math.round(a.sampledBytes)} (${added(a.sampledBytes)}), not sampled ` +
        `${Math.round(a.unsampledBytes)} (${added(a.unsampledBytes)}).`,
    );
  }
  if (report.inProcess.error) out.push(`Not measured: ${report.inProcess.error}`);
  out.push("", "### Tracer against the stock SDK (`bench/tracer_bench.ts`)", "");
  const tr = report.tracer.figures;
  if (tr) {
    out.push(table(
      ["operation", "kraken", "otel-sdk", "kraken / SDK"],
      tr.operations.map((o) => [
        o.name,
        formatNanos(o.krakenNs),
        formatNanos(o.sdkNs),
        `${(o.krakenNs / o.sdkNs).toFixed(2)}×`,
      ]),
    ));
    out.push(
      "",
      `Heap held per queued ${tr.spansPerTrace}-span trace until export ` +
        `(\`perf/trace_memory.ts\`): ${tr.memoryBytesPerTrace.toFixed(0)} bytes.`,
    );
  }
  if (report.tracer.error) out.push(`Not measured: ${report.tracer.error}`);
  out.push(
    "",
    "### End to end: three nodes side by side, tracing off / 10% / 100%",
    "",
    "Requests interleaved across the three nodes (one at a time, order rotated every block); " +
      "percent in brackets: over tracing off in the same run. CPU: the node process's user+system " +
      "time during the run, per request." +
      (report.e2ePinning ? ` CPUs: ${report.e2ePinning}.` : ""),
  );
  for (const m of report.e2e) out.push("", e2eSection(m));
  if (report.e2eIdle?.length) {
    out.push(
      "",
      "Idle CPU of each node after the runs, ms per second (all threads, " +
        "`/proc/<pid>/task/*/schedstat`):",
      "",
      table(
        ["node", ...TRACING_VARIANTS],
        report.e2eIdle.map((r) => [r.node, ...r.msPerSecond.map((ms) => ms.toFixed(2))]),
        ["l", ...TRACING_VARIANTS.map(() => "r" as const)],
      ),
    );
  }
  out.push("", "### Trace completeness (real Jaeger)", "");
  const c = report.completeness;
  if (c) {
    out.push(table(["traces", "looked up", "whole", "median spans per trace"], [
      [
        "pull (agent GET, P2P download)",
        `${c.pull.traces}`,
        `${c.pull.whole}`,
        `${c.spansPerTrace.pull}`,
      ],
      ["push (proxy upload)", `${c.push.traces}`, `${c.push.whole}`, `${c.spansPerTrace.push}`],
    ]));
    out.push(
      "",
      `Export: ${c.spans.exported} of ${c.spans.sampled} recorded spans exported ` +
        `(${c.exportErrors} failed export requests).`,
    );
  } else out.push("Not measured.");
  const s = report.scale ?? {};
  out.push("", "### Scale inputs", "");
  const scaleRows: string[][] = [];
  if (s.otlpBytesPerSpan !== undefined) {
    scaleRows.push(["OTLP/protobuf bytes per exported span", s.otlpBytesPerSpan.toFixed(0)]);
  }
  if (s.spansPerAnnounce !== undefined) {
    scaleRows.push(["spans per announce, tracker at 100%", s.spansPerAnnounce.toFixed(2)]);
  }
  if (s.redis) {
    scaleRows.push(
      [
        `announces/s, one tracker on Redis, ${s.redis.concurrency} in flight`,
        s.redis.perSecond.toFixed(0),
      ],
      ["tracker CPU µs per announce (Redis store)", s.redis.trackerCpuMicros.toFixed(0)],
      ["redis-server CPU µs per announce", s.redis.redisCpuMicros.toFixed(0)],
    );
  }
  out.push(scaleRows.length ? table(["figure", "value"], scaleRows) : "Not measured.");
  out.push("", "### Targets", "");
  const targets = allTargets(report);
  out.push(table(
    ["target", "limit", "measured", ""],
    targets.map((t) => [t.name, t.limit, t.measured, t.met ? "met" : "**not met**"]),
    ["l", "r", "r", "l"],
  ));
  const met = targets.filter((t) => t.met).length;
  out.push("", `${met} of ${targets.length} targets met.`);
  if (report.failures.length) {
    out.push("", "### Parts that failed", "");
    for (const x of report.failures) out.push(`- ${x.part}: ${x.error}`);
  }
  return out.join("\n");
}

/** The markers around the report in `docs/performance.md`. */
export const REPORT_MARKERS = {
  start: "<!-- perf-report:start -->",
  end: "<!-- perf-report:end -->",
} as const;

/**
 * `doc` with the text between {@linkcode REPORT_MARKERS} replaced by `report`.
 * @throws Error when the markers are missing or out of order
 */
export function embedReport(doc: string, report: string): string {
  const start = doc.indexOf(REPORT_MARKERS.start);
  const end = doc.indexOf(REPORT_MARKERS.end);
  if (start < 0 || end < start) {
    throw new Error(`the document has no ${REPORT_MARKERS.start} … ${REPORT_MARKERS.end} section`);
  }
  // Report headings are `##`; embedded they sit one level down.
  const nested = report.replace(/^(#{2,}) /gm, "#$1 ");
  return `${doc.slice(0, start + REPORT_MARKERS.start.length)}\n\n${nested}\n\n${doc.slice(end)}`;
}

/** What `npm run perf` does, from its arguments. */
export interface PerfOptions {
  /** P2P blob size (`--size=`, default 512 MiB). */
  sizeBytes: number;
  /** P2P rounds per shape (`--rounds=`, default 3). */
  rounds: number;
  /** GETs per agent per run (`--gets=`, default 20 000). */
  gets: number;
  /** Announces per tracker per run, and to the Redis tracker (`--announces=`, default 3 000). */
  announces: number;
  /** 16 MiB uploads per proxy per run (`--uploads=`, default 40). */
  uploads: number;
  /** Upload size (`--upload-size=`, default 16 MiB). */
  uploadBytes: number;
  /** Interleaved runs of each end-to-end measurement (`--runs=`, default 2). */
  runs: number;
  /** Pull and push traces checked for completeness, each (`--traces=`, default 200). */
  traces: number;
  /** In-process requests (`--inprocess-requests=`, default 50 000). */
  inProcessRequests: number;
  /** Rewrite the report section of docs/performance.md (`--write-docs`). */
  writeDocs: boolean;
  /** Also write the markdown to this file (`--out=`). */
  out?: string;
  /**
   * An upstream Go Kraken agent binary (`--go-agent=`): the P2P part also measures it on our origin,
   * interleaved with ours, and the report shows its rows beside ours.
   */
  goAgent?: string;
  /** The page state of the P2P agents' writes (`--pages=recycled|fresh`, default recycled). */
  pages: PageState;
  /** Parts to skip (`--skip=p2p,inprocess,tracer,e2e,completeness,scale`). */
  skip: Set<string>;
}

/** The parts of the run, for `--skip`. */
export const PARTS = ["p2p", "inprocess", "tracer", "e2e", "completeness", "scale"] as const;

/** The defaults: the ~10-minute run on the project's 2-core VM. */
export const DEFAULT_OPTIONS: Readonly<PerfOptions> = {
  sizeBytes: 512 * 2 ** 20,
  rounds: 3,
  gets: 20_000,
  announces: 3_000,
  uploads: 40,
  uploadBytes: 16 * 2 ** 20,
  runs: 2,
  traces: 200,
  inProcessRequests: 50_000,
  writeDocs: false,
  pages: "recycled",
  skip: new Set(),
};

const KNOWN_ARGS = new Set([
  "size",
  "upload-size",
  "rounds",
  "gets",
  "announces",
  "uploads",
  "runs",
  "traces",
  "inprocess-requests",
  "out",
  "go-agent",
  "pages",
  "skip",
  "write-docs",
]);

function positiveInt(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new RangeError(`--${name}=${value}: expected a positive integer`);
  }
  return n;
}

/**
 * Parses `npm run perf -- …` arguments (`--name=value` form).
 * @throws RangeError naming a bad or unknown argument
 */
export function parsePerfArgs(args: readonly string[]): PerfOptions {
  const o: PerfOptions = { ...DEFAULT_OPTIONS, skip: new Set() };
  for (const arg of args) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m) throw new RangeError(`unexpected argument ${JSON.stringify(arg)}`);
    const [, name, value] = m;
    if (!KNOWN_ARGS.has(name)) throw new RangeError(`unknown argument --${name}`);
    if (name === "write-docs" && value === undefined) {
      o.writeDocs = true;
      continue;
    }
    if (value === undefined || value === "") {
      throw new RangeError(`--${name} needs a value (--${name}=…)`);
    }
    switch (name) {
      case "size":
      case "upload-size": {
        let bytes: number;
        try {
          bytes = parseByteSize(value);
        } catch (error) {
          throw new RangeError(`--${name}: ${(error as Error).message}`);
        }
        if (bytes < 1) throw new RangeError(`--${name}=${value}: must be at least 1 byte`);
        if (name === "size") o.sizeBytes = bytes;
        else o.uploadBytes = bytes;
        break;
      }
      case "rounds":
        o.rounds = positiveInt(name, value);
        break;
      case "gets":
        o.gets = positiveInt(name, value);
        break;
      case "announces":
        o.announces = positiveInt(name, value);
        break;
      case "uploads":
        o.uploads = positiveInt(name, value);
        break;
      case "runs":
        o.runs = positiveInt(name, value);
        break;
      case "traces":
        o.traces = positiveInt(name, value);
        break;
      case "inprocess-requests":
        o.inProcessRequests = positiveInt(name, value);
        break;
      case "out":
        o.out = value;
        break;
      case "go-agent":
        o.goAgent = value;
        break;
      case "pages":
        o.pages = parsePageState(value);
        break;
      case "skip":
        for (const part of value.split(",")) {
          if (!(PARTS as readonly string[]).includes(part)) {
            throw new RangeError(`--skip: unknown part ${part} (parts: ${PARTS.join(", ")})`);
          }
          o.skip.add(part);
        }
        break;
      default:
        throw new RangeError(`unknown argument --${name}`);
    }
  }
  return o;
}
