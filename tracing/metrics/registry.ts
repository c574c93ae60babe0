/**
 * Metrics of the roles themselves (not of tracing), served by every role's `GET /metrics` after
 * the tracing self-metrics: the limits and dependency states operators alert on, such as a
 * tracker's peer store being down. Each tracing runtime owns one registry (`roleMetrics`), so roles
 * started in one process report their own; names are full Prometheus names
 * (`kraken_<role or subsystem>_<what>`, counters ending in `_total`).
 *
 * ```ts
 * import { MetricsRegistry } from "./registry.ts";
 * const registry = new MetricsRegistry();
 * const errors = registry.counter("kraken_tracker_peer_store_errors_total", "Failed calls.");
 * errors.inc();
 * registry.gauge("kraken_tracker_peer_store_up", "1 while the peer store answers.", () => 1);
 * ```
 *
 * Registering a series again (same name and labels) returns the existing counter or replaces the
 * gauge's reader.
 *
 * @module
 */

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

interface Family {
  type: "counter" | "gauge";
  help: string;
  series: Map<string, { labels: string; read: () => number }>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

function labelText(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return "";
  for (const [k] of entries) {
    if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(k)) throw new RangeError(`bad label name ${k}`);
  }
  return `{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`;
}

/** A set of counters and gauges rendered in the Prometheus text format. */
export class MetricsRegistry {
  readonly #families = new Map<string, Family>();
  readonly #counters = new Map<string, Counter>();

  #family(name: string, type: Family["type"], help: string): Family {
    if (!NAME.test(name)) throw new RangeError(`bad metric name ${name}`);
    let family = this.#families.get(name);
    if (!family) {
      family = { type, help, series: new Map() };
      this.#families.set(name, family);
    } else if (family.type !== type) {
      throw new RangeError(`metric ${name} is a ${family.type}, not a ${type}`);
    }
    return family;
  }

  /** The counter `name{labels}`, created at 0 on first use. */
  counter(name: string, help: string, labels: Labels = {}): Counter {
    const family = this.#family(name, "counter", help);
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
    family.series.set(text, { labels: text, read: () => value });
    return counter;
  }

  /**
   * The counter `name{labels}` kept elsewhere (a client counting its own timeouts): `read` returns
   * its value, which must never decrease, at each scrape.
   */
  observedCounter(name: string, help: string, read: () => number, labels: Labels = {}): void {
    const family = this.#family(name, "counter", help);
    const text = labelText(labels);
    family.series.set(text, { labels: text, read });
  }

  /** The gauge `name{labels}`, whose value `read` returns at each scrape. */
  gauge(name: string, help: string, read: () => number, labels: Labels = {}): void {
    const family = this.#family(name, "gauge", help);
    const text = labelText(labels);
    family.series.set(text, { labels: text, read });
  }

  /** Every series in the Prometheus text format (empty, or ending with a newline). */
  render(): string {
    const out: string[] = [];
    for (const [name, family] of this.#families) {
      out.push(`# HELP ${name} ${family.help}`, `# TYPE ${name} ${family.type}`);
      for (const s of family.series.values()) {
        out.push(`${name}${s.labels} ${formatValue(s.read())}`);
      }
    }
    return out.length > 0 ? out.join("\n") + "\n" : "";
  }
}
