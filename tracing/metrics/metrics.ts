/**
 * The tracing self-metrics (ERD §7.3): how many spans were created, sampled, dropped (and why) and
 * exported, how exports went, how full the queue is, the effective sampling rates and the breaker
 * state. {@linkcode registerTracingMetrics} puts them into a {@linkcode MetricsRegistry}, which
 * renders them for `/metrics` and feeds the statsd emitter:
 *
 * - `kraken_tracing_spans_created_total`, `kraken_tracing_spans_sampled_total`,
 *   `kraken_tracing_spans_dropped_total{reason="queue_full|breaker|rate_limit|rejected"}`,
 *   `kraken_tracing_baggage_dropped_total{reason="not_allowed|too_large"}`,
 *   `kraken_tracing_spans_exported_total`, `kraken_tracing_export_errors_total`,
 *   `kraken_tracing_export_timeouts_total` (counters)
 * - `kraken_tracing_export_duration_seconds` (histogram; statsd timer `tracing.export_latency`)
 * - `kraken_tracing_queue_size`, `kraken_tracing_sampling_rate{operation}`,
 *   `kraken_tracing_breaker_state` (0 closed, 1 half-open, 2 open) (gauges)
 *
 * Counters are plain public number fields, so the hot path bumps them with `++` (no allocation, no
 * map lookup). {@linkcode TracingMetrics} has the field names of the tracer's `TracerCounters`
 * (`spansCreated`, `spansSampled`, `droppedBreaker`) and the methods of the export path's
 * `ExportObserver` (`onQueueFull`, `onExport`), so one object can serve both seams. Gauges are read
 * on demand from {@linkcode GaugeSources} when a report is rendered.
 *
 * @module
 */

import { Histogram, type MetricsRegistry } from "./registry.ts";

/** Upper bounds of the export latency histogram, seconds. */
export const EXPORT_LATENCY_BUCKETS: readonly number[] = Object.freeze([
  0.001,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
]);

/** Where the gauges are read from; each defaults to a constant. */
export interface GaugeSources {
  /** Spans waiting in the export queue. */
  queueSize(): number;
  /** Breaker state: 0 closed, 1 half-open, 2 open. */
  breakerState(): number;
  /** `[operation, rate]` pairs of the effective sampling rates. */
  samplingRates(): Iterable<readonly [string, number]>;
}

/** The tracing self-metrics of one process. */
export class TracingMetrics {
  /** Span starts, sampled or not. */
  spansCreated = 0;
  /** Span starts that were sampled (recorded). */
  spansSampled = 0;
  /** Sampled spans dropped because the export queue was full. */
  droppedQueueFull = 0;
  /** Span starts refused while the circuit breaker was open. */
  droppedBreaker = 0;
  /**
   * Sampled decisions turned down by a rate limit: `max_traces_per_second`, or the edge's
   * `client_sampled_rate_limit` when our own decision would not sample either.
   */
  droppedRateLimit = 0;
  /** Exported spans the collector rejected (OTLP partial success). */
  droppedRejected = 0;
  /** Spans exported successfully. */
  spansExported = 0;
  /** Failed export requests. */
  exportErrors = 0;
  /** Failed export requests that ran out of the export timeout (counted in `exportErrors` too). */
  exportTimeouts = 0;
  /** Client baggage members dropped at an edge listener: key not allowed. */
  baggageDroppedNotAllowed = 0;
  /** Client baggage members dropped at an edge listener: beyond the size cap. */
  baggageDroppedTooLarge = 0;
  /** Export request latency, seconds. */
  readonly exportLatency: Histogram = new Histogram(EXPORT_LATENCY_BUCKETS);
  /** Gauge sources; replace members once the queue, breaker and sampler exist. */
  readonly gauges: GaugeSources;

  /** Creates zeroed metrics. */
  constructor(gauges: Partial<GaugeSources> = {}) {
    this.gauges = {
      queueSize: gauges.queueSize ?? (() => 0),
      breakerState: gauges.breakerState ?? (() => 0),
      samplingRates: gauges.samplingRates ?? (() => []),
    };
  }

  /** A span was dropped because the export queue was full (export-observer seam). */
  onQueueFull(): void {
    this.droppedQueueFull++;
  }

  /**
   * An export of `count` spans finished after `ms` milliseconds (export-observer seam);
   * `timedOut` when it failed by running out of its timeout.
   */
  onExport(count: number, ok: boolean, ms: number, timedOut = false): void {
    if (ok) this.spansExported += count;
    else this.exportErrors++;
    if (!ok && timedOut) this.exportTimeouts++;
    // An export runs outside any request: no exemplar.
    this.exportLatency.observe(ms / 1000, null);
  }
}

/** A tracing counter's series. */
export interface CounterDescriptor {
  /** Base name, e.g. `spans_dropped`. */
  readonly name: string;
  /** One-line description. */
  readonly help: string;
  /** Label of this series, if any (`reason` for drops). */
  readonly label?: readonly [name: string, value: string];
  /** Reads the current value. */
  readonly read: (m: TracingMetrics) => number;
}

/** One series per `reason` of a counter family, in the order of `reads`. */
function byReason(
  name: string,
  help: string,
  reads: Record<string, (m: TracingMetrics) => number>,
): CounterDescriptor[] {
  return Object.entries(reads).map(([reason, read]) => ({
    name,
    help,
    label: ["reason", reason],
    read,
  }));
}

/** Every counter series, in report order. */
export const COUNTERS: readonly CounterDescriptor[] = Object.freeze(
  [
    { name: "spans_created", help: "Span starts, sampled or not.", read: (m) => m.spansCreated },
    { name: "spans_sampled", help: "Span starts that were sampled.", read: (m) => m.spansSampled },
    ...byReason("spans_dropped", "Spans not recorded or not exported, by reason.", {
      queue_full: (m) => m.droppedQueueFull,
      breaker: (m) => m.droppedBreaker,
      rate_limit: (m) => m.droppedRateLimit,
      rejected: (m) => m.droppedRejected,
    }),
    ...byReason(
      "baggage_dropped",
      "Client baggage members an edge listener did not pass on, by reason.",
      {
        not_allowed: (m) => m.baggageDroppedNotAllowed,
        too_large: (m) => m.baggageDroppedTooLarge,
      },
    ),
    { name: "spans_exported", help: "Spans exported successfully.", read: (m) => m.spansExported },
    { name: "export_errors", help: "Failed export requests.", read: (m) => m.exportErrors },
    {
      name: "export_timeouts",
      help: "Failed export requests that ran out of the export timeout.",
      read: (m) => m.exportTimeouts,
    },
  ] satisfies CounterDescriptor[],
);

/** Registers the self-metrics `metrics` in `registry` (read at each scrape or statsd flush). */
export function registerTracingMetrics(registry: MetricsRegistry, metrics: TracingMetrics): void {
  for (const counter of COUNTERS) {
    const labels = counter.label ? { [counter.label[0]]: counter.label[1] } : {};
    registry.observedCounter(
      `kraken_tracing_${counter.name}_total`,
      counter.help,
      () => counter.read(metrics),
      labels,
    );
  }
  registry.histogramOf(
    "kraken_tracing_export_duration_seconds",
    "Export request latency.",
    metrics.exportLatency,
    { statsd: "tracing.export_latency" },
  );
  registry.gauge(
    "kraken_tracing_queue_size",
    "Spans waiting in the export queue.",
    () => metrics.gauges.queueSize(),
  );
  registry.gaugeFamily(
    "kraken_tracing_sampling_rate",
    "Effective sampling probability by operation.",
    function* () {
      for (const [operation, rate] of metrics.gauges.samplingRates()) {
        yield [{ operation }, rate] as const;
      }
    },
  );
  registry.gauge(
    "kraken_tracing_breaker_state",
    "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
    () => metrics.gauges.breakerState(),
  );
}
