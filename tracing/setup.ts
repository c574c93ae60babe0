/**
 * Process-wide tracing start-up: builds the resource, sampler, circuit breaker, batch export
 * processor and tracer provider from a {@linkcode TracingConfig}, registers the context manager,
 * propagator and provider globally, and returns a {@linkcode TracingRuntime} that roles use for
 * `/metrics` and shutdown.
 *
 * With tracing disabled nothing is exported and spans are the API's no-op spans, but the context
 * manager and the propagator are still registered, so an incoming trace context is passed on to
 * downstream calls unchanged.
 *
 * @module
 */

import { context, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { resourceFromAttributes } from "@opentelemetry/resources";
import type { SpanExporter } from "@opentelemetry/sdk-trace";
import { VERSION } from "../common/version.ts";
import type { TracingConfig } from "./config.ts";
import { BatchExportProcessor, OtlpHttpExporter } from "./export.ts";
import { type Logger, rateLimited } from "./log.ts";
import { krakenPropagator } from "./propagation.ts";
import { buildSampler } from "./sampling/build.ts";
import { KrakenTracerProvider, newTracerCounters } from "./tracer.ts";

/** What roles get back from {@linkcode initTracing}. */
export interface TracingRuntime {
  /** Whether spans are recorded and exported. */
  readonly enabled: boolean;
  /** The `service.name` in use. */
  readonly serviceName: string;
  /** Spans waiting for export right now. */
  queueSize(): number;
  /** A snapshot of the tracer and export counters. */
  stats(): TracingStats;
  /** Exports everything queued (tests, demo). */
  forceFlush(): Promise<void>;
  /** Flushes (bounded by `timeoutMs`, default 5 s) and stops exporting. */
  shutdown(timeoutMs?: number): Promise<void>;
}

/** Counters of the tracer and the export path. */
export interface TracingStats {
  /** Span starts, sampled or not. */
  spansCreated: number;
  /** Span starts that were sampled. */
  spansSampled: number;
  /** Span starts shed by the circuit breaker. */
  droppedBreaker: number;
  /** Ended spans dropped because the export queue was full. */
  droppedQueueFull: number;
  /** Spans exported successfully. */
  exported: number;
  /** Failed export requests. */
  exportErrors: number;
  /** Spans waiting for export. */
  queueSize: number;
}

const ZERO_STATS: TracingStats = Object.freeze({
  spansCreated: 0,
  spansSampled: 0,
  droppedBreaker: 0,
  droppedQueueFull: 0,
  exported: 0,
  exportErrors: 0,
  queueSize: 0,
});

/** Options of {@linkcode initTracing}. */
export interface InitOptions {
  /** Role name, for the resource and logs. */
  role: string;
  /** Logger for exporter errors (rate-limited) and state changes. */
  logger: Logger;
  /** Exporter override (tests); default OTLP/HTTP protobuf to `config.tracesUrl`. */
  exporter?: SpanExporter;
}

let contextManagerInstalled = false;

/** Installs the async-local-storage context manager and the propagator once per process. */
export function installContextPropagation(): void {
  if (contextManagerInstalled) return;
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(krakenPropagator);
  contextManagerInstalled = true;
}

/** Sets up tracing for this process from its validated configuration. */
export function initTracing(config: TracingConfig, options: InitOptions): TracingRuntime {
  installContextPropagation();
  if (!config.enabled) {
    return {
      enabled: false,
      serviceName: config.serviceName,
      queueSize: () => 0,
      stats: () => ({ ...ZERO_STATS }),
      forceFlush: () => Promise.resolve(),
      shutdown: () => Promise.resolve(),
    };
  }
  const logger = options.logger;
  const exportError = rateLimited(
    30_000,
    (msg, fields) => logger.warn(msg, fields),
  );
  const exporter = options.exporter ?? new OtlpHttpExporter({
    url: config.tracesUrl,
    timeoutMs: config.export.timeoutMs,
    maxAttempts: config.export.retryEnabled ? config.export.retryMaxAttempts : 1,
    protocol: config.export.protocol,
  });
  const processor = new BatchExportProcessor({
    exporter,
    maxBatchSize: config.export.maxBatchSize,
    maxQueueSize: config.export.maxQueueSize,
    batchTimeoutMs: config.export.batchTimeoutMs,
    observer: {
      onExport(count, ok, _ms, error) {
        if (!ok) {
          exportError("span export failed", {
            spans: count,
            endpoint: config.tracesUrl,
            error: error?.message,
          });
        }
      },
    },
  });
  const resource = resourceFromAttributes({
    "service.name": config.serviceName,
    "service.version": VERSION,
    "service.namespace": "kraken",
    "host.name": Deno.hostname(),
    "process.pid": Deno.pid,
    "process.runtime.name": "deno",
    "process.runtime.version": Deno.version.deno,
    "telemetry.sdk.language": "js",
    "telemetry.sdk.name": "kraken",
    "telemetry.sdk.version": VERSION,
    "kraken.role": options.role,
  });
  const counters = newTracerCounters();
  const provider = new KrakenTracerProvider({
    resource,
    sampler: buildSampler(config.sampling),
    sink: processor,
    counters,
  });
  trace.setGlobalTracerProvider(provider);
  let stopped = false;
  return {
    enabled: true,
    serviceName: config.serviceName,
    queueSize: () => processor.queueSize,
    stats: () => ({
      ...counters,
      droppedQueueFull: processor.counters.droppedQueueFull,
      exported: processor.counters.exported,
      exportErrors: processor.counters.exportErrors,
      queueSize: processor.queueSize,
    }),
    forceFlush: () => processor.forceFlush(),
    async shutdown(timeoutMs = 5000) {
      if (stopped) return;
      stopped = true;
      await processor.shutdown(timeoutMs);
      trace.disable();
    },
  };
}
