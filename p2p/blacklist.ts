/**
 * The (peer, info hash) blacklist that keeps a node from redialing a peer that just failed it.
 *
 * A pair is blacklisted when an outgoing handshake fails or an active connection closes, for
 * `durationMs` (30 s by default, upstream's `blacklist_duration`). Only outgoing dials consult
 * it; incoming connections are not checked. A torrent's entries are cleared when it completes.
 * Expiry is computed from timestamps on access, so the blacklist holds no timers.
 *
 * @module
 */

/** Options for {@linkcode Blacklist}. */
export interface BlacklistOptions {
  /** How long an entry lasts, in milliseconds. Default 30 000. */
  durationMs?: number;
  /** Turns blacklisting off (upstream's `disable_blacklist`). Default false. */
  disabled?: boolean;
  /** Clock in milliseconds; injectable for tests. Default `Date.now`. */
  now?: () => number;
}

/** Time-limited set of (peer id, info hash) pairs, shared by all torrents of a node. */
export class Blacklist {
  #durationMs: number;
  #disabled: boolean;
  #now: () => number;
  // infoHash → peerId → expiry time.
  #entries = new Map<string, Map<string, number>>();

  /** Creates an empty blacklist. */
  constructor(options: BlacklistOptions = {}) {
    this.#durationMs = options.durationMs ?? 30_000;
    this.#disabled = options.disabled ?? false;
    this.#now = options.now ?? Date.now;
  }

  /** Blacklists `peerId` for `infoHash` from now on, extending an existing entry. */
  add(peerId: string, infoHash: string): void {
    if (this.#disabled) return;
    let peers = this.#entries.get(infoHash);
    if (!peers) this.#entries.set(infoHash, peers = new Map());
    peers.set(peerId, this.#now() + this.#durationMs);
  }

  /** Whether `peerId` is currently blacklisted for `infoHash`. */
  has(peerId: string, infoHash: string): boolean {
    const peers = this.#entries.get(infoHash);
    const until = peers?.get(peerId);
    if (peers === undefined || until === undefined) return false;
    if (until > this.#now()) return true;
    peers.delete(peerId);
    if (peers.size === 0) this.#entries.delete(infoHash);
    return false;
  }

  /** The (peer, torrent) pairs blacklisted now; expired entries are dropped on the way. */
  get size(): number {
    const now = this.#now();
    let n = 0;
    for (const [infoHash, peers] of this.#entries) {
      for (const [peerId, until] of peers) {
        if (until > now) n++;
        else peers.delete(peerId);
      }
      if (peers.size === 0) this.#entries.delete(infoHash);
    }
    return n;
  }

  /** Forgets every entry for `infoHash`, as when the torrent completes. */
  clear(infoHash: string): void {
    this.#entries.delete(infoHash);
  }
}
