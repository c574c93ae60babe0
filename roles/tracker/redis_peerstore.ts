/**
 * The shared peer store: announced peers kept in Redis with upstream's key layout, so several
 * trackers (ours or Go ones) serving one cluster see each other's announces
 * (kraken-wire.md §2.4).
 *
 * - Time is cut into windows of `windowSizeMs` (default 1 h). An announce adds the member
 *   `<peerid-hex>:<ip>:<port>:<0|1>` to the set `peerset:<infohash-hex>:<window start, unix s>`
 *   and sets the set to expire `maxWindows` (default 5) window sizes after the window starts.
 * - A read visits the last `maxWindows` windows in random order, taking `SRANDMEMBER` samples
 *   until `n` distinct (peer ID, ip, port) peers are collected; a peer is complete if any window
 *   says so.
 *
 * @module
 */

import { isPeerId, type PeerInfo } from "../../wire/announce.ts";
import type { InfoHash } from "../../storage/metainfo.ts";
import type { PeerStore } from "./peerstore.ts";
import { type RedisClient, RedisReplyError } from "./redis.ts";

/** Upstream's peer set window size. */
export const DEFAULT_WINDOW_SIZE_MS = 60 * 60_000;
/** Upstream's number of windows a peer set lives for and reads look at. */
export const DEFAULT_MAX_WINDOWS = 5;

/** Options for {@linkcode RedisPeerStore}. */
export interface RedisPeerStoreOptions {
  /** The Redis client; {@linkcode RedisPeerStore.close} closes it. */
  client: RedisClient;
  /** Window size in ms, a whole number of seconds (default 1 h). */
  windowSizeMs?: number;
  /** Windows kept and read (default 5). */
  maxWindows?: number;
  /** Clock in epoch ms (default `Date.now`). */
  now?: () => number;
  /** Randomness for the window order (default `Math.random`). */
  random?: () => number;
  /** Called for members that cannot be parsed (written by something else); they are skipped. */
  onBadMember?: (member: string) => void;
}

/** The Redis key of a torrent's peer set for a window. */
export function peerSetKey(infoHash: InfoHash, windowStart: number): string {
  return `peerset:${infoHash.hex}:${windowStart}`;
}

/** The set member of a peer: `<peerid-hex>:<ip>:<port>:<0|1>`. */
export function serializePeerMember(peer: PeerInfo): string {
  return `${peer.peerId}:${peer.ip}:${peer.port}:${peer.complete ? 1 : 0}`;
}

/**
 * Parses a set member. The IP is everything between the peer ID and the port, so an IPv6 address
 * (which upstream's parser rejects) survives the round trip.
 * @returns the peer, or undefined for a malformed member
 */
export function parsePeerMember(member: string): PeerInfo | undefined {
  const m = /^([0-9a-fA-F]{40}):(.+):(\d{1,5}):([01])$/.exec(member);
  if (!m) return undefined;
  const peerId = m[1].toLowerCase();
  const port = Number(m[3]);
  if (!isPeerId(peerId) || port < 1 || port > 65535) return undefined;
  return { peerId, ip: m[2], port, origin: false, complete: m[4] === "1" };
}

/** A peer store in Redis shared by the trackers of a cluster. */
export class RedisPeerStore implements PeerStore {
  /** Always `redis`. */
  readonly type = "redis";
  readonly #client: RedisClient;
  readonly #windowS: number;
  readonly #maxWindows: number;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #onBadMember: (member: string) => void;

  /** @param options see {@linkcode RedisPeerStoreOptions} */
  constructor(options: RedisPeerStoreOptions) {
    const windowMs = options.windowSizeMs ?? DEFAULT_WINDOW_SIZE_MS;
    if (!Number.isInteger(windowMs / 1000) || windowMs < 1000) {
      throw new RangeError(`windowSizeMs must be a whole number of seconds, got ${windowMs}`);
    }
    this.#client = options.client;
    this.#windowS = windowMs / 1000;
    this.#maxWindows = options.maxWindows ?? DEFAULT_MAX_WINDOWS;
    if (!Number.isInteger(this.#maxWindows) || this.#maxWindows < 1) {
      throw new RangeError(`maxWindows must be a positive integer, got ${this.#maxWindows}`);
    }
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#onBadMember = options.onBadMember ?? (() => {});
  }

  /** Start (unix seconds) of the current window. */
  #currentWindow(): number {
    const t = Math.floor(this.#now() / 1000);
    return t - (t % this.#windowS);
  }

  /** Adds the peer to the current window's set and (re)sets the set's expiry. */
  async updatePeer(infoHash: InfoHash, peer: PeerInfo): Promise<void> {
    const window = this.#currentWindow();
    const key = peerSetKey(infoHash, window);
    const replies = await this.#client.pipeline([
      ["SADD", key, serializePeerMember(peer)],
      ["EXPIREAT", key, window + this.#windowS * this.#maxWindows],
    ]);
    const failed = replies.find((r) => r instanceof RedisReplyError);
    if (failed) throw failed;
  }

  /** Up to `n` random peers from the live windows. */
  async getPeers(infoHash: InfoHash, n: number): Promise<PeerInfo[]> {
    const current = this.#currentWindow();
    const windows = Array.from({ length: this.#maxWindows }, (_, i) => current - i * this.#windowS);
    for (let i = windows.length - 1; i > 0; i--) {
      const j = Math.floor(this.#random() * (i + 1));
      [windows[i], windows[j]] = [windows[j], windows[i]];
    }
    const selected = new Map<string, PeerInfo>();
    for (const window of windows) {
      if (selected.size >= n) break;
      const reply = await this.#client.command(
        "SRANDMEMBER",
        peerSetKey(infoHash, window),
        n - selected.size,
      );
      if (!Array.isArray(reply)) continue;
      for (const member of reply) {
        const peer = typeof member === "string" ? parsePeerMember(member) : undefined;
        if (!peer) {
          this.#onBadMember(String(member));
          continue;
        }
        const id = `${peer.peerId}:${peer.ip}:${peer.port}`;
        const seen = selected.get(id);
        if (seen) seen.complete ||= peer.complete;
        else selected.set(id, peer);
      }
    }
    return [...selected.values()];
  }

  /** `PING`s Redis. */
  async probe(): Promise<void> {
    await this.#client.command("PING");
  }

  /** Closes the Redis client. */
  close(): Promise<void> {
    return this.#client.close();
  }
}
