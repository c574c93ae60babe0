/**
 * Memory a sampled trace holds until it is exported: heap growth over many 10-span traces queued
 * in the batch export processor while export is paused, after a full garbage collection before
 * and after. A trace is shaped like an agent's blob GET: a server span with the HTTP attributes the
 * tracing middleware sets, and nine children with two attributes each (a namespace and a digest
 * shared by the trace, as the handlers pass them on).
 *
 * Needs V8's `gc()`: `deno run --v8-flags=--expose-gc perf/trace_memory.ts [traces]` prints the
 * figure, and {@linkcode measureTraceMemoryInChild} runs that in a child process for callers
 * without the flag (`bench/gate.ts`).
 *
 * @module
 */

import { ROOT_CONTEXT, type Span, SpanKind, trace } from "@opentelemetry/api";
import { resourceFromAttributes } from "@opentelemetry/resources";
import type { SpanExporter } from "@opentelemetry/sdk-trace";
import { ExportResultCode } from "@opentelemetry/core";
import { BatchExportProcessor } from "../tracing/export.ts";
import { serverSpanName } from "../tracing/http.ts";
import { ATTR, SPAN } from "../tracing/names.ts";
import { parseSamplingConfig } from "../tracing/sampling/config.ts";
import { buildSampler } from "../tracing/sampling/build.ts";
import { KrakenTracerProvider } from "../tracing/tracer.ts";

/** Options of {@linkcode measureTraceMemory}. */
export interface TraceMemoryOptions {
  /** Traces queued. Default 2000. */
  traces?: number;
}

/** What one queued trace holds. */
export interface TraceMemoryResult {
  /** Traces measured. */
  traces: number;
  /** Spans per trace. */
  spansPerTrace: number;
  /** Heap bytes per trace. */
  bytesPerTrace: number;
}

/** Spans in each measured trace. */
export const SPANS_PER_TRACE = 10;

/** Most heap one queued trace may hold until export (the 4 KB): CI's gate and the report. */
export const TRACE_MEMORY_LIMIT_BYTES = 4096;

// Export is paused by sizing: the processor below is never due to export while measuring; its
// exporter only sees the spans at shutdown.
const discard: SpanExporter = {
  export: (_spans, done) => done({ code: ExportResultCode.SUCCESS }),
  shutdown: () => Promise.resolve(),
};

// Flat hex, as a parsed digest is (a string built by concatenation would be a rope of pieces).
function hex(bytes: number): string {
  const random = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("");
}

const ROUTE = "/namespace/{namespace}/blobs/{digest}";
// Names an agent's blob GET has below its server span.
const CHILDREN = [
  SPAN.agentDownloadBlob,
  SPAN.agentCacheLookup,
  SPAN.schedulerDownload,
  SPAN.announceRequest,
  SPAN.metainfoRequest,
  SPAN.storageCreateTorrent,
  SPAN.storageCommit,
  SPAN.agentStreamResponse,
];

function oneTrace(tracer: ReturnType<KrakenTracerProvider["getTracer"]>, n: number): void {
  const digest = `sha256:${hex(32)}`;
  const namespace = `library/image-${n}`;
  const server = tracer.startSpan(serverSpanName("GET", ROUTE), {
    kind: SpanKind.SERVER,
    attributes: {
      [ATTR.httpRequestMethod]: "GET",
      [ATTR.urlPath]: `/namespace/${encodeURIComponent(namespace)}/blobs/${digest}`,
      [ATTR.urlScheme]: "http",
      [ATTR.serverAddress]: "127.0.0.1",
      [ATTR.edge]: true,
      [ATTR.serverPort]: 16000,
      [ATTR.httpRoute]: ROUTE,
      [ATTR.clientAddress]: "127.0.0.1",
      [ATTR.networkPeerAddress]: "127.0.0.1",
      [ATTR.networkPeerPort]: 40000 + (n % 20000),
      [ATTR.userAgentOriginal]: "containerd/2.0.0",
    },
  });
  const parent = trace.setSpan(ROOT_CONTEXT, server);
  const children: Span[] = [];
  for (let i = 1; i < SPANS_PER_TRACE; i++) {
    const name = CHILDREN[i % CHILDREN.length];
    children.push(tracer.startSpan(name, { attributes: { namespace, digest } }, parent));
  }
  for (const child of children) child.end();
  server.setAttribute(ATTR.httpResponseStatusCode, 200);
  server.setAttribute(ATTR.httpResponseBodySize, 65536);
  server.end();
}

/** Measures {@linkcode TraceMemoryResult}; needs `--v8-flags=--expose-gc`. */
export async function measureTraceMemory(
  options: TraceMemoryOptions = {},
): Promise<TraceMemoryResult> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("measureTraceMemory needs deno run --v8-flags=--expose-gc");
  const traces = options.traces ?? 2000;
  const warmup = 50;
  const spans = (traces + warmup) * SPANS_PER_TRACE;
  const processor = new BatchExportProcessor({
    exporter: discard,
    maxBatchSize: spans + 1,
    maxQueueSize: spans,
    batchTimeoutMs: 3_600_000,
  });
  const tracer = new KrakenTracerProvider({
    resource: resourceFromAttributes({ "service.name": "trace-memory" }),
    sampler: buildSampler(parseSamplingConfig({ default_rate: 1 }, "tracing.sampling")),
    sink: processor,
  }).getTracer("kraken");
  // Warm up the code paths (and their one-time allocations) before the baseline.
  for (let i = 0; i < warmup; i++) oneTrace(tracer, i);
  gc();
  const before = Deno.memoryUsage().heapUsed;
  for (let i = 0; i < traces; i++) oneTrace(tracer, i);
  gc();
  const after = Deno.memoryUsage().heapUsed;
  if (processor.queueSize !== spans) {
    throw new Error(`expected ${spans} queued spans, found ${processor.queueSize}`);
  }
  await processor.shutdown();
  return { traces, spansPerTrace: SPANS_PER_TRACE, bytesPerTrace: (after - before) / traces };
}

/** Runs {@linkcode measureTraceMemory} in a child `deno` with the GC exposed. */
export async function measureTraceMemoryInChild(
  options: TraceMemoryOptions = {},
): Promise<TraceMemoryResult> {
  const args = [
    "run",
    "--allow-all",
    "--v8-flags=--expose-gc",
    new URL(import.meta.url).pathname,
    "--json",
    String(options.traces ?? 2000),
  ];
  const out = await new Deno.Command(Deno.execPath(), { args, stderr: "inherit" }).output();
  if (!out.success) throw new Error(`trace memory measurement failed with code ${out.code}`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

if (import.meta.main) {
  const json = Deno.args.includes("--json");
  const traces = Number(Deno.args.find((a) => /^\d+$/.test(a)) ?? 2000);
  const result = await measureTraceMemory({ traces });
  if (json) console.log(JSON.stringify(result));
  else {
    console.log(
      `${result.traces} traces of ${result.spansPerTrace} spans queued: ` +
        `${(result.bytesPerTrace / 1024).toFixed(2)} KiB per trace`,
    );
  }
}
