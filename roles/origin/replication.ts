/**
 * Replication of a blob to the other origins of its hash-ring locations: after a public commit
 * the blob is duplicated to every other replica with a staggered write-back delay
 * (`origin.replicate`, one span per replica); after a backend fetch it is transferred without
 * write-back (`origin.replicate` with `mode=transfer`). Replication failures are logged, never
 * fatal. {@linkcode Replicator.toRemote} sends a blob to another cluster's origins (cross-cluster
 * replication, kraken-wire.md §6.5) with the public upload protocol, so the remote cluster
 * replicates it to its ring and writes it back itself.
 *
 * @module
 */

import type { Logger } from "../../common/log.ts";
import {
  type BlobSource,
  OriginClient,
  type OriginClientOptions,
  OriginClusterClient,
} from "../../cluster/blob_client.ts";
import type { HashRing } from "../../cluster/hashring.ts";
import { BlobNotFoundError, type BlobStore } from "../../storage/blob_store.ts";
import type { Digest } from "../../storage/digest.ts";
import { ATTR, setAttributes, SPAN, withSpan } from "../../tracing/mod.ts";
import { systemTimers } from "../../common/timers.ts";
import { OriginMetrics, type ReplicationMode } from "./metrics.ts";

/** Options of {@linkcode Replicator}. */
export interface ReplicatorOptions {
  /** The local blob cache the replicas are fed from. */
  store: BlobStore;
  /** The origin ring (health-filtered). */
  ring: HashRing;
  /** This origin's ring label (never a replica of itself). */
  self: string;
  /** Replica i's write-back delay is `stagger × (i + 1)`, ms. */
  duplicateWriteBackStaggerMs: number;
  /** The role's logger. */
  logger: Logger;
  /** Options of the clients used to replicate to other origins (fetch, chunk size). */
  client?: OriginClientOptions;
  /** Source of randomness for the replica order (default `Math.random`). */
  random?: () => number;
  /** Where replications are counted (default: counted nowhere). */
  metrics?: OriginMetrics;
}

/** Sends cached blobs to the other replicas of their ring locations. */
export class Replicator {
  readonly #o: ReplicatorOptions;
  readonly #random: () => number;
  readonly #metrics: OriginMetrics;

  /** @param options see {@linkcode ReplicatorOptions} */
  constructor(options: ReplicatorOptions) {
    this.#o = options;
    this.#random = options.random ?? Math.random;
    this.#metrics = options.metrics ?? new OriginMetrics();
  }

  /** Runs one copy to a replica, counting its outcome and time. */
  async #counted(mode: ReplicationMode, copy: () => Promise<unknown>): Promise<void> {
    const started = systemTimers.now();
    let ok = false;
    try {
      await copy();
      ok = true;
    } finally {
      this.#metrics.replication(mode, ok, (systemTimers.now() - started) / 1000);
    }
  }

  /** Duplicates a committed blob to every other ring replica, concurrently, in random order. */
  async duplicate(namespace: string, digest: Digest): Promise<void> {
    const replicas = this.#replicas(digest);
    if (replicas.length === 0) return;
    const started = performance.now();
    const stagger = this.#o.duplicateWriteBackStaggerMs;
    const source = await this.#source(digest);
    const errors = await Promise.all(replicas.map((host, i) =>
      withSpan(SPAN.originReplicate, {
        [ATTR.replicationReplica]: host,
        [ATTR.namespace]: namespace,
        [ATTR.digest]: digest.toString(),
        [ATTR.replicationDelayMs]: stagger * (i + 1),
      }, () =>
        this.#counted(
          "duplicate",
          () => this.#client(host).duplicateUpload(namespace, digest, source, stagger * (i + 1)),
        ))
        .then(() => undefined, (error: unknown) => {
          this.#o.logger.error("replication failed", {
            replica: host,
            digest: digest.toString(),
            error,
          });
          return `${host}: ${(error as Error).message}`;
        })
    ));
    const failed = errors.filter((e) => e !== undefined);
    setAttributes({
      [ATTR.replicationDurationMs]: Math.round(performance.now() - started),
      [ATTR.replicationReplicas]: replicas.length,
    });
    if (failed.length > 0) setAttributes({ [ATTR.replicationError]: failed.join("; ") });
  }

  /** Transfers a blob fetched from the backend to the other replicas (no write-back). */
  async transfer(namespace: string, digest: Digest): Promise<void> {
    const source = await this.#source(digest);
    await Promise.all(
      this.#replicas(digest).map((host) =>
        withSpan(SPAN.originReplicate, {
          [ATTR.replicationReplica]: host,
          [ATTR.namespace]: namespace,
          [ATTR.digest]: digest.toString(),
          [ATTR.replicationMode]: "transfer",
        }, () => this.#counted("transfer", () => this.#client(host).transferBlob(digest, source)))
          .catch((error) => {
            this.#o.logger.error("replication after backend fetch failed", {
              replica: host,
              digest: digest.toString(),
              error,
            });
          })
      ),
    );
  }

  /**
   * Uploads a cached blob to the origin cluster at `remote` (`host:port`, asked for the blob's
   * ring locations), keeping its namespace. Traced by the cluster client as `origin.store_blob`.
   * @throws {BlobNotFoundError} when the blob is not cached
   */
  async toRemote(namespace: string, digest: Digest, remote: string): Promise<void> {
    const source = await this.#source(digest);
    const cluster = new OriginClusterClient({ ...this.#o.client, hosts: [remote] });
    await cluster.uploadBlob(namespace, digest, source);
  }

  #replicas(digest: Digest): string[] {
    const others = this.#o.ring.locations(digest.hex).filter((h) => h !== this.#o.self);
    for (let i = others.length - 1; i > 0; i--) {
      const j = Math.floor(this.#random() * (i + 1));
      [others[i], others[j]] = [others[j], others[i]];
    }
    return others;
  }

  #client(addr: string): OriginClient {
    return new OriginClient(addr, this.#o.client);
  }

  /** The cached blob as a re-openable upload source. */
  async #source(digest: Digest): Promise<BlobSource> {
    const stat = await this.#o.store.stat(digest);
    if (!stat) throw new BlobNotFoundError(digest);
    return { size: stat.size, open: () => this.#o.store.open(digest).then((b) => b.stream) };
  }
}
