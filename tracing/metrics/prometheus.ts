/**
 * Renders the tracing self-metrics in the Prometheus text exposition format, version 0.0.4 (serve
 * it with `Content-Type: text/plain; version=0.0.4`). Series:
 *
 * - `kraken_tracing_spans_created_total`, `kraken_tracing_spans_sampled_total`,
 *   `kraken_tracing_spans_dropped_total{reason="queue_full|breaker|rate_limit"}`,
 *   `kraken_tracing_spans_exported_total`, `kraken_tracing_export_errors_total`,
 *   `kraken_tracing_export_timeouts_total` (counters)
 * - `kraken_tracing_export_duration_seconds` (histogram)
 * - `kraken_tracing_queue_size`, `kraken_tracing_sampling_rate{operation}`,
 *   `kraken_tracing_breaker_state` (0 closed, 1 half-open, 2 open) (gauges)
 *
 * @module
 */

import { COUNTERS, type TracingMetrics } from "./metrics.ts";

/** Content type of {@linkcode renderPrometheus}'s output. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Options of {@linkcode renderPrometheus}. */
export interface PrometheusOptions {
  /** Name prefix. Default `kraken_tracing`. */
  namespace?: string;
}

/** Escapes a label value (backslash, double quote, newline). */
export function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** Formats a sample value (`NaN`, `+Inf`, `-Inf` spelled as the format wants). */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** Renders `metrics` as Prometheus text (ends with a newline). */
export function renderPrometheus(metrics: TracingMetrics, options: PrometheusOptions = {}): string {
  const ns = options.namespace ?? "kraken_tracing";
  const out: string[] = [];
  const header = (name: string, type: string, help: string) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  };

  let previous = "";
  for (const counter of COUNTERS) {
    const name = `${ns}_${counter.name}_total`;
    // Series of one family (spans_dropped by reason) share a single HELP/TYPE header.
    if (name !== previous) header(name, "counter", counter.help);
    previous = name;
    const labels = counter.label ? `{${counter.label[0]}="${escapeLabel(counter.label[1])}"}` : "";
    out.push(`${name}${labels} ${formatValue(counter.read(metrics))}`);
  }

  const latency = metrics.exportLatency;
  const hist = `${ns}_export_duration_seconds`;
  header(hist, "histogram", "Export request latency.");
  let cumulative = 0;
  for (let i = 0; i < latency.bounds.length; i++) {
    cumulative += latency.counts[i];
    out.push(`${hist}_bucket{le="${latency.bounds[i] / 1000}"} ${cumulative}`);
  }
  cumulative += latency.counts[latency.bounds.length];
  out.push(`${hist}_bucket{le="+Inf"} ${cumulative}`);
  out.push(`${hist}_sum ${formatValue(latency.sum / 1000)}`);
  out.push(`${hist}_count ${latency.count}`);

  header(`${ns}_queue_size`, "gauge", "Spans waiting in the export queue.");
  out.push(`${ns}_queue_size ${formatValue(metrics.gauges.queueSize())}`);

  header(`${ns}_sampling_rate`, "gauge", "Effective sampling probability by operation.");
  for (const [operation, rate] of metrics.gauges.samplingRates()) {
    out.push(`${ns}_sampling_rate{operation="${escapeLabel(operation)}"} ${formatValue(rate)}`);
  }

  header(`${ns}_breaker_state`, "gauge", "Circuit breaker state: 0 closed, 1 half-open, 2 open.");
  out.push(`${ns}_breaker_state ${formatValue(metrics.gauges.breakerState())}`);
  return out.join("\n") + "\n";
}
