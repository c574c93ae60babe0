/**
 * The origin's own series (besides the scheduler's, the store's and the write-back queue's):
 *
 * | Series | Kind | statsd |
 * |---|---|---|
 * | `kraken_origin_uploads_total{kind,result}` | counter | `origin.uploads.<kind>.<result>` |
 * | `kraken_origin_upload_bytes_total{kind}` | counter | `origin.upload_bytes.<kind>` |
 * | `kraken_origin_refreshes_total{result}` | counter | `origin.refreshes.<result>` |
 * | `kraken_origin_refresh_bytes_total` | counter | `origin.refresh_bytes` |
 * | `kraken_origin_replications_total{mode,result}` | counter | `origin.replications.<mode>.<result>` |
 * | `kraken_origin_replication_duration_seconds{mode}` | histogram | timer `replicate_blob.<mode>` (upstream's) |
 *
 * `kind` is the upload protocol (`public`, `internal`, `duplicate`); an upload's `result` is
 * `committed`, `exists` (409) or `digest_mismatch` (400). A refresh (a cache miss filled from the
 * backend) ends `fetched`, `not_found` (the backend lacks it) or `failed`. Replication to a ring
 * replica is `duplicate` (a committed upload, with write-back) or `transfer` (after a refresh), and
 * ends `ok` or `failed`.
 *
 * @module
 */

import { type Counter, type Histogram, MetricsRegistry } from "../../tracing/mod.ts";

/** An upload flavour, the `kind` label. */
export type UploadKind = "public" | "internal" | "duplicate";
/** How a commit ended, the `result` label. */
export type UploadResult = "committed" | "exists" | "digest_mismatch";
/** How a refresh ended. */
export type RefreshResult = "fetched" | "not_found" | "failed";
/** A replication mode. */
export type ReplicationMode = "duplicate" | "transfer";

const KINDS: readonly UploadKind[] = ["public", "internal", "duplicate"];
const UPLOAD_RESULTS: readonly UploadResult[] = ["committed", "exists", "digest_mismatch"];
const REFRESH_RESULTS: readonly RefreshResult[] = ["fetched", "not_found", "failed"];
const MODES: readonly ReplicationMode[] = ["duplicate", "transfer"];

/** Bucket bounds of one replica's replication time, seconds. */
const REPLICATION_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The origin's counters, registered (at 0) when created. */
export class OriginMetrics {
  readonly #uploads = new Map<string, Counter>();
  readonly #uploadBytes = new Map<string, Counter>();
  readonly #refreshes = new Map<string, Counter>();
  readonly #refreshBytes: Counter;
  readonly #replications = new Map<string, Counter>();
  readonly #replicationTime = new Map<string, Histogram>();

  /** Registers every series in `registry` (default: a registry of its own, for tests). */
  constructor(registry: MetricsRegistry = new MetricsRegistry()) {
    for (const kind of KINDS) {
      for (const result of UPLOAD_RESULTS) {
        this.#uploads.set(
          `${kind} ${result}`,
          registry.counter(
            "kraken_origin_uploads_total",
            "Upload commits, by protocol and result.",
            { kind, result },
          ),
        );
      }
      this.#uploadBytes.set(
        kind,
        registry.counter(
          "kraken_origin_upload_bytes_total",
          "Bytes of committed uploads, by protocol.",
          { kind },
        ),
      );
    }
    for (const result of REFRESH_RESULTS) {
      this.#refreshes.set(
        result,
        registry.counter(
          "kraken_origin_refreshes_total",
          "Cache misses filled from the storage backend, by result.",
          { result },
        ),
      );
    }
    this.#refreshBytes = registry.counter(
      "kraken_origin_refresh_bytes_total",
      "Bytes fetched from the storage backend into the cache.",
    );
    for (const mode of MODES) {
      for (const result of ["ok", "failed"]) {
        this.#replications.set(
          `${mode} ${result}`,
          registry.counter(
            "kraken_origin_replications_total",
            "Blob copies to another ring replica, by mode and result.",
            { mode, result },
          ),
        );
      }
      this.#replicationTime.set(
        mode,
        registry.histogram(
          "kraken_origin_replication_duration_seconds",
          "Time to copy a blob to one ring replica, by mode.",
          { buckets: REPLICATION_BUCKETS, labels: { mode }, statsd: "replicate_blob" },
        ),
      );
    }
  }

  /** An upload commit ended. */
  upload(kind: UploadKind, result: UploadResult, bytes: number): void {
    this.#uploads.get(`${kind} ${result}`)!.inc();
    if (result === "committed") this.#uploadBytes.get(kind)!.inc(bytes);
  }

  /** A refresh ended (`bytes` fetched when it did). */
  refresh(result: RefreshResult, bytes = 0): void {
    this.#refreshes.get(result)!.inc();
    if (bytes > 0) this.#refreshBytes.inc(bytes);
  }

  /** A copy to one replica ended after `seconds`. */
  replication(mode: ReplicationMode, ok: boolean, seconds: number): void {
    this.#replications.get(`${mode} ${ok ? "ok" : "failed"}`)!.inc();
    this.#replicationTime.get(mode)!.observe(seconds);
  }
}
