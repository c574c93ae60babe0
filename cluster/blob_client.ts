/**
 * HTTP clients for the origin blob API (kraken-wire.md §1.4), used by the proxy, build-index and
 * by origins replicating to each other.
 *
 * - {@linkcode OriginClient} talks to one origin: chunked uploads (start → PATCH → commit, where a
 *   409 at any step means "already there" and counts as success), duplicate uploads between ring
 *   replicas, internal transfers, stat, download, metainfo and ring locations.
 * - {@linkcode OriginClusterClient} runs upstream's cluster algorithms over a list of origins:
 *   locations from up to 3 random hosts, upload to the locations in order with fallback on network
 *   errors and 429/502/503/504, stat in shuffled order, and download/metainfo polling while an
 *   origin answers 202 (it is fetching the blob from its backend).
 *
 * Every request goes through an injected fetch, by default {@linkcode tracedFetch}, with the route
 * template so client spans are named `{METHOD} {route}`. Namespaces are escaped with Go's
 * PathEscape rules ({@linkcode pathEscape}); digests are written `sha256:<hex>`.
 *
 * A {@linkcode BlobSource} can be opened more than once, so a cluster upload that falls back to
 * the next origin re-reads the blob from the start.
 *
 * @example
 * ```ts
 * import { bytesSource, OriginClusterClient } from "./blob_client.ts";
 * import { digestOfBytes } from "../storage/digest.ts";
 *
 * const data = new TextEncoder().encode("hello");
 * const cluster = new OriginClusterClient({ hosts: ["127.0.0.1:15002"] });
 * await cluster.uploadBlob("library/ubuntu", await digestOfBytes(data), bytesSource(data));
 * ```
 *
 * @module
 */

import { HttpStatusError } from "../http/status_error.ts";
import type { Digest } from "../storage/digest.ts";
import { MetaInfo } from "../storage/metainfo.ts";
import {
  ATTR,
  onBodyDone,
  setAttributes,
  SPAN,
  tracedFetch,
  type TracedFetchOptions,
  withSpan,
} from "../tracing/mod.ts";
import {
  BLOB_DOWNLOAD,
  BLOB_LOCATIONS,
  BLOB_STAT,
  DUPLICATE_COMMIT,
  encodeDuplicateCommit,
  INTERNAL_UPLOAD_COMMIT,
  INTERNAL_UPLOAD_PATCH,
  INTERNAL_UPLOAD_START,
  ORIGIN_METAINFO,
  REPLICATE_TO_REMOTE,
  UPLOAD_COMMIT,
  UPLOAD_PATCH,
  UPLOAD_START,
} from "../wire/blob.ts";
import { expand, type Route } from "../wire/route.ts";
import { pathEscape } from "./escape.ts";
import { currentHosts, type HostSource } from "./hostlist.ts";

/** The fetch the clients use: `tracedFetch`'s signature (plain `fetch` ignores the extra keys). */
export type OriginFetch = (url: string, init: TracedFetchOptions) => Promise<Response>;

/** A blob to upload: its size and a way to read it from the start, as often as needed. */
export interface BlobSource {
  /** Size in bytes. */
  readonly size: number;
  /** Opens a fresh stream of the whole blob. */
  open(): ReadableStream<Uint8Array> | Promise<ReadableStream<Uint8Array>>;
}

/** Wraps bytes held in memory as a {@linkcode BlobSource}. */
export function bytesSource(bytes: Uint8Array): BlobSource {
  return { size: bytes.length, open: () => ReadableStream.from([bytes]) };
}

/**
 * The origin answered 202 Accepted: it is fetching the blob from its storage backend, ask again
 * later ({@linkcode pollAccepted}).
 */
export class AcceptedError extends HttpStatusError {
  /**
   * @param method request method
   * @param url request URL
   */
  constructor(method: string, url: string) {
    super(method, url, 202, "");
    this.name = "AcceptedError";
  }
}

/** True when `error` is an origin's 404. */
export function isNotFound(error: unknown): boolean {
  return error instanceof HttpStatusError && error.status === 404;
}

/** Upstream's per-request timeout (whole exchange). */
export const DEFAULT_TIMEOUT_MS = 60_000;
/** Upstream's timeout for a public upload commit, which replicates synchronously. */
export const COMMIT_TIMEOUT_MS = 15 * 60_000;
/** Upstream's upload chunk size. */
export const DEFAULT_CHUNK_SIZE = 32 * 1024 * 1024;

/** Options for {@linkcode OriginClient}. */
export interface OriginClientOptions {
  /** The fetch to use (default {@linkcode tracedFetch}). */
  fetch?: OriginFetch;
  /** Upload chunk size in bytes (default 32 MiB). */
  chunkSize?: number;
  /** Per-request timeout in ms, body included (default 60 s). */
  timeoutMs?: number;
  /** Timeout of a public upload commit in ms (default 15 min). */
  commitTimeoutMs?: number;
}

/** Options of {@linkcode OriginClient.stat}. */
export interface StatOptions {
  /** Only look in the origin's cache, never its backend (`?local=true`). */
  local?: boolean;
}

interface SendOptions {
  body?: BodyInit;
  headers?: HeadersInit;
  /** Statuses returned to the caller instead of thrown (200 always is). */
  accept?: number[];
  timeoutMs?: number;
  /** Keep the timeout armed until the returned body is read (downloads). */
  streamBody?: boolean;
}

const RETRYABLE = new Set([429, 502, 503, 504]);

/** A client for one origin's blob API. */
export class OriginClient {
  /** The origin's `host:port`. */
  readonly addr: string;
  readonly #fetch: OriginFetch;
  readonly #chunkSize: number;
  readonly #timeoutMs: number;
  readonly #commitTimeoutMs: number;

  /**
   * @param addr the origin's `host:port`
   * @param options see {@linkcode OriginClientOptions}
   */
  constructor(addr: string, options: OriginClientOptions = {}) {
    if (!/^(\[[^\]]+\]|[^\s/:]+):\d{1,5}$/.test(addr)) {
      throw new TypeError(`origin address must be host:port, got ${JSON.stringify(addr)}`);
    }
    const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) {
      throw new RangeError(`chunkSize must be a positive integer, got ${chunkSize}`);
    }
    this.addr = addr;
    this.#fetch = options.fetch ?? tracedFetch;
    this.#chunkSize = chunkSize;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#commitTimeoutMs = options.commitTimeoutMs ?? COMMIT_TIMEOUT_MS;
  }

  /**
   * Uploads a blob with the public cluster-upload protocol: the origin writes it back to its
   * backend and replicates it to the other ring replicas before the commit returns.
   * A 409 at any step means the origin has it already, which is success.
   */
  async uploadBlob(namespace: string, digest: Digest, source: BlobSource): Promise<void> {
    const params = { namespace: pathEscape(namespace), digest: digest.toString() };
    await this.#upload(
      UPLOAD_START,
      UPLOAD_PATCH,
      params,
      source,
      (uid) =>
        this.#send(UPLOAD_COMMIT, { ...params, uid }, "", {
          accept: [409],
          timeoutMs: this.#commitTimeoutMs,
        }),
    );
  }

  /**
   * Sends a blob to a ring replica: public start and PATCH, then the internal duplicate commit
   * whose write-back becomes eligible only after `delayMs` (upstream's staggered redundancy).
   */
  async duplicateUpload(
    namespace: string,
    digest: Digest,
    source: BlobSource,
    delayMs: number,
  ): Promise<void> {
    if (!Number.isFinite(delayMs) || delayMs < 0) {
      throw new RangeError(`delayMs must be a non-negative number, got ${delayMs}`);
    }
    const params = { namespace: pathEscape(namespace), digest: digest.toString() };
    await this.#upload(
      UPLOAD_START,
      UPLOAD_PATCH,
      params,
      source,
      (uid) =>
        this.#send(DUPLICATE_COMMIT, { ...params, uid }, "", {
          body: encodeDuplicateCommit(delayMs),
          headers: { "content-type": "application/json" },
          accept: [409],
        }),
    );
  }

  /** Copies a blob to the origin with the internal transfer API (no write-back, no replication). */
  async transferBlob(digest: Digest, source: BlobSource): Promise<void> {
    const params = { digest: digest.toString() };
    await this.#upload(
      INTERNAL_UPLOAD_START,
      INTERNAL_UPLOAD_PATCH,
      params,
      source,
      (uid) => this.#send(INTERNAL_UPLOAD_COMMIT, { ...params, uid }, "", { accept: [409] }),
    );
  }

  /**
   * Stats a blob: its size, or null when the origin (and, unless `local`, its backend) does not
   * have it.
   */
  async stat(
    namespace: string,
    digest: Digest,
    options: StatOptions = {},
  ): Promise<{ size: number } | null> {
    const query = options.local ? "?local=true" : "";
    const res = await this.#send(
      BLOB_STAT,
      { namespace: pathEscape(namespace), digest: digest.toString() },
      query,
      { accept: [404] },
    );
    await res.body?.cancel();
    if (res.status === 404) return null;
    const raw = res.headers.get("content-length") ?? "";
    if (!/^\d+$/.test(raw)) {
      throw new Error(
        `stat ${digest} on ${this.addr}: invalid Content-Length ${JSON.stringify(raw)}`,
      );
    }
    return { size: Number(raw) };
  }

  /**
   * Downloads a blob. The timeout covers reading the body too, as upstream's.
   * @throws {AcceptedError} while the origin fetches the blob from its backend (poll)
   * @throws {HttpStatusError} 404 when neither the origin nor its backend has it
   */
  async download(namespace: string, digest: Digest): Promise<ReadableStream<Uint8Array>> {
    const res = await this.#send(
      BLOB_DOWNLOAD,
      { namespace: pathEscape(namespace), digest: digest.toString() },
      "",
      { streamBody: true },
    );
    return res.body ?? new Blob().stream();
  }

  /**
   * Fetches a blob's metainfo.
   * @throws {AcceptedError} while the origin fetches the blob from its backend (poll)
   */
  async getMetaInfo(namespace: string, digest: Digest): Promise<MetaInfo> {
    const res = await this.#send(ORIGIN_METAINFO, {
      namespace: pathEscape(namespace),
      digest: digest.toString(),
    });
    return MetaInfo.deserialize(new Uint8Array(await res.arrayBuffer()));
  }

  /**
   * Asks the origin to send a blob to the origin cluster at `remote` (`host:port`), keeping the
   * namespace. Uses the commit timeout: the origin answers once the remote cluster has the blob.
   * @throws {AcceptedError} while the origin fetches the blob from its backend (poll)
   * @throws {HttpStatusError} 404 when neither the origin nor its backend has it
   */
  async replicateToRemote(namespace: string, digest: Digest, remote: string): Promise<void> {
    const res = await this.#send(
      REPLICATE_TO_REMOTE,
      {
        namespace: pathEscape(namespace),
        digest: digest.toString(),
        remote,
      },
      "",
      { timeoutMs: this.#commitTimeoutMs },
    );
    await res.body?.cancel();
  }

  /** The ring's ordered replica set for a digest, from the `Origin-Locations` header. */
  async locations(digest: Digest): Promise<string[]> {
    const res = await this.#send(BLOB_LOCATIONS, { digest: digest.toString() });
    await res.body?.cancel();
    const hosts = (res.headers.get("origin-locations") ?? "").split(",").map((h) => h.trim())
      .filter((h) => h !== "");
    if (hosts.length === 0) {
      throw new Error(`locations of ${digest} on ${this.addr}: empty Origin-Locations header`);
    }
    return hosts;
  }

  /** start → PATCH each chunk → commit; a 409 at start or PATCH ends the upload successfully. */
  async #upload(
    start: Route,
    patch: Route,
    params: Record<string, string>,
    source: BlobSource,
    commit: (uid: string) => Promise<Response>,
  ): Promise<void> {
    const started = await this.#send(start, params, `?size=${source.size}`, { accept: [409] });
    await started.body?.cancel();
    if (started.status === 409) return;
    const uid = started.headers.get("location") ?? "";
    if (!/^[\w.-]{1,128}$/.test(uid)) {
      throw new Error(`upload start on ${this.addr}: invalid Location ${JSON.stringify(uid)}`);
    }
    const reader = (await source.open()).getReader();
    try {
      const chunks = new ChunkReader(reader);
      for (let pos = 0; pos < source.size; pos += this.#chunkSize) {
        const end = Math.min(pos + this.#chunkSize, source.size);
        const res = await this.#send(patch, { ...params, uid }, "", {
          body: chunks.next(end - pos),
          headers: { "content-range": `${pos}-${end}` },
          accept: [409],
        });
        await res.body?.cancel();
        if (res.status === 409) return;
      }
    } finally {
      await reader.cancel().catch(() => {});
    }
    const committed = await commit(uid);
    await committed.body?.cancel();
  }

  /**
   * Sends one request. Returns the response for 200 and the `accept`ed statuses; otherwise reads
   * the body and throws {@linkcode AcceptedError} (202) or {@linkcode HttpStatusError}.
   */
  async #send(
    route: Route,
    params: Record<string, string>,
    query = "",
    options: SendOptions = {},
  ) {
    const { method, template } = route;
    const url = `http://${this.addr}${expand(route, params)}${query}`;
    const accept = options.accept ?? [];
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new Error(`${method} ${url}: timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    let keepTimer = false;
    try {
      const res = await this.#fetch(url, {
        method,
        body: options.body,
        headers: options.headers,
        signal: controller.signal,
        route: template,
        expectedStatus: [202, ...accept],
      });
      if (res.status === 200 || accept.includes(res.status)) {
        if (options.streamBody && res.body) {
          keepTimer = true;
          const body = onBodyDone(res.body, () => clearTimeout(timer));
          return new Response(body, { status: res.status, headers: res.headers });
        }
        return res;
      }
      const text = await res.text().catch(() => "");
      if (res.status === 202) throw new AcceptedError(method, url);
      throw new HttpStatusError(method, url, res.status, text);
    } finally {
      if (!keepTimer) clearTimeout(timer);
    }
  }
}

/**
 * Cuts one sequential stream into consecutive sub-streams of given lengths, so each upload chunk
 * streams straight from the source without being buffered whole.
 */
class ChunkReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  #leftover: Uint8Array | undefined;

  constructor(reader: ReadableStreamDefaultReader<Uint8Array>) {
    this.#reader = reader;
  }

  /** The next `length` bytes as a stream; errors if the source ends early. */
  next(length: number): ReadableStream<Uint8Array> {
    let remaining = length;
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        if (remaining === 0) {
          controller.close();
          return;
        }
        let bytes = this.#leftover;
        this.#leftover = undefined;
        if (!bytes) {
          const { done, value } = await this.#reader.read();
          if (done) {
            controller.error(new Error(`blob source ended ${remaining} bytes early`));
            return;
          }
          bytes = value;
        }
        if (bytes.length > remaining) {
          this.#leftover = bytes.subarray(remaining);
          bytes = bytes.subarray(0, remaining);
        }
        remaining -= bytes.length;
        controller.enqueue(bytes);
        if (remaining === 0) controller.close();
      },
    });
  }
}

/** Backoff of {@linkcode pollAccepted}; defaults are upstream's PollAccepted. */
export interface PollOptions {
  /** First wait (default 1 s). */
  initialMs?: number;
  /** Growth factor (default 1.3). */
  multiplier?: number;
  /** Cap on one wait (default 5 s). */
  maxIntervalMs?: number;
  /** Give up after this long (default 15 min). */
  maxElapsedMs?: number;
  /** Each wait is scaled by 1 ± this (default 0.05). */
  jitter?: number;
  /** Source of randomness (default `Math.random`). */
  random?: () => number;
}

/**
 * Calls `fn` until it stops throwing {@linkcode AcceptedError}, waiting with exponential backoff
 * in between. Other errors are rethrown at once.
 * @throws {Error} when `maxElapsedMs` passes while the origin still answers 202
 */
export async function pollAccepted<T>(fn: () => Promise<T>, options: PollOptions = {}): Promise<T> {
  const initial = options.initialMs ?? 1000;
  const multiplier = options.multiplier ?? 1.3;
  const maxInterval = options.maxIntervalMs ?? 5000;
  const maxElapsed = options.maxElapsedMs ?? 15 * 60_000;
  const jitter = options.jitter ?? 0.05;
  const random = options.random ?? Math.random;
  const started = Date.now();
  let interval = initial;
  for (let attempt = 1;; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (!(error instanceof AcceptedError)) throw error;
      const wait = Math.min(interval, maxInterval) * (1 + jitter * (2 * random() - 1));
      if (Date.now() - started + wait > maxElapsed) {
        throw new Error(`still 202 Accepted after ${attempt} attempts: ${error.message}`, {
          cause: error,
        });
      }
      await new Promise((resolve) => setTimeout(resolve, wait));
      interval *= multiplier;
    }
  }
}

/** Options for {@linkcode OriginClusterClient}. */
export interface OriginClusterClientOptions extends OriginClientOptions {
  /** The origins to ask for ring locations (`host:port`, as in the ring), fixed or a live list. */
  hosts: HostSource;
  /** Backoff while an origin answers 202. */
  poll?: PollOptions;
  /** Source of randomness for host sampling and shuffling (default `Math.random`). */
  random?: () => number;
}

/** Every origin failed; `cause` is the last failure. */
export class AllOriginsUnavailableError extends Error {
  /**
   * @param what the operation that failed
   * @param cause the last origin's error
   */
  constructor(what: string, cause: unknown) {
    super(`${what}: all origins unavailable: ${cause instanceof Error ? cause.message : cause}`, {
      cause,
    });
    this.name = "AllOriginsUnavailableError";
  }
}

/** True for failures after which the next origin is tried (network errors, 429/502/503/504). */
function isRetryable(error: unknown): boolean {
  return !(error instanceof HttpStatusError) || RETRYABLE.has(error.status);
}

/** A client for an origin cluster, with upstream's location, fallback and polling rules. */
export class OriginClusterClient {
  readonly #hosts: HostSource;
  readonly #options: OriginClientOptions;
  readonly #poll: PollOptions;
  readonly #random: () => number;
  readonly #clients = new Map<string, OriginClient>();

  /** @param options see {@linkcode OriginClusterClientOptions} */
  constructor(options: OriginClusterClientOptions) {
    const { hosts, poll, random, ...clientOptions } = options;
    const initial = currentHosts(hosts);
    if (initial.length === 0) {
      throw new RangeError("origin cluster client needs at least one host");
    }
    this.#hosts = hosts;
    this.#options = clientOptions;
    this.#poll = poll ?? {};
    this.#random = random ?? Math.random;
    for (const host of initial) this.client(host); // validates every address up front
  }

  /** The (cached) client for one origin. */
  client(addr: string): OriginClient {
    let client = this.#clients.get(addr);
    if (!client) {
      client = new OriginClient(addr, this.#options);
      this.#clients.set(addr, client);
    }
    return client;
  }

  /** Asks up to 3 random configured hosts for the digest's ring locations; the first answer wins. */
  async locations(digest: Digest): Promise<string[]> {
    let last: unknown;
    for (const host of this.#shuffled(currentHosts(this.#hosts)).slice(0, 3)) {
      try {
        return await this.client(host).locations(digest);
      } catch (error) {
        last = error;
      }
    }
    throw new AllOriginsUnavailableError(`locations of ${digest}`, last);
  }

  /**
   * Uploads a blob to its first reachable ring location, which replicates it to the others and
   * queues the backend write-back. Traced as `origin.store_blob`.
   */
  uploadBlob(namespace: string, digest: Digest, source: BlobSource): Promise<void> {
    return withSpan(SPAN.originStoreBlob, {
      [ATTR.namespace]: namespace,
      [ATTR.digest]: digest.toString(),
      [ATTR.size]: source.size,
      [ATTR.replicate]: true,
    }, async () => {
      const locations = await this.locations(digest);
      setAttributes({ [ATTR.originCount]: locations.length });
      let last: unknown;
      for (const [i, addr] of locations.entries()) {
        try {
          await this.client(addr).uploadBlob(namespace, digest, source);
          setAttributes({ [ATTR.clusterAttempt]: i + 1, [ATTR.clusterOrigin]: addr });
          return;
        } catch (error) {
          if (!isRetryable(error)) throw error;
          last = error;
        }
      }
      throw new AllOriginsUnavailableError(`upload of ${digest}`, last);
    });
  }

  /** Stats a blob on its ring locations in random order; the first origin that answers decides. */
  async stat(
    namespace: string,
    digest: Digest,
    options: StatOptions = {},
  ): Promise<{ size: number } | null> {
    let last: unknown;
    for (const addr of this.#shuffled(await this.locations(digest))) {
      try {
        return await this.client(addr).stat(namespace, digest, options);
      } catch (error) {
        last = error;
      }
    }
    throw new AllOriginsUnavailableError(`stat of ${digest}`, last);
  }

  /**
   * Downloads a blob from its ring locations in order, polling while an origin answers 202.
   * @throws {HttpStatusError} for a 4xx answer (404: not in the cluster nor its backend)
   * @throws {AllOriginsUnavailableError} when every origin failed with 5xx or network errors
   */
  downloadBlob(namespace: string, digest: Digest): Promise<ReadableStream<Uint8Array>> {
    return this.#pollLocations(
      `download of ${digest}`,
      digest,
      (client) => client.download(namespace, digest),
    );
  }

  /** Fetches a blob's metainfo from its ring locations, polling while an origin answers 202. */
  getMetaInfo(namespace: string, digest: Digest): Promise<MetaInfo> {
    return this.#pollLocations(
      `metainfo of ${digest}`,
      digest,
      (client) => client.getMetaInfo(namespace, digest),
    );
  }

  /**
   * Has the cluster send a blob to the origin cluster at `remote`: asked of the blob's ring
   * locations in order, polling while an origin answers 202 (it is fetching the blob).
   * @throws {HttpStatusError} for a 4xx answer (404: not in the cluster nor its backend)
   * @throws {AllOriginsUnavailableError} when every origin failed with 5xx or network errors
   */
  replicateToRemote(namespace: string, digest: Digest, remote: string): Promise<void> {
    return this.#pollLocations(
      `replication of ${digest} to ${remote}`,
      digest,
      (client) => client.replicateToRemote(namespace, digest, remote),
    );
  }

  async #pollLocations<T>(
    what: string,
    digest: Digest,
    fn: (client: OriginClient) => Promise<T>,
  ): Promise<T> {
    let last: unknown;
    for (const addr of await this.locations(digest)) {
      try {
        return await pollAccepted(() => fn(this.client(addr)), {
          random: this.#random,
          ...this.#poll,
        });
      } catch (error) {
        // A definite answer (404, 400, ...) ends the search; 5xx and network errors do not.
        if (error instanceof HttpStatusError && error.status < 500) throw error;
        last = error;
      }
    }
    throw new AllOriginsUnavailableError(what, last);
  }

  #shuffled<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.#random() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }
}
