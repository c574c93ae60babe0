/**
 * The tracing self-metrics (ERD §7.3): how many spans were created, sampled, dropped (and why) and
 * exported, how exports went, how full the queue is, the effective sampling rates and the breaker
 * state.
 *
 * Counters are plain public number fields, so the hot path bumps them with `++` (no allocation, no
 * map lookup). {@linkcode TracingMetrics} has the field names of the tracer's `TracerCounters`
 * (`spansCreated`, `spansSampled`, `droppedBreaker`) and the methods of the export path's
 * `ExportObserver` (`onQueueFull`, `onExport`), so one object can serve both seams. Gauges are read
 * on demand from {@linkcode GaugeSources} when a report is rendered.
 *
 * @module
 */

/** Upper bounds of the export latency histogram, ms. */
export const LATENCY_BUCKETS_MS: readonly number[] = Object.freeze([
  1,
  5,
  10,
  25,
  50,
  100,
  250,
  500,
  1000,
  2500,
  5000,
  10000,
]);

/** Most latency samples held for the statsd timer between two flushes. */
export const MAX_PENDING_SAMPLES = 256;

/** Export latency: a histogram (for Prometheus) plus recent raw samples (for statsd timers). */
export class LatencyRecorder {
  /** Bucket upper bounds, ms. */
  readonly bounds: readonly number[] = LATENCY_BUCKETS_MS;
  /** Per-bucket counts, not cumulative; the last slot is the +Inf bucket. */
  readonly counts: Float64Array = new Float64Array(LATENCY_BUCKETS_MS.length + 1);
  /** Sum of all observations, ms. */
  sum = 0;
  /** Number of observations. */
  count = 0;
  readonly #pending = new Float64Array(MAX_PENDING_SAMPLES);
  #pendingCount = 0;

  /** Records one latency, ms. */
  observe(ms: number): void {
    let i = 0;
    while (i < this.bounds.length && ms > this.bounds[i]) i++;
    this.counts[i]++;
    this.sum += ms;
    this.count++;
    // Beyond the buffer the oldest samples are overwritten: statsd gets the most recent ones.
    this.#pending[this.#pendingCount % MAX_PENDING_SAMPLES] = ms;
    this.#pendingCount++;
  }

  /** Returns the samples observed since the last call (at most {@linkcode MAX_PENDING_SAMPLES}). */
  drainSamples(): number[] {
    const n = Math.min(this.#pendingCount, MAX_PENDING_SAMPLES);
    const out: number[] = [];
    for (let i = this.#pendingCount - n; i < this.#pendingCount; i++) {
      out.push(this.#pending[i % MAX_PENDING_SAMPLES]);
    }
    this.#pendingCount = 0;
    return out;
  }
}

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
  /** Export request latency. */
  readonly exportLatency: LatencyRecorder = new LatencyRecorder();
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
    this.exportLatency.observe(ms);
  }
}

/** A counter as both exposition formats name it. */
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

/** Every counter series, in report order; both renderers use this table. */
export const COUNTERS: readonly CounterDescriptor[] = Object.freeze(
  [
    { name: "spans_created", help: "Span starts, sampled or not.", read: (m) => m.spansCreated },
    { name: "spans_sampled", help: "Span starts that were sampled.", read: (m) => m.spansSampled },
    ...byReason("spans_dropped", "Spans not recorded or not exported, by reason.", {
      queue_full: (m) => m.droppedQueueFull,
      breaker: (m) => m.droppedBreaker,
      rate_limit: (m) => m.droppedRateLimit,
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
