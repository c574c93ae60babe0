/**
 * Process-wide tracing start-up: builds the resource, sampler, circuit breaker, self-metrics, batch
 * export processor and tracer provider from a {@linkcode TracingConfig}, registers the context
 * manager, propagator and provider globally, and returns a {@linkcode TracingRuntime} that roles use
 * for `/metrics` and shutdown.
 *
 * With tracing disabled nothing is exported and spans are the API's no-op spans, but the context
 * manager and the propagator are still registered, so an incoming trace context is passed on to
 * downstream calls unchanged.
 *
 * A runtime holds no module state: roles reach it through their `RoleContext` (its
 * `serverMiddleware` and `metricsHandler`), so several roles started in one process (tests) each
 * count and report their own traffic.
 *
 * @module
 */

import { type Attributes, context, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { resourceFromAttributes } from "@opentelemetry/resources";
import type { SpanExporter, SpanProcessor } from "@opentelemetry/sdk-trace";
import { FanOutSink, StockProcessorSink } from "./processors.ts";
import { VERSION } from "../common/version.ts";
import { ConfigError, type TracingConfig } from "./config.ts";
import { OtlpGrpcExporter } from "./otlp_grpc.ts";
import { BatchExportProcessor, ExportTimeoutError, OtlpHttpExporter } from "./export.ts";
import { type Logger, rateLimited } from "../common/log.ts";
import type { Ctx, Handler, Middleware } from "../http/router.ts";
import { type ServerTracingOptions, tracingMiddleware } from "./http.ts";
import { HttpMetrics } from "./http_metrics.ts";
import { registerTracingMetrics, TracingMetrics } from "./metrics/metrics.ts";
import { metricsExposition } from "./metrics/prometheus.ts";
import { MetricsRegistry } from "./metrics/registry.ts";
import { StatsdEmitter } from "./metrics/statsd.ts";
import { EdgeBaggagePolicy } from "./baggage_policy.ts";
import { ATTR } from "./names.ts";
import type { TracingLogLevel } from "./otel_env.ts";
import { buildPropagator, setHeaderPropagator } from "./propagation.ts";
import { CircuitBreaker } from "./safeguards/breaker.ts";
import { LoadSources } from "./safeguards/load.ts";
import { buildSampler } from "./sampling/build.ts";
import { KrakenTracerProvider } from "./tracer.ts";

/** Counters of the tracer and the export path, as `/stats`-style snapshots. */
export interface TracingStats {
  /** Span starts, sampled or not. */
  spansCreated: number;
  /** Span starts that were sampled. */
  spansSampled: number;
  /** Span starts shed by the circuit breaker. */
  droppedBreaker: number;
  /** Sampled decisions turned down by `max_traces_per_second` or `client_sampled_rate_limit`. */
  droppedRateLimit: number;
  /** Ended spans dropped because the export queue was full. */
  droppedQueueFull: number;
  /** Spans exported successfully. */
  exported: number;
  /** Failed export requests. */
  exportErrors: number;
  /** Failed export requests that ran out of the export timeout. */
  exportTimeouts: number;
  /** Spans waiting for export. */
  queueSize: number;
  /** Circuit breaker state. */
  breaker: "closed" | "half_open" | "open" | "disabled";
}

/** What roles get back from {@linkcode initTracing}. */
export interface TracingRuntime {
  /** Whether spans are recorded and exported. */
  readonly enabled: boolean;
  /** The `service.name` in use. */
  readonly serviceName: string;
  /** A snapshot of the tracer and export counters. */
  stats(): TracingStats;
  /**
   * The role's own metrics (requests, downloads, storage, limits, dependency states), served on
   * `GET /metrics` after the tracing self-metrics and sent over statsd with them; registered by the
   * role's modules, with tracing on or off.
   */
  readonly roleMetrics: MetricsRegistry;
  /**
   * The self-metrics, then the role metrics (`GET /metrics`): Prometheus text, or OpenMetrics with
   * exemplars when `accept` asks for `application/openmetrics-text`.
   */
  metricsResponse(accept?: string | null): Response;
  /** `GET /metrics` for a role's router: {@linkcode TracingRuntime.metricsResponse}. */
  readonly metricsHandler: Handler;
  /**
   * The server-span middleware for a role's router, counting its requests in flight into this
   * runtime's load source (circuit breaker, adaptive sampling), with the per-route request metrics
   * (`tracing/http_metrics.ts`) inside the span.
   */
  serverMiddleware(options?: Omit<ServerTracingOptions, "inFlight" | "baggagePolicy">): Middleware;
  /** Exports everything queued (tests, demo). */
  forceFlush(): Promise<void>;
  /** Flushes (bounded by `timeoutMs`, default 5 s) and stops exporting and all timers. */
  shutdown(timeoutMs?: number): Promise<void>;
}

/** Options of {@linkcode initTracing}. */
export interface InitOptions {
  /** Role name, for the resource and logs. */
  role: string;
  /** Logger for exporter errors (rate-limited) and breaker state changes. */
  logger: Logger;
  /** Exporter override (tests); default OTLP/HTTP to `config.tracesUrl`. */
  exporter?: SpanExporter;
  /**
   * Stock OpenTelemetry `SpanExporter`s added beside the built-in one, e.g.
   * `@opentelemetry/exporter-zipkin`; each gets its own bounded batch queue (the `export` block's
   * sizes), so a slow one never holds up the others.
   */
  spanExporters?: readonly SpanExporter[];
  /** Stock OpenTelemetry `SpanProcessor`s added beside the built-in export (`onStart`, `onEnd`). */
  spanProcessors?: readonly SpanProcessor[];
}

// Shortest time between two lines of one repeating export problem (failures, queue full); the
// next line says how many were suppressed.
const LOG_INTERVAL_MS = 30_000;

// The OpenTelemetry context manager is process-global by design; it is installed once.
let contextManagerInstalled = false;

/**
 * Installs the async-local-storage context manager once per process, and the propagator (kraken's,
 * or the one `OTEL_PROPAGATORS` names; the last runtime started in a process sets it).
 */
export function installContextPropagation(propagators?: TracingConfig["propagators"]): void {
  const propagator = buildPropagator(propagators);
  setHeaderPropagator(propagator);
  propagation.disable();
  propagation.setGlobalPropagator(propagator);
  if (contextManagerInstalled) return;
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  contextManagerInstalled = true;
}

/** `logger` without the lines below `level` (`OTEL_LOG_LEVEL`); `none` silences it. */
function filteredLogger(logger: Logger, level: TracingLogLevel | undefined): Logger {
  if (level === undefined || level === "debug") return logger;
  const order = ["debug", "info", "warn", "error"];
  const min = level === "none" ? order.length : order.indexOf(level);
  const keep = (l: string) => order.indexOf(l) >= min;
  const quiet = () => {};
  return {
    debug: keep("debug") ? logger.debug.bind(logger) : quiet,
    info: keep("info") ? logger.info.bind(logger) : quiet,
    warn: keep("warn") ? logger.warn.bind(logger) : quiet,
    error: keep("error") ? logger.error.bind(logger) : quiet,
    with: (fields) => filteredLogger(logger.with(fields), level),
  };
}

/** The registries, `/metrics` and the statsd emitter of one runtime. */
function runtimeMetrics(config: TracingConfig, metrics: TracingMetrics, logger: Logger) {
  const self = new MetricsRegistry();
  registerTracingMetrics(self, metrics);
  const roleMetrics = new MetricsRegistry();
  const http = new HttpMetrics(roleMetrics);
  const metricsResponse = (accept?: string | null) =>
    metricsExposition([self, roleMetrics], accept);
  const statsd = config.statsd.enabled
    ? new StatsdEmitter([self, roleMetrics], {
      addr: config.statsd.addr,
      prefix: config.statsd.prefix,
      tags: config.statsd.tags,
      tagFormat: config.statsd.tagFormat,
      flushIntervalMs: config.statsd.flushIntervalMs,
      logger,
    })
    : undefined;
  statsd?.start();
  return {
    roleMetrics,
    metricsResponse,
    metricsHandler: (ctx: Ctx) => metricsResponse(ctx.req.headers.get("accept")),
    /** `tracing` outside, the request metrics inside its span. */
    withRequestMetrics(tracing: Middleware): Middleware {
      const red = http.middleware();
      return (ctx, next) => tracing(ctx, () => red(ctx, next));
    },
    closeStatsd: () => statsd?.close() ?? Promise.resolve(),
  };
}

/** The edge baggage policy of `config.sampling.trust`, counting and logging (bounded) its drops. */
function edgeBaggagePolicy(
  config: TracingConfig,
  metrics: TracingMetrics,
  logger: Logger,
): EdgeBaggagePolicy {
  const trust = config.sampling.trust;
  const log = rateLimited(30_000, (msg, fields) => logger.warn(msg, fields));
  return new EdgeBaggagePolicy({
    allowedKeys: trust.baggageAllowedKeys,
    maxBytes: trust.baggageMaxBytes,
    trustedNetworks: trust.trustedNetworks,
    onDrop(dropped, remote) {
      metrics.baggageDroppedNotAllowed += dropped.not_allowed;
      metrics.baggageDroppedTooLarge += dropped.too_large;
      log("client baggage dropped at the edge (tracing.sampling.trust.baggage_*)", {
        not_allowed: dropped.not_allowed,
        too_large: dropped.too_large,
        remote,
      });
    },
  });
}

function disabledRuntime(
  config: TracingConfig,
  metrics: TracingMetrics,
  logger: Logger,
): TracingRuntime {
  const baggagePolicy = edgeBaggagePolicy(config, metrics, logger);
  const m = runtimeMetrics(config, metrics, logger);
  let stopped = false;
  return {
    enabled: false,
    serviceName: config.serviceName,
    stats: () => ({
      spansCreated: 0,
      spansSampled: 0,
      droppedBreaker: 0,
      droppedRateLimit: 0,
      droppedQueueFull: 0,
      exported: 0,
      exportErrors: 0,
      exportTimeouts: 0,
      queueSize: 0,
      breaker: "disabled",
    }),
    roleMetrics: m.roleMetrics,
    metricsResponse: m.metricsResponse,
    metricsHandler: m.metricsHandler,
    // Still extracts and passes on incoming trace context; no load is counted.
    serverMiddleware: (options = {}) =>
      m.withRequestMetrics(tracingMiddleware({ ...options, baggagePolicy })),
    forceFlush: () => Promise.resolve(),
    async shutdown() {
      if (stopped) return;
      stopped = true;
      await m.closeStatsd();
    },
  };
}

// One id per process, whatever the number of runtimes started in it (tests start several).
const SERVICE_INSTANCE_ID = crypto.randomUUID();

/**
 * The resource of every span: what kraken knows about itself, then the configured attributes and
 * `OTEL_RESOURCE_ATTRIBUTES`, then `service.name` (so `OTEL_SERVICE_NAME` and `service_name` win
 * over a `service.name` in the attribute list, as the specification says).
 */
export function resourceAttributes(config: TracingConfig, role: string): Attributes {
  return {
    "service.version": VERSION,
    "service.namespace": "kraken",
    "service.instance.id": SERVICE_INSTANCE_ID,
    "host.name": Deno.hostname(),
    "process.pid": Deno.pid,
    "process.runtime.name": "deno",
    "process.runtime.version": Deno.version.deno,
    "telemetry.sdk.language": "js",
    "telemetry.sdk.name": "kraken",
    "telemetry.sdk.version": VERSION,
    [ATTR.role]: role,
    ...config.resourceAttributes,
    "service.name": config.serviceName,
  };
}

/** Reads one configured PEM file; a missing or unreadable one fails start-up naming its setting. */
function readPem(file: string | undefined, key: string): string | undefined {
  if (file === undefined) return undefined;
  try {
    return Deno.readTextFileSync(file);
  } catch (error) {
    throw new ConfigError(key, `cannot read ${file}: ${(error as Error).message}`);
  }
}

/** The built-in OTLP exporter `config.export.protocol` names. */
export function otlpExporter(config: TracingConfig): SpanExporter {
  const e = config.export;
  const tls = {
    ca: readPem(e.tls.caFile, "OTEL_EXPORTER_OTLP_CERTIFICATE / tracing.export.tls.ca_file"),
    cert: readPem(
      e.tls.certFile,
      "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE / tracing.export.tls.cert_file",
    ),
    key: readPem(e.tls.keyFile, "OTEL_EXPORTER_OTLP_CLIENT_KEY / tracing.export.tls.key_file"),
  };
  const common = {
    url: config.tracesUrl,
    timeoutMs: e.timeoutMs,
    maxAttempts: e.retryEnabled ? e.retryMaxAttempts : 1,
    headers: e.headers,
    compression: e.compression,
    tls,
  };
  return e.protocol === "grpc"
    ? new OtlpGrpcExporter(common)
    : new OtlpHttpExporter({ ...common, protocol: e.protocol });
}

/** Sets up tracing for this process from its validated configuration. */
export function initTracing(config: TracingConfig, options: InitOptions): TracingRuntime {
  installContextPropagation(config.propagators);
  const metrics = new TracingMetrics();
  const logger = filteredLogger(options.logger, config.logLevel);
  if (!config.enabled) return disabledRuntime(config, metrics, logger);
  const baggagePolicy = edgeBaggagePolicy(config, metrics, logger);

  const loads = new LoadSources(config.safeguards);
  const remoteError = rateLimited(LOG_INTERVAL_MS, (msg, fields) => logger.warn(msg, fields));
  const sampler = buildSampler(config.sampling, {
    serviceName: config.serviceName,
    onRemoteError: (error) =>
      remoteError("Jaeger sampling strategy refresh failed; the last strategy stays", {
        endpoint: config.sampling.remote.endpoint,
        error: error.message,
      }),
    counters: metrics,
    loadSource: config.sampling.adaptive.enabled
      ? loads.get(config.sampling.adaptive.loadSource)
      : undefined,
  });
  const breaker = new CircuitBreaker({
    ...config.safeguards,
    load: config.safeguards.circuitBreakerEnabled
      ? loads.get(config.safeguards.loadSource)
      : undefined,
    logger,
  });
  const exportError = rateLimited(LOG_INTERVAL_MS, (msg, fields) => logger.warn(msg, fields));
  const queueFull = rateLimited(LOG_INTERVAL_MS, (msg, fields) => logger.warn(msg, fields));
  const exporter = options.exporter ?? otlpExporter(config);
  const processor = new BatchExportProcessor({
    exporter,
    maxBatchSize: config.export.maxBatchSize,
    maxQueueSize: config.export.maxQueueSize,
    batchTimeoutMs: config.export.batchTimeoutMs,
    observer: {
      onQueueFull() {
        metrics.onQueueFull();
        breaker.recordQueueFull();
        queueFull("span export queue full: spans dropped", {
          max_queue_size: config.export.maxQueueSize,
          dropped_total: metrics.droppedQueueFull,
        });
      },
      onExport(count, ok, ms, error, rejected = 0) {
        const timedOut = error instanceof ExportTimeoutError;
        metrics.onExport(count - rejected, ok, ms, timedOut);
        if (ok) {
          breaker.recordExportSuccess();
          if (rejected > 0) {
            metrics.droppedRejected += rejected;
            exportError("collector rejected spans (partial success)", {
              rejected,
              spans: count,
              endpoint: config.tracesUrl,
            });
          }
          return;
        }
        breaker.recordExportFailure(timedOut);
        exportError("span export failed", {
          spans: count,
          endpoint: config.tracesUrl,
          error: error?.message,
          timed_out: timedOut,
        });
      },
    },
  });
  metrics.gauges.queueSize = () => processor.queueSize;
  metrics.gauges.breakerState = () => breaker.stateCode;
  metrics.gauges.samplingRates = () => sampler.effectiveRates();

  const resource = resourceFromAttributes(resourceAttributes(config, options.role));
  const extra = [
    ...(options.spanExporters ?? []).map((exporter) =>
      new BatchExportProcessor({
        exporter,
        maxBatchSize: config.export.maxBatchSize,
        maxQueueSize: config.export.maxQueueSize,
        batchTimeoutMs: config.export.batchTimeoutMs,
      })
    ),
    ...(options.spanProcessors ?? []).map((p) => new StockProcessorSink(p)),
  ];
  const sink = extra.length === 0 ? processor : new FanOutSink([processor, ...extra]);
  const provider = new KrakenTracerProvider({
    resource,
    sampler,
    sink,
    startListeners: options.spanProcessors,
    gate: loads.touchingGate(breaker),
    counters: metrics,
    limits: config.spanLimits,
  });
  trace.setGlobalTracerProvider(provider);
  breaker.start();
  // The first fetch runs in the background: start-up never waits for Jaeger.
  void sampler.remote?.start();
  let stopped = false;
  const m = runtimeMetrics(config, metrics, logger);
  return {
    enabled: true,
    serviceName: config.serviceName,
    stats: () => ({
      spansCreated: metrics.spansCreated,
      spansSampled: metrics.spansSampled,
      droppedBreaker: metrics.droppedBreaker,
      droppedRateLimit: metrics.droppedRateLimit,
      droppedQueueFull: metrics.droppedQueueFull,
      exported: metrics.spansExported,
      exportErrors: metrics.exportErrors,
      exportTimeouts: metrics.exportTimeouts,
      queueSize: processor.queueSize,
      breaker: config.safeguards.circuitBreakerEnabled ? breaker.state : "disabled",
    }),
    roleMetrics: m.roleMetrics,
    metricsResponse: m.metricsResponse,
    metricsHandler: m.metricsHandler,
    serverMiddleware: (options = {}) =>
      m.withRequestMetrics(
        tracingMiddleware({ ...options, inFlight: loads.inFlight, baggagePolicy }),
      ),
    forceFlush: async () => {
      await Promise.all([processor.forceFlush(), ...extra.map((e) => e.forceFlush())]);
    },
    async shutdown(timeoutMs = 5000) {
      if (stopped) return;
      stopped = true;
      await Promise.all([
        processor.shutdown(timeoutMs),
        ...extra.map((e) => e.shutdown(timeoutMs)),
      ]);
      breaker.stop();
      sampler.remote?.stop();
      loads.stop();
      await m.closeStatsd();
      trace.disable();
    },
  };
}
