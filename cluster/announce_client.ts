/**
 * The client agents use to talk to trackers: {@linkcode AnnounceClient} announces
 * (`POST /announce/{infohash}`) and fetches metainfo through the tracker, with upstream's tracker
 * choice (rendezvous ring of tracker addresses keyed by the digest, next tracker on network
 * errors, passive health filter) and 202 polling for metainfo. The routes and JSON are
 * `wire/announce.ts`'s, which the tracker server uses too.
 *
 * @example
 * ```ts
 * import { AnnounceClient } from "./announce_client.ts";
 * import { parseDigest } from "../storage/digest.ts";
 *
 * const client = new AnnounceClient({ trackers: ["127.0.0.1:15003"] });
 * const digest = parseDigest("sha256:" + "ab".repeat(32));
 * const mi = await client.getMetaInfo("library/ubuntu", digest);
 * const { peers, intervalMs } = await client.announce({
 *   digest,
 *   infoHash: mi.infoHash,
 *   peer: { peerId: "11".repeat(20), ip: "10.0.0.5", port: 16001 },
 *   complete: false,
 * });
 * ```
 *
 * @module
 */

import { HttpStatusError } from "../http/status_error.ts";
import type { Digest } from "../storage/digest.ts";
import { type InfoHash, MetaInfo } from "../storage/metainfo.ts";
import {
  ATTR,
  setAttributes,
  SPAN,
  tracedFetch,
  type TracedFetchOptions,
  withSpan,
} from "../tracing/mod.ts";
import { AcceptedError, pollAccepted, type PollOptions } from "./blob_client.ts";
import { pathEscape } from "./escape.ts";
import { HashRing } from "./hashring.ts";
import { PassiveHealthFilter } from "./healthcheck.ts";
import { currentHosts, type HostSource } from "./hostlist.ts";
import {
  ANNOUNCE,
  type AnnounceResponseBody,
  encodeAnnounceRequest,
  isPeerId,
  parseAnnounceResponse,
  type PeerInfo,
  TRACKER_METAINFO,
} from "../wire/announce.ts";
import { expand, type Route } from "../wire/route.ts";

/** The fetch the client uses: `tracedFetch`'s signature (plain `fetch` ignores the extra keys). */
export type TrackerFetch = (url: string, init: TracedFetchOptions) => Promise<Response>;

/** No tracker could be reached for a request; `cause` is the last network error. */
export class TrackersUnavailableError extends Error {
  /**
   * @param what the operation that failed
   * @param cause the last tracker's error
   */
  constructor(what: string, cause: unknown) {
    super(`${what}: no tracker reachable: ${cause instanceof Error ? cause.message : cause}`, {
      cause,
    });
    this.name = "TrackersUnavailableError";
  }
}

/** Upstream's per-request timeout of announce and metainfo requests. */
export const DEFAULT_TRACKER_TIMEOUT_MS = 10_000;

/** Options for {@linkcode AnnounceClient}. */
export interface AnnounceClientOptions {
  /**
   * Tracker addresses (`host:port`), spelled as on every other agent (they are ring labels); a
   * {@linkcode HostList} re-forms the ring when its members change.
   */
  trackers: HostSource;
  /** The fetch to use (default {@linkcode tracedFetch}). */
  fetch?: TrackerFetch;
  /** Ring positions tried per digest (default 3, upstream's `max_replica`). */
  maxReplica?: number;
  /** Health filter fed with network failures (default: upstream's 3 failures in 5 min). */
  health?: PassiveHealthFilter;
  /** Per-request timeout in ms, body included (default 10 s). */
  timeoutMs?: number;
  /**
   * Backoff while the tracker answers 202 for metainfo (default upstream's: 1 s ×1.3 up to 5 s).
   * `maxElapsedMs` bounds the whole wait (default 15 min).
   */
  poll?: PollOptions;
}

/** What {@linkcode AnnounceClient.announce} sends. */
export interface AnnounceParams {
  /** The blob's digest; it picks the tracker. */
  digest: Digest;
  /** The torrent's info hash. */
  infoHash: InfoHash;
  /** This peer's identity and announced P2P address. */
  peer: { peerId: string; ip: string; port: number; origin?: boolean };
  /** Whether this peer has the whole blob (a complete peer gets no handout). */
  complete: boolean;
  /** The namespace being downloaded, recorded on the span only (the protocol does not carry it). */
  namespace?: string;
}

/** What {@linkcode AnnounceClient.announce} returns. */
export interface AnnounceResult {
  /** The handout in priority order, without this peer itself. */
  peers: PeerInfo[];
  /**
   * The tracker's announce interval in ms, as sent. Upstream agents replace 0 and values above
   * 60 s by their 5 s default (kraken-wire.md §2.2); that is the scheduler's business.
   */
  intervalMs: number;
  /** The tracker that answered. */
  tracker: string;
}

/**
 * True for failures that mean "this tracker is unreachable" rather than "it answered": fetch's
 * TypeError for connection failures, and timeouts or aborts.
 */
function isNetworkError(error: unknown): boolean {
  return error instanceof TypeError ||
    (error instanceof DOMException &&
      (error.name === "TimeoutError" || error.name === "AbortError"));
}

/** The announce and metainfo client of an agent. */
export class AnnounceClient {
  readonly #trackers: HostSource;
  readonly #ring: HashRing;
  #ringHosts: readonly string[];
  readonly #health: PassiveHealthFilter;
  readonly #fetch: TrackerFetch;
  readonly #timeoutMs: number;
  readonly #poll: PollOptions;

  /** @param options see {@linkcode AnnounceClientOptions} */
  constructor(options: AnnounceClientOptions) {
    const trackers = currentHosts(options.trackers);
    if (trackers.length === 0) throw new RangeError("announce client needs a tracker");
    for (const addr of trackers) {
      if (!/^(\[[^\]]+\]|[^\s/:]+):\d{1,5}$/.test(addr)) {
        throw new TypeError(`tracker address must be host:port, got ${JSON.stringify(addr)}`);
      }
    }
    this.#health = options.health ?? new PassiveHealthFilter();
    this.#trackers = options.trackers;
    this.#ringHosts = trackers;
    this.#ring = new HashRing(trackers, {
      maxReplica: options.maxReplica,
      isHealthy: this.#health.isHealthy,
    });
    this.#fetch = options.fetch ?? tracedFetch;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TRACKER_TIMEOUT_MS;
    this.#poll = options.poll ?? {};
  }

  /**
   * Announces a torrent (`POST /announce/{infohash}`) to the first reachable tracker of the
   * digest's ring locations, in span `announce.request`.
   * @throws {HttpStatusError} when a tracker answers non-200 (500 `no peers available` included)
   * @throws {TrackersUnavailableError} when no tracker could be reached
   */
  async announce(params: AnnounceParams): Promise<AnnounceResult> {
    const peer: PeerInfo = {
      peerId: params.peer.peerId,
      ip: params.peer.ip,
      port: params.peer.port,
      origin: params.peer.origin ?? false,
      complete: params.complete,
    };
    if (!isPeerId(peer.peerId)) {
      throw new TypeError(`peerId must be 40 lowercase hex characters, got ${peer.peerId}`);
    }
    const body = encodeAnnounceRequest({ digest: params.digest, infoHash: params.infoHash, peer });
    return await withSpan(SPAN.announceRequest, {
      [ATTR.infohash]: params.infoHash.hex,
      [ATTR.complete]: params.complete,
      [ATTR.digest]: params.digest.toString(),
      ...(params.namespace !== undefined ? { [ATTR.namespace]: params.namespace } : {}),
    }, () =>
      this.#onTrackers(`announce of ${params.digest}`, params.digest, async (addr) => {
        setAttributes({ [ATTR.trackerAddr]: addr });
        const res = await this.#send(addr, ANNOUNCE, { infohash: params.infoHash.hex }, {
          body,
          headers: { "content-type": "application/json" },
        });
        let parsed: AnnounceResponseBody;
        try {
          parsed = parseAnnounceResponse(JSON.parse(res));
        } catch (error) {
          throw new Error(`announce to ${addr}: bad response: ${(error as Error).message}`);
        }
        const peers = parsed.peers.filter((p) => p.peerId !== peer.peerId);
        setAttributes({
          [ATTR.peerCount]: peers.length,
          [ATTR.announceIntervalMs]: parsed.intervalMs,
        });
        return { peers, intervalMs: parsed.intervalMs, tracker: addr };
      }));
  }

  /**
   * Downloads a blob's metainfo through the tracker
   * (`GET /namespace/{ns}/blobs/{digest}/metainfo`), polling while it answers 202 (the origin is
   * fetching the blob from its backend), in span `metainfo.request`.
   * @throws {HttpStatusError} 404 when the cluster does not know the blob; other statuses as sent
   * @throws {Error} when the 202 polling exceeds `poll.maxElapsedMs`
   * @throws {TrackersUnavailableError} when no tracker could be reached
   */
  getMetaInfo(namespace: string, digest: Digest): Promise<MetaInfo> {
    const params = { namespace: pathEscape(namespace), digest: digest.toString() };
    return withSpan(
      SPAN.metainfoRequest,
      { [ATTR.namespace]: namespace, [ATTR.digest]: digest.toString() },
      () =>
        this.#onTrackers(`metainfo of ${digest}`, digest, async (addr) => {
          setAttributes({ [ATTR.trackerAddr]: addr });
          let attempts = 0;
          const text = await pollAccepted(() => {
            attempts++;
            return this.#send(addr, TRACKER_METAINFO, params);
          }, this.#poll);
          setAttributes({ [ATTR.trackerAttempts]: attempts });
          const mi = MetaInfo.deserialize(text);
          if (!mi.digest.equals(digest)) {
            throw new Error(`metainfo from ${addr} names ${mi.digest}, asked for ${digest}`);
          }
          return mi;
        }),
    );
  }

  /** Runs `fn` on the digest's trackers in ring order until one is reachable. */
  async #onTrackers<T>(what: string, digest: Digest, fn: (addr: string) => Promise<T>): Promise<T> {
    const hosts = currentHosts(this.#trackers);
    if (hosts !== this.#ringHosts) {
      this.#ring.setHosts(hosts);
      this.#ringHosts = hosts;
    }
    let last: unknown;
    for (const addr of this.#ring.locations(digest.hex)) {
      try {
        return await fn(addr);
      } catch (error) {
        if (!isNetworkError(error)) throw error;
        this.#health.failed(addr);
        last = error;
      }
    }
    throw new TrackersUnavailableError(what, last);
  }

  /** One request; returns the body text of a 200, throws otherwise. */
  async #send(
    addr: string,
    route: Route,
    params: Record<string, string>,
    init: { body?: string; headers?: HeadersInit } = {},
  ): Promise<string> {
    const { method, template } = route;
    const url = `http://${addr}${expand(route, params)}`;
    const signal = AbortSignal.timeout(this.#timeoutMs);
    const res = await this.#fetch(url, {
      method,
      route: template,
      signal,
      expectedStatus: [202],
      ...init,
    });
    const text = await res.text();
    if (res.status === 200) return text;
    if (res.status === 202) throw new AcceptedError(method, url);
    throw new HttpStatusError(method, url, res.status, text);
  }
}
