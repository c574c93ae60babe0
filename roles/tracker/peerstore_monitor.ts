/**
 * Watches the tracker's peer store, so an outage (Redis down) is visible without flooding the log:
 *
 * - `kraken_tracker_peer_store_errors_total{store}` counts failed calls;
 * - `kraken_tracker_peer_store_duration_seconds{store,op}` times each call (`update_peer`,
 *   `get_peers`, `probe`), failed ones included;
 * - `kraken_tracker_peer_store_up{store}` is 1 while the last call (or readiness probe) succeeded,
 *   0 after a failure; `/readiness` probes the store, so the tracker reports not ready while it is
 *   down and notices the recovery even without announces;
 * - a failure is logged at most once per `logIntervalMs` (default 10 s) with the number of failures
 *   suppressed since the previous line, and the recovery once, with the failures of the outage.
 *
 * The tracker keeps answering announces while the store is down (upstream's behaviour): the
 * handout falls back to the origins.
 *
 * @module
 */

import type { PeerInfo } from "../../wire/announce.ts";
import type { InfoHash } from "../../storage/metainfo.ts";
import { type Logger, rateLimited } from "../../common/log.ts";
import { systemTimers } from "../../common/timers.ts";
import type { Histogram, MetricsRegistry } from "../../tracing/mod.ts";
import type { PeerStore } from "./peerstore.ts";

/** Bucket bounds of the peer store call latency, seconds (Redis answers in well under 1 ms). */
const PEER_STORE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

/** Default shortest time between two "peer store error" log lines. */
export const DEFAULT_LOG_INTERVAL_MS = 10_000;

/** Options of {@linkcode MonitoredPeerStore}. */
export interface PeerStoreMonitorOptions {
  /** Where failure and recovery lines go. */
  logger: Logger;
  /** Where the store's series are registered (the role's `tracing.roleMetrics`). */
  metrics: MetricsRegistry;
  /** Shortest time between two failure lines (default {@linkcode DEFAULT_LOG_INTERVAL_MS}). */
  logIntervalMs?: number;
  /** Clock in epoch ms for the log rate (default `Date.now`). */
  now?: () => number;
}

/** A peer store that counts, reports and logs (bounded) the failures of the store it wraps. */
export class MonitoredPeerStore implements PeerStore {
  /** The wrapped store's type. */
  readonly type: string;
  readonly #inner: PeerStore;
  readonly #logger: Logger;
  readonly #logFailure: (msg: string, fields?: Record<string, unknown>) => void;
  readonly #errors;
  readonly #latency: Record<string, Histogram>;
  #up = true;
  #outageErrors = 0;
  #lastError: Error | undefined;

  /** Wraps `inner`; registers its series on `options.metrics`. */
  constructor(inner: PeerStore, options: PeerStoreMonitorOptions) {
    this.#inner = inner;
    this.type = inner.type;
    this.#logger = options.logger;
    this.#logFailure = rateLimited(
      options.logIntervalMs ?? DEFAULT_LOG_INTERVAL_MS,
      (msg, fields) => this.#logger.error(msg, fields),
      options.now,
    );
    const labels = { store: inner.type };
    this.#errors = options.metrics.counter(
      "kraken_tracker_peer_store_errors_total",
      "Failed peer store calls (announce updates, peer reads, readiness probes).",
      labels,
    );
    this.#latency = Object.fromEntries(
      ["update_peer", "get_peers", "probe"].map((op) => [
        op,
        options.metrics.histogram(
          "kraken_tracker_peer_store_duration_seconds",
          "Peer store call latency, by operation.",
          { buckets: PEER_STORE_BUCKETS, labels: { ...labels, op } },
        ),
      ]),
    );
    options.metrics.gauge(
      "kraken_tracker_peer_store_up",
      "1 while the peer store answers, 0 since its last failure.",
      () => this.#up ? 1 : 0,
      labels,
    );
  }

  /** Whether the last call succeeded. */
  get up(): boolean {
    return this.#up;
  }

  /** The error of the last failed call while the store is down. */
  get lastError(): Error | undefined {
    return this.#up ? undefined : this.#lastError;
  }

  async #watch<T>(op: string, call: () => Promise<T>): Promise<T> {
    let result: T;
    const started = systemTimers.now();
    try {
      result = await call();
    } catch (error) {
      this.#failed(op, error as Error);
      throw error;
    } finally {
      this.#latency[op].observe((systemTimers.now() - started) / 1000);
    }
    if (!this.#up) {
      this.#up = true;
      this.#logger.info("peer store recovered", {
        store: this.type,
        failures: this.#outageErrors,
      });
      this.#outageErrors = 0;
    }
    return result;
  }

  #failed(op: string, error: Error): void {
    this.#errors.inc();
    this.#up = false;
    this.#outageErrors++;
    this.#lastError = error;
    this.#logFailure("peer store error", { store: this.type, op, error });
  }

  /** Records a peer (see {@linkcode PeerStore.updatePeer}). */
  updatePeer(infoHash: InfoHash, peer: PeerInfo): Promise<void> {
    return this.#watch("update_peer", () => this.#inner.updatePeer(infoHash, peer));
  }

  /** Random peers (see {@linkcode PeerStore.getPeers}). */
  getPeers(infoHash: InfoHash, n: number): Promise<PeerInfo[]> {
    return this.#watch("get_peers", () => this.#inner.getPeers(infoHash, n));
  }

  /** Probes the wrapped store; the outcome moves the up gauge like any call. */
  probe(): Promise<void> {
    return this.#watch("probe", () => this.#inner.probe());
  }

  /** Closes the wrapped store. */
  close(): Promise<void> {
    return this.#inner.close();
  }
}
