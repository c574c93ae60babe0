/**
 * The tracer against the stock OpenTelemetry SDK, in the same run: span start+end (sampled and
 * unsampled), traceparent inject and extract. Each pair differs only in its `kraken:`/`otel-sdk:`
 * prefix; `bench/gate.ts` reads the JSON output and fails CI when kraken is slower.
 *
 * Both tracers feed a batch processor whose exporter discards batches, so the measured cost is
 * what a request pays, not the network. The span benches time {@linkcode SPANS_PER_ITERATION} spans
 * per iteration and flush both processors after each, untimed: a span's cost then includes its way
 * into the queue, as in a role, where the queue is exported in the background. (A sync loop of
 * single spans never lets a processor export: past its 2048-span queue both sides would measure
 * dropping spans.) A kraken span bench that drops a span fails.
 *
 * @module
 */

import {
  context,
  defaultTextMapGetter,
  defaultTextMapSetter,
  ROOT_CONTEXT,
  trace,
  TraceFlags,
} from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  CompositePropagator,
  ExportResultCode,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
} from "@opentelemetry/core";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  type SpanExporter,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import { BatchExportProcessor } from "../tracing/export.ts";
import { krakenPropagator } from "../tracing/propagation.ts";
import { KrakenTracerProvider } from "../tracing/tracer.ts";
import { buildSampler } from "../tracing/sampling/build.ts";
import { parseSamplingConfig } from "../tracing/sampling/config.ts";
import { SPANS_PER_ITERATION } from "./gate.ts";

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

const discard: SpanExporter = {
  export: (_spans, done) => done({ code: ExportResultCode.SUCCESS }),
  shutdown: () => Promise.resolve(),
};
const resource = resourceFromAttributes({ "service.name": "bench" });

// Both processors' batches are larger than an iteration's spans, so neither exports inside the
// timed part (the SDK's would export synchronously on reaching its batch size); each is flushed
// between iterations.
const BATCH = 2 * SPANS_PER_ITERATION;

// kraken, with the samplers a role really runs (rules + parent-based), at 100% and 0%.
function krakenTracer(rate: number) {
  const sampler = buildSampler(parseSamplingConfig({ default_rate: rate }, "tracing.sampling"));
  const sink = new BatchExportProcessor({
    exporter: discard,
    batchTimeoutMs: 60_000,
    maxBatchSize: BATCH,
  });
  const tracer = new KrakenTracerProvider({ resource, sampler, sink }).getTracer("bench");
  return { tracer, flush: () => sink.forceFlush(), dropped: () => sink.counters.droppedQueueFull };
}
const krakenSampled = krakenTracer(1);
const krakenUnsampled = krakenTracer(0);

function sdkTracer(sampled: boolean) {
  const provider = new TracerProvider({
    resource,
    sampler: sampled ? new AlwaysOnSampler() : new AlwaysOffSampler(),
    spanProcessors: [
      new BatchSpanProcessor({
        exporter: discard,
        scheduledDelayMillis: 60_000,
        maxQueueSize: 2048,
        maxExportBatchSize: BATCH,
      }),
    ],
  });
  return { tracer: provider.getTracer("bench"), flush: () => provider.forceFlush() };
}
const sdkSampled = sdkTracer(true);
const sdkUnsampled = sdkTracer(false);

const sdkPropagator = new CompositePropagator({
  propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
});
const parentCtx = trace.setSpanContext(ROOT_CONTEXT, {
  traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
  spanId: "00f067aa0ba902b7",
  traceFlags: TraceFlags.SAMPLED,
});
// Fixed iteration counts with warm-up, so both sides run the same number of spans through their
// batch queues (and the same garbage-collection pressure).
const RUN = { n: 200_000, warmup: 20_000 };
const SPAN_RUN = {
  n: Math.round(RUN.n / SPANS_PER_ITERATION),
  warmup: Math.ceil(RUN.warmup / SPANS_PER_ITERATION),
};

/** A tracer of the span benches, the flush of its batch processor and, for kraken, its drops. */
interface BenchTracer {
  tracer: { startSpan(name: string): { end(): void } };
  flush(): Promise<void>;
  dropped?: () => number;
}

/**
 * One span bench: {@linkcode SPANS_PER_ITERATION} spans timed, then the processor flushed. A span
 * dropped fails the bench: the queue filled, and the figure would be the drop path's.
 */
function spanBench(side: BenchTracer): (b: Deno.BenchContext) => Promise<void> {
  return async (b) => {
    b.start();
    for (let i = 0; i < SPANS_PER_ITERATION; i++) side.tracer.startSpan("op").end();
    b.end();
    await side.flush();
    const dropped = side.dropped?.() ?? 0;
    if (dropped > 0) throw new Error(`the batch processor dropped ${dropped} spans`);
  };
}

const incoming = { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" };

/** The span benches: `kraken: <name>` (its group's baseline) and `otel-sdk: <name>`. */
const SPAN_OPERATIONS: { name: string; group: string; kraken: BenchTracer; sdk: BenchTracer }[] = [
  {
    name: "span start+end sampled",
    group: "span sampled",
    kraken: krakenSampled,
    sdk: sdkSampled,
  },
  {
    name: "span start+end unsampled",
    group: "span unsampled",
    kraken: krakenUnsampled,
    sdk: sdkUnsampled,
  },
];

/**
 * Each operation runs once per tracer, as `kraken: <name>` (its group's baseline) and
 * `otel-sdk: <name>`; `bench/gate.ts` compares the two by name.
 */
export const OPERATIONS: { name: string; group: string; kraken: () => void; sdk: () => void }[] = [
  {
    name: "traceparent inject",
    group: "inject",
    kraken: () => krakenPropagator.inject(parentCtx, {}, defaultTextMapSetter),
    sdk: () => sdkPropagator.inject(parentCtx, {}, defaultTextMapSetter),
  },
  {
    name: "traceparent extract",
    group: "extract",
    kraken: () => void krakenPropagator.extract(ROOT_CONTEXT, incoming, defaultTextMapGetter),
    sdk: () => void sdkPropagator.extract(ROOT_CONTEXT, incoming, defaultTextMapGetter),
  },
];

for (const { name, group, kraken, sdk } of SPAN_OPERATIONS) {
  Deno.bench(`kraken: ${name}`, { ...SPAN_RUN, group, baseline: true }, spanBench(kraken));
  Deno.bench(`otel-sdk: ${name}`, { ...SPAN_RUN, group }, spanBench(sdk));
}
for (const { name, group, kraken, sdk } of OPERATIONS) {
  Deno.bench(`kraken: ${name}`, { ...RUN, group, baseline: true }, kraken);
  Deno.bench(`otel-sdk: ${name}`, { ...RUN, group }, sdk);
}
