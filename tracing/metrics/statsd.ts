/**
 * Sends every series of some {@linkcode MetricsRegistry}s (the tracing self-metrics and the role's
 * metrics) to a statsd aggregator over UDP, so statsd carries what `/metrics` does.
 *
 * Line formats: counters as deltas since the previous flush (`name:3|c`, zero deltas skipped),
 * gauges every flush (`name:12|g`), the samples a histogram saw since the last flush as timers in
 * ms for `_seconds` histograms (`name:41.5|ms`), else as `|h`. Names are `<prefix>.<statsd name>`,
 * the registry's statsd name of the series (upstream's where it has one, such as
 * `scheduler.download_requests`; else derived from the Prometheus name: `tracing.spans_created`).
 *
 * Tags. Upstream Kraken reports through tally's statsd reporter with the cactus client, which
 * sends plain `name:value|type` lines and drops tags; that plain form is what its statsd → M3
 * pipeline ingests, so it is the default (`tagFormat: "none"`): each label value of a series is
 * folded into the name in label order (`…spans_dropped.queue_full`,
 * `…sampling_rate.GET__v2__name__blobs__digest_`) and constant tags are not sent. `tagFormat: "dogstatsd"` appends tags as `|#reason:queue_full,service:x`
 * instead, for aggregators that understand it (Datadog agent, statsd_exporter, Telegraf).
 *
 * The socket is `node:dgram` rather than `Deno.listenDatagram`, which still needs `--unstable-net`
 * in Deno 2. Lines are packed into datagrams of at most `maxPacketBytes` (512 by default, the size
 * Kraken's statsd client buffers to, safe for any path MTU). Send errors never reach the caller:
 * they are logged, at most once a minute.
 *
 * @module
 */

import dgram from "node:dgram";
import type { Labels, MetricsRegistry, SeriesView } from "./registry.ts";
import { systemTimers, type Timers } from "../../common/timers.ts";

/** How tags are written. */
export type StatsdTagFormat = "none" | "dogstatsd";

/** Options of {@linkcode StatsdEmitter}. */
export interface StatsdEmitterOptions {
  /** Aggregator address, `host:port` (`[v6]:port` for IPv6). */
  addr: string;
  /** Name prefix; metrics are `<prefix>.<statsd name>`. Default `kraken`. */
  prefix?: string;
  /** Constant tags for every line (dogstatsd format only). */
  tags?: Record<string, string>;
  /** Tag format. Default `none`. */
  tagFormat?: StatsdTagFormat;
  /** Flush period, ms. Default 1000. */
  flushIntervalMs?: number;
  /** Largest datagram payload, bytes. Default 512. */
  maxPacketBytes?: number;
  /** Clock and timers. Default {@linkcode systemTimers}. */
  timers?: Timers;
  /** Where send errors are reported (rate limited). */
  logger?: { warn(msg: string, fields?: Record<string, unknown>): void };
}

const ERROR_LOG_INTERVAL_MS = 60_000;

function splitAddr(addr: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(addr) ?? /^([^:\s]+):(\d+)$/.exec(addr);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw new RangeError(`statsd address must be host:port, got ${JSON.stringify(addr)}`);
  }
  return { host: m[1], port: Number(m[2]) };
}

function formatNumber(value: number): string {
  if (Number.isInteger(value)) return String(value);
  // statsd parsers do not all accept exponents; six decimals cover rates down to 1e-6.
  return String(Number(value.toFixed(6)));
}

function nameSafe(value: string): string {
  return value.replace(/[^A-Za-z0-9_-]/g, "_");
}

function tagSafe(value: string): string {
  return value.replace(/[|,#\s]/g, "_");
}

/** Periodically sends the series of some registries to statsd. */
export class StatsdEmitter {
  readonly #registries: readonly MetricsRegistry[];
  readonly #host: string;
  readonly #port: number;
  readonly #base: string;
  readonly #dogstatsd: boolean;
  readonly #constantTags: string;
  readonly #flushMs: number;
  readonly #maxPacket: number;
  readonly #timers: Timers;
  readonly #logger: StatsdEmitterOptions["logger"];
  readonly #lastCounters = new Map<string, number>();
  readonly #encoder = new TextEncoder();
  #socket: dgram.Socket | undefined;
  #timer: number | undefined;
  #lastErrorLog = -Infinity;
  #inFlight = new Set<Promise<void>>();

  /** Validates the options; nothing is sent before `start()` or `flush()`. */
  constructor(registries: readonly MetricsRegistry[], options: StatsdEmitterOptions) {
    this.#registries = registries;
    ({ host: this.#host, port: this.#port } = splitAddr(options.addr));
    const prefix = options.prefix ?? "kraken";
    this.#base = prefix === "" ? "" : `${prefix}.`;
    this.#dogstatsd = options.tagFormat === "dogstatsd";
    this.#constantTags = Object.entries(options.tags ?? {})
      .map(([k, v]) => `${tagSafe(k)}:${tagSafe(v)}`).join(",");
    this.#flushMs = options.flushIntervalMs ?? 1000;
    this.#maxPacket = options.maxPacketBytes ?? 512;
    this.#timers = options.timers ?? systemTimers;
    this.#logger = options.logger;
  }

  /** Starts periodic flushing (no-op when already started). */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = this.#timers.setInterval(() => void this.flush(), this.#flushMs);
  }

  #line(series: SeriesView, value: number, type: string): string {
    let metric = this.#base + series.statsd;
    let tags = this.#constantTags;
    const labels = Object.entries(series.labels as Labels);
    if (this.#dogstatsd && labels.length > 0) {
      const own = labels.map(([k, v]) => `${tagSafe(k)}:${tagSafe(v)}`).join(",");
      tags = own + (tags ? "," + tags : "");
    } else {
      for (const [, v] of labels) metric += "." + nameSafe(v);
    }
    const suffix = this.#dogstatsd && tags ? `|#${tags}` : "";
    return `${metric}:${formatNumber(value)}|${type}${suffix}`;
  }

  /**
   * The lines of one flush; counter baselines advance, so each counter delta is reported once and
   * histogram samples are consumed.
   */
  collect(): string[] {
    const lines: string[] = [];
    for (const registry of this.#registries) {
      for (const series of registry.series()) {
        if (series.kind === "counter") {
          const value = series.read();
          const delta = value - (this.#lastCounters.get(series.key) ?? 0);
          this.#lastCounters.set(series.key, value);
          if (delta > 0) lines.push(this.#line(series, delta, "c"));
        } else if (series.kind === "gauge") {
          lines.push(this.#line(series, series.read(), "g"));
        } else if (series.histogram) {
          const seconds = series.name.endsWith("_seconds");
          for (const sample of series.histogram.drainSamples()) {
            lines.push(this.#line(series, seconds ? sample * 1000 : sample, seconds ? "ms" : "h"));
          }
        }
      }
    }
    return lines;
  }

  /** Collects and sends one flush; resolves when every datagram was handed to the OS. */
  flush(): Promise<void> {
    const packets: string[] = [];
    let current = "";
    for (const line of this.collect()) {
      if (current !== "" && current.length + 1 + line.length > this.#maxPacket) {
        packets.push(current);
        current = "";
      }
      current = current === "" ? line : `${current}\n${line}`;
    }
    if (current !== "") packets.push(current);
    return Promise.all(packets.map((p) => this.#send(p))).then(() => {});
  }

  #send(payload: string): Promise<void> {
    const socket = this.#socket ??= this.#open();
    const sent = new Promise<void>((resolve) => {
      socket.send(this.#encoder.encode(payload), this.#port, this.#host, (error) => {
        if (error) this.#reportError(error);
        resolve();
      });
    });
    this.#inFlight.add(sent);
    sent.finally(() => this.#inFlight.delete(sent));
    return sent;
  }

  #open(): dgram.Socket {
    const socket = dgram.createSocket(this.#host.includes(":") ? "udp6" : "udp4");
    socket.on("error", (error) => this.#reportError(error));
    socket.unref();
    return socket;
  }

  #reportError(error: Error): void {
    const now = this.#timers.now();
    if (now - this.#lastErrorLog < ERROR_LOG_INTERVAL_MS) return;
    this.#lastErrorLog = now;
    this.#logger?.warn("statsd send failed", {
      addr: `${this.#host}:${this.#port}`,
      error: error.message,
    });
  }

  /** Stops flushing, sends a final flush and closes the socket. */
  async close(): Promise<void> {
    if (this.#timer !== undefined) {
      this.#timers.clearInterval(this.#timer);
      this.#timer = undefined;
    }
    await this.flush();
    await Promise.all(this.#inFlight);
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
}
