/**
 * A blob store's series in the role's metrics registry (agents, origins and proxies each have one):
 *
 * | Series | Kind | statsd |
 * |---|---|---|
 * | `kraken_storage_blobs` | gauge | `num_entries` (upstream's) |
 * | `kraken_storage_bytes` | gauge | `size_bytes` (upstream's) |
 * | `kraken_storage_blobs_deleted_total` | counter | `storage.blobs_deleted` |
 * | `kraken_storage_disk_free_bytes` | gauge | `storage.disk_free_bytes` |
 * | `kraken_storage_disk_size_bytes` | gauge | `storage.disk_size_bytes` |
 *
 * Deletions are the only way a blob leaves the cache (the delete APIs, an agent's removal); there
 * is no time- or size-based eviction. Disk figures are those of the file system holding the store's
 * root, as available to this (unprivileged) process.
 *
 * @module
 */

import { statfsSync } from "node:fs";
import type { MetricsRegistry } from "../tracing/mod.ts";
import type { BlobStore } from "./blob_store.ts";

function disk(root: string): { free: number; size: number } {
  try {
    const s = statfsSync(root);
    return { free: s.bavail * s.bsize, size: s.blocks * s.bsize };
  } catch {
    return { free: NaN, size: NaN };
  }
}

/** Registers `store`'s series in `registry`. */
export function registerStoreMetrics(registry: MetricsRegistry, store: BlobStore): void {
  registry.gauge("kraken_storage_blobs", "Blobs in the cache.", () => store.usage.blobs, {}, {
    statsd: "num_entries",
  });
  registry.gauge(
    "kraken_storage_bytes",
    "Bytes of the blobs in the cache.",
    () => store.usage.bytes,
    {},
    { statsd: "size_bytes" },
  );
  registry.observedCounter(
    "kraken_storage_blobs_deleted_total",
    "Blobs deleted from the cache since start.",
    () => store.usage.deleted,
  );
  registry.gauge(
    "kraken_storage_disk_free_bytes",
    "Bytes available on the file system of the store.",
    () => disk(store.root).free,
  );
  registry.gauge(
    "kraken_storage_disk_size_bytes",
    "Size of the file system of the store.",
    () => disk(store.root).size,
  );
}
