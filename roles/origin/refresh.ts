/**
 * Blob refresh: filling the origin's cache from the storage backend when a download, prefetch or
 * metainfo request misses (kraken-wire.md §6.4).
 *
 * {@linkcode BlobRefresher.refresh} stats the backend synchronously (traced `backend.stat`), then
 * starts one background download per digest (traced `backend.download`): the blob is streamed into
 * the store (verified against its digest), its metainfo is generated, and the `onFetched` hook runs
 * (the origin pushes the blob to its ring replicas). The caller answers 202 while the download
 * runs, as upstream; not-found and failures are remembered for 15 s so a client polling for a
 * missing blob does not stat the backend on every poll.
 *
 * @module
 */

import type { Logger } from "../../common/log.ts";
import { HttpError } from "../../http/router.ts";
import { type BackendManager, objectKeyOf } from "../../storage/backend/backend.ts";
import type { BlobStore } from "../../storage/blob_store.ts";
import type { Digest } from "../../storage/digest.ts";
import { ATTR, SPAN, withSpan } from "../../tracing/mod.ts";
import { OriginMetrics } from "./metrics.ts";

/** Options for {@linkcode BlobRefresher}. */
export interface BlobRefresherOptions {
  /** The cache to fill. */
  store: BlobStore;
  /** Namespace → backend mapping. */
  backends: BackendManager;
  /** Runs after a blob entered the cache: metainfo generation and replication. */
  onFetched: (namespace: string, digest: Digest) => Promise<void>;
  /** Logger for background failures. */
  logger: Logger;
  /** Concurrent background downloads before new ones get 503 (default 10000, as upstream). */
  maxWorkers?: number;
  /** How long not-found and failed results are remembered, ms (default 15 s). */
  resultTtlMs?: number;
  /** Clock in epoch ms (default `Date.now`). */
  now?: () => number;
  /** Where refreshes are counted (default: counted nowhere). */
  metrics?: OriginMetrics;
}

interface CachedResult {
  status: 404 | 500;
  message: string;
  until: number;
}

/** Deduplicated, background backend fetches of cache misses. */
export class BlobRefresher {
  readonly #store: BlobStore;
  readonly #backends: BackendManager;
  readonly #onFetched: (namespace: string, digest: Digest) => Promise<void>;
  readonly #logger: Logger;
  readonly #maxWorkers: number;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #metrics: OriginMetrics;
  readonly #inFlight = new Map<string, Promise<void>>();
  readonly #results = new Map<string, CachedResult>();

  /** @param options see {@linkcode BlobRefresherOptions} */
  constructor(options: BlobRefresherOptions) {
    this.#store = options.store;
    this.#backends = options.backends;
    this.#onFetched = options.onFetched;
    this.#logger = options.logger;
    this.#maxWorkers = options.maxWorkers ?? 10_000;
    this.#ttlMs = options.resultTtlMs ?? 15_000;
    this.#now = options.now ?? Date.now;
    this.#metrics = options.metrics ?? new OriginMetrics();
  }

  /**
   * Starts fetching `digest` from the backend of `namespace`. Never returns normally: it always
   * throws the {@linkcode HttpError} the handler should answer with — 202 (fetch started or
   * running), 404 (the backend does not have it), 503 (too many fetches), 500 (no backend matches
   * the namespace, or the backend failed).
   */
  async refresh(namespace: string, digest: Digest): Promise<never> {
    const key = digest.hex;
    if (this.#inFlight.has(key)) throw new HttpError(202);
    const cached = this.#results.get(key);
    if (cached && cached.until > this.#now()) throw new HttpError(cached.status, cached.message);
    this.#results.delete(key);

    let backend;
    try {
      backend = this.#backends.getClient(namespace);
    } catch (error) {
      throw new HttpError(500, (error as Error).message);
    }
    const objectKey = objectKeyOf(backend, digest.hex);
    const attrs = {
      [ATTR.backendType]: backend.type,
      [ATTR.bucket]: backend.bucket ?? "",
      [ATTR.namespace]: namespace,
      [ATTR.digest]: digest.toString(),
      ...(objectKey === undefined ? {} : { [ATTR.backendKey]: objectKey }),
    };
    let info;
    try {
      info = await withSpan(SPAN.backendStat, attrs, async (span) => {
        const found = await backend.stat(namespace, digest.hex);
        span.setAttribute(ATTR.exists, found !== null);
        return found;
      });
    } catch (error) {
      this.#metrics.refresh("failed");
      return this.#fail(key, 500, `backend stat: ${(error as Error).message}`);
    }
    if (info === null) {
      this.#metrics.refresh("not_found");
      return this.#fail(key, 404, "");
    }
    // Another request may have started the fetch while this one was statting.
    if (this.#inFlight.has(key)) throw new HttpError(202);
    if (this.#inFlight.size >= this.#maxWorkers) {
      throw new HttpError(503, "blob refresh workers busy");
    }

    const size = info.size;
    let fetched = false;
    const run = withSpan(SPAN.backendDownload, { ...attrs, [ATTR.size]: size }, async (span) => {
      const started = performance.now();
      const body = await backend.download(namespace, digest.hex);
      if (body === null) throw new Error(`backend lost ${digest} between stat and download`);
      await this.#store.putBlob(digest, body);
      span.setAttribute(ATTR.durationMs, Math.round(performance.now() - started));
      fetched = true;
      this.#metrics.refresh("fetched", size);
      await this.#onFetched(namespace, digest);
    }).catch((error) => {
      if (!fetched) this.#metrics.refresh("failed");
      this.#logger.error("backend fetch failed", { namespace, digest: digest.toString(), error });
      this.#results.set(key, {
        status: 500,
        message: `backend fetch: ${(error as Error).message}`,
        until: this.#now() + this.#ttlMs,
      });
    }).finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, run);
    throw new HttpError(202);
  }

  /** Waits for every background fetch to finish (shutdown, tests). */
  async drain(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.all(this.#inFlight.values());
  }

  #fail(key: string, status: 404 | 500, message: string): never {
    this.#results.set(key, { status, message, until: this.#now() + this.#ttlMs });
    throw new HttpError(status, message);
  }
}
