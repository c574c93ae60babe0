/**
 * Rendezvous (highest-random-weight) hash ring, byte-compatible with upstream
 * Kraken's `lib/hashring` + `lib/hrw`, so a digest maps to the same origins or
 * trackers whichever implementation computes it.
 *
 * The key is the digest's ShardID (its first 4 hex characters decoded into 2
 * bytes). Each member's score is derived from `murmur3_x64_128(key || label).h1`
 * and members are ordered by descending score.
 *
 * ```ts
 * import { HashRing } from "./hashring.ts";
 * const ring = new HashRing(["origin1:15002", "origin2:15002", "origin3:15002"]);
 * ring.locations("ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb");
 * // ["origin3:15002", "origin2:15002", "origin1:15002"]
 * ```
 *
 * @module
 */

import { murmur3x64_128Words } from "./murmur3.ts";

/** Decides whether a ring member may be returned by {@linkcode HashRing.locations}. */
export type HealthFilter = (host: string) => boolean;

/** Weight upstream gives every ring member. */
export const DEFAULT_WEIGHT = 100;
/** Upstream default for `hashring.max_replica`. */
export const DEFAULT_MAX_REPLICA = 3;

const TWO_POW_32 = 0x100000000;
const TWO_POW_53 = 2 ** 53;

/**
 * Returns the 2-byte ring key (ShardID) of a digest given as hex.
 *
 * @param digestHex the digest's hex (at least 4 hex characters; no `sha256:` prefix)
 * @throws {TypeError} when the first 4 characters are not hex
 */
export function shardKey(digestHex: string): Uint8Array {
  if (!/^[0-9a-fA-F]{4}/.test(digestHex)) {
    throw new TypeError(`invalid digest hex for shard key: ${JSON.stringify(digestHex)}`);
  }
  return Uint8Array.of(
    parseInt(digestHex.slice(0, 2), 16),
    parseInt(digestHex.slice(2, 4), 16),
  );
}

/** Maps the first 64-bit half of a murmur3 digest to 53 uniform bits. */
function low53(words: Uint32Array): number {
  return (words[0] & 0x1fffff) * TWO_POW_32 + words[1];
}

/**
 * Computes a member's rendezvous score for a key, as upstream does:
 * `x = (h1 & (2^53-1)) / 2^53`, `score = -weight / ln(x)`.
 *
 * @param input `key || label` bytes
 * @param weight member weight
 */
export function rendezvousScore(input: Uint8Array, weight = DEFAULT_WEIGHT): number {
  const words = murmur3x64_128Words(input);
  let v = low53(words);
  if (v === 0) {
    // A zero would give ln(0); upstream re-hashes the big-endian h1 once.
    const h1 = new Uint8Array(8);
    const view = new DataView(h1.buffer);
    view.setUint32(0, words[0]);
    view.setUint32(4, words[1]);
    v = low53(murmur3x64_128Words(h1));
  }
  return -weight / Math.log(v / TWO_POW_53);
}

/** Options for {@linkcode HashRing}. */
export interface HashRingOptions {
  /** Positions examined by `locations` before it may stop (default 3). */
  maxReplica?: number;
  /** Health filter applied by `locations` (default: every member is healthy). */
  isHealthy?: HealthFilter;
  /** Weight of every member (default 100, as upstream). */
  weight?: number;
}

interface Member {
  label: string;
  // `key || label`; the first two bytes are overwritten with each lookup's key.
  input: Uint8Array;
}

/** A rendezvous hash ring over host labels (`host:port` strings). */
export class HashRing {
  readonly #maxReplica: number;
  readonly #isHealthy: HealthFilter;
  readonly #weight: number;
  #members: Member[] = [];

  /**
   * @param hosts member labels; they must be spelled byte-identically on every
   *   node of the cluster, since the label is part of the hash input
   * @param options see {@linkcode HashRingOptions}
   */
  constructor(hosts: Iterable<string>, options: HashRingOptions = {}) {
    const maxReplica = options.maxReplica ?? DEFAULT_MAX_REPLICA;
    if (!Number.isInteger(maxReplica) || maxReplica < 1) {
      throw new RangeError(`maxReplica must be a positive integer, got ${maxReplica}`);
    }
    this.#maxReplica = maxReplica;
    this.#isHealthy = options.isHealthy ?? (() => true);
    this.#weight = options.weight ?? DEFAULT_WEIGHT;
    this.setHosts(hosts);
  }

  /** Current member labels, in the order they were given (duplicates removed). */
  get hosts(): string[] {
    return this.#members.map((m) => m.label);
  }

  /**
   * Replaces the member list (for example after a DNS refresh).
   *
   * @param hosts member labels
   */
  setHosts(hosts: Iterable<string>): void {
    const enc = new TextEncoder();
    const members: Member[] = [];
    for (const label of new Set(hosts)) {
      const bytes = enc.encode(label);
      const input = new Uint8Array(2 + bytes.length);
      input.set(bytes, 2);
      members.push({ label, input });
    }
    this.#members = members;
  }

  /**
   * Reports whether a label is a member of the ring.
   *
   * @param host label to look up
   */
  contains(host: string): boolean {
    return this.#members.some((m) => m.label === host);
  }

  /**
   * Returns every member ordered by descending score for a digest, ignoring health.
   *
   * @param digestHex the digest's hex
   */
  ordered(digestHex: string): string[] {
    const key = shardKey(digestHex);
    const scored = this.#members.map((m) => {
      m.input[0] = key[0];
      m.input[1] = key[1];
      return { label: m.label, score: rendezvousScore(m.input, this.#weight) };
    });
    // Ties are practically impossible; the label tie-break only keeps the
    // order deterministic if one ever happens.
    scored.sort((a, b) =>
      b.score - a.score || (a.label < b.label ? -1 : a.label > b.label ? 1 : 0)
    );
    return scored.map((s) => s.label);
  }

  /**
   * Returns the healthy members responsible for a digest, as upstream's
   * `Locations`: walk the ordered members keeping the healthy ones, and stop
   * once `maxReplica` positions were examined and at least one healthy member
   * was found. If no member is healthy, the top member alone is returned.
   * An empty ring yields an empty list.
   *
   * @param digestHex the digest's hex
   */
  locations(digestHex: string): string[] {
    const order = this.ordered(digestHex);
    const result: string[] = [];
    for (let i = 0; i < order.length; i++) {
      if (this.#isHealthy(order[i])) result.push(order[i]);
      if (i + 1 >= this.#maxReplica && result.length > 0) break;
    }
    if (result.length === 0 && order.length > 0) return [order[0]];
    return result;
  }
}
