/**
 * The scheduler's series in the role's metrics registry (agents and origins both run a scheduler):
 *
 * | Series | Kind | statsd |
 * |---|---|---|
 * | `kraken_scheduler_downloads_started_total` | counter | `download_requests` (upstream's) |
 * | `kraken_scheduler_downloads_finished_total` | counter | `scheduler.downloads_finished` |
 * | `kraken_scheduler_downloads_failed_total{reason}` | counter | `download_errors.<reason>` (upstream's) |
 * | `kraken_scheduler_download_duration_seconds` | histogram, exemplars | timer `scheduler.download_duration` |
 * | `kraken_scheduler_pieces_received_total{source="origin"\|"agent"}` | counter | |
 * | `kraken_scheduler_piece_bytes_received_total{source}` | counter | |
 * | `kraken_scheduler_piece_bytes_served_total` | counter | |
 * | `kraken_scheduler_pieces_invalid_total` | counter | |
 * | `kraken_scheduler_torrents` | gauge | `torrents` (upstream's) |
 * | `kraken_scheduler_connections` | gauge | |
 * | `kraken_scheduler_blacklisted_peers` | gauge | |
 * | `kraken_scheduler_open_files` | gauge | |
 * | `kraken_scheduler_idle_piece_buffer_bytes` | gauge | |
 *
 * `reason` is `not_found` (tracker and origins do not know the blob), `digest_mismatch`,
 * `timeout` (the torrent saw no traffic for `leecher_tti`), `closed` (removed, evicted, scheduler
 * closed) or `error` (anything else: metainfo or storage failures). Piece counters add the live
 * torrents' exchange to that of the torrents already dropped, so they only grow.
 *
 * @module
 */

import type { Timers } from "../common/timers.ts";
import type { Counter, Histogram, MetricsRegistry } from "../tracing/mod.ts";
import type { P2PSummary } from "./dispatcher.ts";

/** Why a download failed, the `reason` label. */
export type DownloadFailure = "not_found" | "digest_mismatch" | "timeout" | "closed" | "error";

const FAILURES: readonly DownloadFailure[] = [
  "not_found",
  "digest_mismatch",
  "timeout",
  "closed",
  "error",
];

/** Bucket bounds of the download time, seconds. */
export const DOWNLOAD_DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.01,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
  120,
  300,
]);

/** What the gauges and piece counters read from the scheduler at scrape time. */
export interface SchedulerGauges {
  /** Summaries of the torrents in memory. */
  liveSummaries(): Iterable<P2PSummary>;
  /** Torrents in memory. */
  torrents(): number;
  /** Active peer connections over all torrents. */
  connections(): number;
  /** Blacklisted (peer, torrent) pairs. */
  blacklisted(): number;
  /** Cached blob files held open to serve pieces from (the scheduler's handle pool). */
  openFiles(): number;
  /** Bytes of piece buffers waiting for reuse (the scheduler's buffer pool). */
  idleBufferBytes(): number;
}

type PieceTotals = Pick<
  P2PSummary,
  | "piecesFromOrigins"
  | "piecesFromAgents"
  | "bytesReceived"
  | "bytesFromOrigins"
  | "bytesServed"
  | "piecesInvalid"
>;

/** The scheduler's counters and histogram. */
export class SchedulerMetrics {
  readonly #started: Counter;
  readonly #finished: Counter;
  readonly #failed: Record<DownloadFailure, Counter>;
  readonly #duration: Histogram;
  readonly #retired: PieceTotals = {
    piecesFromOrigins: 0,
    piecesFromAgents: 0,
    bytesReceived: 0,
    bytesFromOrigins: 0,
    bytesServed: 0,
    piecesInvalid: 0,
  };

  /** Registers every series in `registry`, reading gauges and live torrents from `gauges`. */
  constructor(registry: MetricsRegistry, gauges: SchedulerGauges) {
    this.#started = registry.counter(
      "kraken_scheduler_downloads_started_total",
      "Blob downloads started (concurrent requests for one blob share one).",
      {},
      { statsd: "download_requests" },
    );
    this.#finished = registry.counter(
      "kraken_scheduler_downloads_finished_total",
      "Blob downloads committed to the cache (or found there).",
    );
    this.#failed = Object.fromEntries(FAILURES.map((reason) => [
      reason,
      registry.counter(
        "kraken_scheduler_downloads_failed_total",
        "Blob downloads that failed, by reason.",
        { reason },
        { statsd: "download_errors" },
      ),
    ])) as Record<DownloadFailure, Counter>;
    this.#duration = registry.histogram(
      "kraken_scheduler_download_duration_seconds",
      "Time from the start of a blob download until it is committed.",
      { buckets: DOWNLOAD_DURATION_BUCKETS },
    );
    const total = (pick: (s: PieceTotals) => number) => () => {
      let n = pick(this.#retired);
      for (const s of gauges.liveSummaries()) n += pick(s);
      return n;
    };
    registry.observedCounter(
      "kraken_scheduler_pieces_received_total",
      "Verified pieces received, by the kind of peer that sent them.",
      total((s) => s.piecesFromOrigins),
      { source: "origin" },
    );
    registry.observedCounter(
      "kraken_scheduler_pieces_received_total",
      "Verified pieces received, by the kind of peer that sent them.",
      total((s) => s.piecesFromAgents),
      { source: "agent" },
    );
    registry.observedCounter(
      "kraken_scheduler_piece_bytes_received_total",
      "Verified piece bytes received, by the kind of peer that sent them.",
      total((s) => s.bytesFromOrigins),
      { source: "origin" },
    );
    registry.observedCounter(
      "kraken_scheduler_piece_bytes_received_total",
      "Verified piece bytes received, by the kind of peer that sent them.",
      total((s) => s.bytesReceived - s.bytesFromOrigins),
      { source: "agent" },
    );
    registry.observedCounter(
      "kraken_scheduler_piece_bytes_served_total",
      "Piece bytes served to peers.",
      total((s) => s.bytesServed),
    );
    registry.observedCounter(
      "kraken_scheduler_pieces_invalid_total",
      "Pieces rejected: bad checksum, wrong offset or length.",
      total((s) => s.piecesInvalid),
    );
    registry.gauge(
      "kraken_scheduler_torrents",
      "Torrents in memory (seeding or downloading).",
      () => gauges.torrents(),
      {},
      { statsd: "torrents" },
    );
    registry.gauge(
      "kraken_scheduler_connections",
      "Active peer connections over all torrents.",
      () => gauges.connections(),
    );
    registry.gauge(
      "kraken_scheduler_blacklisted_peers",
      "Peers not redialed for a torrent after a failed dial (blacklist_duration).",
      () => gauges.blacklisted(),
    );
    registry.gauge(
      "kraken_scheduler_open_files",
      "Cached blob files held open to serve pieces from (bounded; closed when idle or evicted).",
      () => gauges.openFiles(),
    );
    registry.gauge(
      "kraken_scheduler_idle_piece_buffer_bytes",
      "Piece buffers kept for the next torrent (bounded; dropped when idle).",
      () => gauges.idleBufferBytes(),
    );
  }

  /** A download started; call the returned function with its outcome when it ends. */
  downloadStarted(timers: Timers): (failure?: DownloadFailure) => void {
    this.#started.inc();
    const start = timers.now();
    return (failure) => {
      if (failure) {
        this.#failed[failure].inc();
        return;
      }
      this.#finished.inc();
      this.#duration.observe((timers.now() - start) / 1000);
    };
  }

  /** A torrent left memory: its exchange moves into the totals. */
  retire(summary: P2PSummary): void {
    for (const key of Object.keys(this.#retired) as (keyof PieceTotals)[]) {
      this.#retired[key] += summary[key];
    }
  }
}
