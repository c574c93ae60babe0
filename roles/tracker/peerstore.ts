/**
 * The tracker's peer store: which agents announced which torrent (kraken-wire.md §2.4).
 *
 * {@linkcode PeerStore} is the seam; {@linkcode MemoryPeerStore} is upstream's local store (the
 * default: one tracker's own memory), and `redis_peerstore.ts` is the shared store several
 * trackers of a cluster use.
 *
 * The memory store keeps one entry per (info hash, peer ID) with the announced address, the
 * complete flag and an expiry that every announce pushes out by the TTL (upstream: 5 h). Reads
 * return a uniformly random sample of the live entries. A periodic sweep drops expired entries and
 * empty torrents so memory follows the live set. Unlike upstream, which may hand out entries that
 * just expired until the next sweep, reads skip expired entries.
 *
 * @module
 */

import type { PeerInfo } from "../../wire/announce.ts";
import type { InfoHash } from "../../storage/metainfo.ts";
import { systemTimers, type Timers } from "../../common/timers.ts";

/** Where the tracker keeps announced peers. */
export interface PeerStore {
  /** `memory` or `redis`, for span attributes and logs. */
  readonly type: string;
  /** Records (or refreshes) a peer of a torrent. */
  updatePeer(infoHash: InfoHash, peer: PeerInfo): Promise<void>;
  /**
   * Returns up to `n` random peers of a torrent, each with `origin: false` (origins come from the
   * origin store, never from here).
   */
  getPeers(infoHash: InfoHash, n: number): Promise<PeerInfo[]>;
  /** Checks that the store answers (readiness); rejects when it does not. */
  probe(): Promise<void>;
  /** Releases timers and connections. */
  close(): Promise<void>;
}

/** Upstream's TTL of a local peer entry. */
export const DEFAULT_PEER_TTL_MS = 5 * 60 * 60_000;
/** Upstream's period of the expired-entry sweep. */
export const DEFAULT_SWEEP_INTERVAL_MS = 5 * 60_000;

/** Options for {@linkcode MemoryPeerStore}. */
export interface MemoryPeerStoreOptions {
  /** How long an announce keeps a peer listed (default 5 h). */
  ttlMs?: number;
  /** Period of the sweep of expired entries; 0 disables the timer (default 5 min). */
  sweepIntervalMs?: number;
  /** Clock in epoch ms (default `Date.now`). */
  now?: () => number;
  /** Timers of the sweep (default {@linkcode systemTimers}). */
  timers?: Timers;
  /** Randomness for sampling (default `Math.random`). */
  random?: () => number;
}

interface Entry {
  ip: string;
  port: number;
  complete: boolean;
  expiresAt: number;
}

/** The in-memory peer store of a single tracker. */
export class MemoryPeerStore implements PeerStore {
  /** Always `memory`. */
  readonly type = "memory";
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #random: () => number;
  // info hash hex → peer ID hex → entry
  readonly #torrents = new Map<string, Map<string, Entry>>();
  readonly #timers: Timers;
  readonly #sweeper: number | undefined;

  /** @param options see {@linkcode MemoryPeerStoreOptions} */
  constructor(options: MemoryPeerStoreOptions = {}) {
    this.#ttlMs = options.ttlMs ?? DEFAULT_PEER_TTL_MS;
    if (!(this.#ttlMs > 0)) throw new RangeError(`ttlMs must be positive, got ${this.#ttlMs}`);
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    const sweepMs = options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
    this.#timers = options.timers ?? systemTimers;
    if (sweepMs > 0) this.#sweeper = this.#timers.setInterval(() => this.sweep(), sweepMs);
  }

  /** Records a peer; its entry lives `ttlMs` from now. */
  updatePeer(infoHash: InfoHash, peer: PeerInfo): Promise<void> {
    let peers = this.#torrents.get(infoHash.hex);
    if (!peers) {
      peers = new Map();
      this.#torrents.set(infoHash.hex, peers);
    }
    peers.set(peer.peerId, {
      ip: peer.ip,
      port: peer.port,
      complete: peer.complete,
      expiresAt: this.#now() + this.#ttlMs,
    });
    return Promise.resolve();
  }

  /** Up to `n` random live peers of the torrent. */
  getPeers(infoHash: InfoHash, n: number): Promise<PeerInfo[]> {
    const peers = this.#torrents.get(infoHash.hex);
    if (!peers || n <= 0) return Promise.resolve([]);
    const now = this.#now();
    const live: PeerInfo[] = [];
    for (const [peerId, e] of peers) {
      if (e.expiresAt > now) {
        live.push({ peerId, ip: e.ip, port: e.port, origin: false, complete: e.complete });
      }
    }
    // Partial Fisher–Yates: the first `k` slots end up a uniform random sample.
    const k = Math.min(n, live.length);
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(this.#random() * (live.length - i));
      [live[i], live[j]] = [live[j], live[i]];
    }
    return Promise.resolve(live.slice(0, k));
  }

  /** Drops expired entries and torrents left without entries; returns how many entries went. */
  sweep(): number {
    const now = this.#now();
    let removed = 0;
    for (const [hash, peers] of this.#torrents) {
      for (const [peerId, e] of peers) {
        if (e.expiresAt <= now) {
          peers.delete(peerId);
          removed++;
        }
      }
      if (peers.size === 0) this.#torrents.delete(hash);
    }
    return removed;
  }

  /** Number of torrents with at least one entry (expired or not) held right now. */
  get torrentCount(): number {
    return this.#torrents.size;
  }

  /** Memory always answers. */
  probe(): Promise<void> {
    return Promise.resolve();
  }

  /** Stops the sweep timer. */
  close(): Promise<void> {
    if (this.#sweeper !== undefined) this.#timers.clearInterval(this.#sweeper);
    return Promise.resolve();
  }
}
