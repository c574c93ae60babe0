/**
 * The metrics of one process: counters, gauges and histograms, rendered for `GET /metrics` in the
 * Prometheus text format 0.0.4 or in OpenMetrics 1.0 (with exemplars), and read series by series
 * by the statsd emitter (`statsd.ts`), so both sinks carry the same metrics.
 *
 * Each tracing runtime owns two registries: the tracing self-metrics (`prometheus.ts` registers
 * them) and `roleMetrics`, where roles and their subsystems register theirs, so roles started in
 * one process report their own. Names are full Prometheus names (`kraken_<role or
 * subsystem>_<what>`, counters ending in `_total`, histograms in their base unit: `_seconds`,
 * `_bytes`); `/work/notes/ops-metrics.md` and `docs/metrics.md` list the conventions.
 *
 * ```ts
 * import { MetricsRegistry } from "./registry.ts";
 * const registry = new MetricsRegistry();
 * const errors = registry.counter("kraken_tracker_peer_store_errors_total", "Failed calls.");
 * errors.inc();
 * registry.gauge("kraken_tracker_peer_store_up", "1 while the peer store answers.", () => 1);
 * const latency = registry.histogram("kraken_tracker_peer_store_duration_seconds", "Call time.", {
 *   buckets: [0.001, 0.01, 0.1, 1],
 * });
 * latency.observe(0.004); // with the active sampled span's trace id as the bucket's exemplar
 * ```
 *
 * Registering a series again (same name and labels) returns the existing counter or histogram, or
 * replaces the gauge's reader.
 *
 * @module
 */

import { trace } from "@opentelemetry/api";
import { escapeLabel, formatValue } from "./prometheus.ts";

/** Label names and values of one series. */
export type Labels = Readonly<Record<string, string>>;

/** A monotonically increasing count. */
export interface Counter {
  /** Adds `by` (default 1; must not be negative). */
  inc(by?: number): void;
  /** The current value. */
  readonly value: number;
}

/** The trace a histogram observation came from (an OpenMetrics exemplar). */
export interface Exemplar {
  /** Hex trace ID of a sampled trace. */
  traceId: string;
  /** The observed value. */
  value: number;
  /** When it was observed, ms since the Unix epoch. */
  timestampMs: number;
}

/** Most raw samples a histogram keeps for the statsd timer between two flushes. */
export const MAX_PENDING_SAMPLES = 256;

/** The trace ID of the active span when it is sampled (recorded and exported), else undefined. */
export function sampledTraceId(): string | undefined {
  const span = trace.getActiveSpan();
  if (!span?.isRecording()) return undefined;
  const context = span.spanContext();
  return (context.traceFlags & 1) === 1 ? context.traceId : undefined;
}

/** A distribution: cumulative buckets, sum, count, an exemplar per bucket and recent samples. */
export class Histogram {
  /** Bucket upper bounds, in the metric's unit, ascending. */
  readonly bounds: readonly number[];
  /** Per-bucket counts, not cumulative; the last slot is the +Inf bucket. */
  readonly counts: Float64Array;
  /** The latest exemplar of each bucket (same slots as `counts`). */
  readonly exemplars: (Exemplar | undefined)[];
  /** Sum of all observations. */
  sum = 0;
  /** Number of observations. */
  count = 0;
  readonly #pending = new Float64Array(MAX_PENDING_SAMPLES);
  #pendingCount = 0;
  readonly #now: () => number;

  /** A histogram with these bucket bounds; `now` stamps exemplars (default `Date.now`). */
  constructor(bounds: readonly number[], now: () => number = Date.now) {
    for (let i = 1; i < bounds.length; i++) {
      if (!(bounds[i] > bounds[i - 1])) throw new RangeError("histogram bounds must ascend");
    }
    this.bounds = Object.freeze([...bounds]);
    this.counts = new Float64Array(bounds.length + 1);
    this.exemplars = new Array(bounds.length + 1).fill(undefined);
    this.#now = now;
  }

  /**
   * Records one value. `traceId` (default: the active span's, when sampled) becomes the exemplar of
   * the value's bucket; pass `null` for none.
   */
  observe(value: number, traceId: string | null | undefined = sampledTraceId()): void {
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
    if (traceId) this.exemplars[i] = { traceId, value, timestampMs: this.#now() };
    // Beyond the buffer the oldest samples are overwritten: statsd gets the most recent ones.
    this.#pending[this.#pendingCount % MAX_PENDING_SAMPLES] = value;
    this.#pendingCount++;
  }

  /** Returns the values observed since the last call (at most {@linkcode MAX_PENDING_SAMPLES}). */
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

/** What every registration takes besides name and help. */
export interface SeriesOptions {
  /** The series' labels. */
  labels?: Labels;
  /**
   * The statsd name (after the emitter's prefix), upstream Kraken's where it has one. Default: the
   * Prometheus name without `kraken_`, `_total` and a histogram's unit, its first `_` a `.`
   * (`kraken_http_requests_total` → `http.requests`).
   */
  statsd?: string;
}

/** Options of {@linkcode MetricsRegistry.histogram}. */
export interface HistogramOptions extends SeriesOptions {
  /** Bucket upper bounds in the metric's unit (seconds, bytes). */
  buckets: readonly number[];
}

/** Kinds of metric family. */
export type MetricKind = "counter" | "gauge" | "histogram";

/** One series as the statsd emitter reads it. */
export interface SeriesView {
  /** Metric kind. */
  kind: MetricKind;
  /** Prometheus family name. */
  name: string;
  /** statsd name (without prefix). */
  statsd: string;
  /** The series' labels. */
  labels: Labels;
  /** Unique key of the series (name and labels). */
  key: string;
  /** Counter or gauge value (histograms: their count). */
  read(): number;
  /** The histogram, for histogram series. */
  histogram?: Histogram;
}

/** Formats of {@linkcode MetricsRegistry.render}. */
export type ExpositionFormat = "prometheus" | "openmetrics";

interface Series {
  labels: Labels;
  text: string;
  read: () => number;
  histogram?: Histogram;
}

interface Family {
  kind: MetricKind;
  help: string;
  statsd: string;
  series: Map<string, Series>;
  /** Readers of label sets known only at scrape time (sampling rate per operation). */
  dynamic?: () => Iterable<readonly [Labels, number]>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function labelText(labels: Labels, extra?: string): string {
  const parts = Object.entries(labels).map(([k, v]) => {
    if (!LABEL.test(k) || k === "le" || k === "quantile") {
      throw new RangeError(`bad label name ${k}`);
    }
    return `${k}="${escapeLabel(v)}"`;
  });
  if (extra) parts.push(extra);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

/** The default statsd name of a Prometheus name (see {@linkcode SeriesOptions.statsd}). */
export function defaultStatsdName(name: string, kind: MetricKind): string {
  let base = name.replace(/^kraken_/, "").replace(/_total$/, "");
  if (kind === "histogram") base = base.replace(/_(seconds|bytes)$/, "");
  return base.replace("_", ".");
}

function formatSeconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}

/** A set of counters, gauges and histograms, rendered as Prometheus text or OpenMetrics. */
export class MetricsRegistry {
  readonly #families = new Map<string, Family>();
  readonly #counters = new Map<string, Counter>();
  readonly #histograms = new Map<string, Histogram>();

  #family(name: string, kind: MetricKind, help: string, statsd: string | undefined): Family {
    if (!NAME.test(name)) throw new RangeError(`bad metric name ${name}`);
    if (kind === "counter" && !name.endsWith("_total")) {
      throw new RangeError(`counter ${name} must end in _total`);
    }
    let family = this.#families.get(name);
    if (!family) {
      family = {
        kind,
        help,
        statsd: statsd ?? defaultStatsdName(name, kind),
        series: new Map(),
      };
      this.#families.set(name, family);
    } else if (family.kind !== kind) {
      throw new RangeError(`metric ${name} is a ${family.kind}, not a ${kind}`);
    }
    return family;
  }

  /** The counter `name{labels}`, created at 0 on first use. */
  counter(name: string, help: string, labels: Labels = {}, options: SeriesOptions = {}): Counter {
    const family = this.#family(name, "counter", help, options.statsd);
    const text = labelText(labels);
    const key = `${name}${text}`;
    const existing = this.#counters.get(key);
    if (existing) return existing;
    let value = 0;
    const counter: Counter = {
      inc(by = 1) {
        if (!(by >= 0)) throw new RangeError(`counter ${key} cannot move by ${by}`);
        value += by;
      },
      get value() {
        return value;
      },
    };
    this.#counters.set(key, counter);
    family.series.set(text, { labels, text, read: () => value });
    return counter;
  }

  /**
   * The counter `name{labels}` kept elsewhere (a client counting its own timeouts): `read` returns
   * its value, which must never decrease, at each scrape.
   */
  observedCounter(
    name: string,
    help: string,
    read: () => number,
    labels: Labels = {},
    options: SeriesOptions = {},
  ): void {
    const family = this.#family(name, "counter", help, options.statsd);
    const text = labelText(labels);
    family.series.set(text, { labels, text, read });
  }

  /** The gauge `name{labels}`, whose value `read` returns at each scrape. */
  gauge(
    name: string,
    help: string,
    read: () => number,
    labels: Labels = {},
    options: SeriesOptions = {},
  ): void {
    const family = this.#family(name, "gauge", help, options.statsd);
    const text = labelText(labels);
    family.series.set(text, { labels, text, read });
  }

  /** A gauge family whose label sets are only known at scrape time: `read` yields each series. */
  gaugeFamily(
    name: string,
    help: string,
    read: () => Iterable<readonly [Labels, number]>,
    options: Omit<SeriesOptions, "labels"> = {},
  ): void {
    this.#family(name, "gauge", help, options.statsd).dynamic = read;
  }

  /** The histogram `name{labels}`, created empty on first use (later calls keep its buckets). */
  histogram(name: string, help: string, options: HistogramOptions): Histogram {
    const key = `${name}${labelText(options.labels ?? {})}`;
    const existing = this.#histograms.get(key);
    if (existing) {
      this.#family(name, "histogram", help, options.statsd);
      return existing;
    }
    const histogram = new Histogram(options.buckets);
    this.histogramOf(name, help, histogram, options);
    return histogram;
  }

  /** Serves `histogram`, kept elsewhere (the tracing self-metrics), as `name{labels}`. */
  histogramOf(
    name: string,
    help: string,
    histogram: Histogram,
    options: SeriesOptions = {},
  ): void {
    const family = this.#family(name, "histogram", help, options.statsd);
    const labels = options.labels ?? {};
    const text = labelText(labels);
    this.#histograms.set(`${name}${text}`, histogram);
    family.series.set(text, { labels, text, read: () => histogram.count, histogram });
  }

  /** Every series, in registration order, for the statsd emitter. */
  *series(): Iterable<SeriesView> {
    for (const [name, family] of this.#families) {
      for (const s of family.series.values()) {
        yield {
          kind: family.kind,
          name,
          statsd: family.statsd,
          labels: s.labels,
          key: `${name}${s.text}`,
          read: s.read,
          histogram: s.histogram,
        };
      }
      if (!family.dynamic) continue;
      for (const [labels, value] of family.dynamic()) {
        yield {
          kind: family.kind,
          name,
          statsd: family.statsd,
          labels,
          key: `${name}${labelText(labels)}`,
          read: () => value,
        };
      }
    }
  }

  /**
   * Every family as text (empty, or ending with a newline). `openmetrics` writes counter families
   * without `_total` in their metadata and histogram buckets with their exemplars; the caller adds
   * the closing `# EOF` after the last registry.
   */
  render(format: ExpositionFormat = "prometheus"): string {
    const open = format === "openmetrics";
    const out: string[] = [];
    for (const [name, family] of this.#families) {
      const meta = open && family.kind === "counter" ? name.slice(0, -"_total".length) : name;
      out.push(`# HELP ${meta} ${family.help}`, `# TYPE ${meta} ${family.kind}`);
      for (const s of family.series.values()) {
        if (s.histogram) renderHistogram(out, name, s, open);
        else out.push(`${name}${s.text} ${formatValue(s.read())}`);
      }
      for (const [labels, value] of family.dynamic?.() ?? []) {
        out.push(`${name}${labelText(labels)} ${formatValue(value)}`);
      }
    }
    return out.length > 0 ? out.join("\n") + "\n" : "";
  }
}

function renderHistogram(out: string[], name: string, s: Series, open: boolean): void {
  const h = s.histogram!;
  let cumulative = 0;
  for (let i = 0; i <= h.bounds.length; i++) {
    cumulative += h.counts[i];
    const le = i < h.bounds.length ? formatValue(h.bounds[i]) : "+Inf";
    const ex = open ? h.exemplars[i] : undefined;
    const exemplar = ex
      ? ` # {trace_id="${ex.traceId}"} ${formatValue(ex.value)} ${formatSeconds(ex.timestampMs)}`
      : "";
    out.push(`${name}_bucket${labelText(s.labels, `le="${le}"`)} ${cumulative}${exemplar}`);
  }
  out.push(`${name}_sum${s.text} ${formatValue(h.sum)}`);
  out.push(`${name}_count${s.text} ${h.count}`);
}
