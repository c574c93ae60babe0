/**
 * The tracker's origin store: which origins seed a blob (kraken-wire.md §2.5). Origins never
 * announce; the tracker finds them itself and adds them to every handout.
 *
 * For a digest the store asks the origin cluster for the blob's ring locations
 * (`GET /blobs/{digest}/locations` on up to 3 random configured origins), then each location for
 * its P2P identity (`GET /internal/peercontext`, a PeerContext JSON). Each origin becomes a
 * {@linkcode PeerInfo} with `origin: true, complete: true`. Answers are cached with upstream's
 * TTLs — locations 10 s (1 s after an error), peer contexts 10 s (1 min for an origin that is
 * down, so a dead origin costs one timeout a minute, not one per announce) — and concurrent
 * lookups of the same key share one request.
 *
 * @module
 */

import { HttpStatusError } from "../../http/status_error.ts";
import type { PeerInfo } from "../../wire/announce.ts";
import { parsePeerContext, PEER_CONTEXT, type PeerContext } from "../../wire/peercontext.ts";
import type { Digest } from "../../storage/digest.ts";
import {
  ATTR,
  type Attributes,
  SPAN,
  tracedFetch,
  type TracedFetchOptions,
  withSpan,
} from "../../tracing/mod.ts";

/** Finds the origins that seed a blob. */
export interface OriginStore {
  /**
   * The origins of a digest as peers (`origin: true, complete: true`).
   * @throws {Error} when the locations are unknown or every origin is unavailable
   */
  getOrigins(digest: Digest): Promise<PeerInfo[]>;
}

/** What the store needs from the origin cluster client (`OriginClusterClient` has it). */
export interface OriginLocator {
  /** The ring locations of a digest, asked of up to 3 random configured origins. */
  locations(digest: Digest): Promise<string[]>;
}

/** Options for {@linkcode HttpOriginStore}; TTL defaults are upstream's. */
export interface HttpOriginStoreOptions {
  /** Resolves a digest's ring locations. */
  cluster: OriginLocator;
  /** The fetch for `/internal/peercontext` (default {@linkcode tracedFetch}). */
  fetch?: (url: string, init: TracedFetchOptions) => Promise<Response>;
  /** Timeout of a peer context request (default 5 s). */
  timeoutMs?: number;
  /** Cache time of a digest's locations (default 10 s). */
  locationsTtlMs?: number;
  /** Cache time of a failed locations lookup (default 1 s). */
  locationsErrorTtlMs?: number;
  /** Cache time of an origin's peer context (default 10 s). */
  originContextTtlMs?: number;
  /** Cache time of an origin that did not answer (default 1 min). */
  originUnavailableTtlMs?: number;
  /** Clock in epoch ms (default `Date.now`). */
  now?: () => number;
  /** Called when an origin's peer context cannot be fetched. */
  onUnavailable?: (addr: string, error: unknown) => void;
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** Entries kept before expired ones are swept on insert. */
const SWEEP_THRESHOLD = 4096;

/** A cache of asynchronous lookups with one TTL for successes and another for failures. */
class LookupCache<T> {
  readonly #entries = new Map<string, { expiresAt: number; outcome: Promise<Outcome<T>> }>();
  readonly #now: () => number;
  readonly #ttlMs: number;
  readonly #errorTtlMs: number;

  constructor(now: () => number, ttlMs: number, errorTtlMs: number) {
    this.#now = now;
    this.#ttlMs = ttlMs;
    this.#errorTtlMs = errorTtlMs;
  }

  /** The cached outcome for `key`, or a fresh lookup shared by every caller until it expires. */
  get(key: string, lookup: () => Promise<T>): { outcome: Promise<Outcome<T>>; cached: boolean } {
    const hit = this.#entries.get(key);
    if (hit && hit.expiresAt > this.#now()) return { outcome: hit.outcome, cached: true };
    if (this.#entries.size >= SWEEP_THRESHOLD) this.#sweep();
    // Pending lookups never expire; the TTL starts when the answer arrives.
    const entry = { expiresAt: Infinity } as { expiresAt: number; outcome: Promise<Outcome<T>> };
    entry.outcome = lookup().then(
      (value): Outcome<T> => {
        entry.expiresAt = this.#now() + this.#ttlMs;
        return { ok: true, value };
      },
      (error): Outcome<T> => {
        entry.expiresAt = this.#now() + this.#errorTtlMs;
        return { ok: false, error };
      },
    );
    this.#entries.set(key, entry);
    return { outcome: entry.outcome, cached: false };
  }

  #sweep(): void {
    const now = this.#now();
    for (const [key, e] of this.#entries) if (e.expiresAt <= now) this.#entries.delete(key);
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The origin store over the origin cluster's HTTP API. */
export class HttpOriginStore implements OriginStore {
  readonly #cluster: OriginLocator;
  readonly #fetch: (url: string, init: TracedFetchOptions) => Promise<Response>;
  readonly #timeoutMs: number;
  readonly #locations: LookupCache<string[]>;
  readonly #contexts: LookupCache<PeerContext>;
  readonly #onUnavailable: (addr: string, error: unknown) => void;

  /** @param options see {@linkcode HttpOriginStoreOptions} */
  constructor(options: HttpOriginStoreOptions) {
    const now = options.now ?? Date.now;
    this.#cluster = options.cluster;
    this.#fetch = options.fetch ?? tracedFetch;
    this.#timeoutMs = options.timeoutMs ?? 5_000;
    this.#locations = new LookupCache(
      now,
      options.locationsTtlMs ?? 10_000,
      options.locationsErrorTtlMs ?? 1_000,
    );
    this.#contexts = new LookupCache(
      now,
      options.originContextTtlMs ?? 10_000,
      options.originUnavailableTtlMs ?? 60_000,
    );
    this.#onUnavailable = options.onUnavailable ?? (() => {});
  }

  /** The origins of a digest, in span `originstore.get_origins`. */
  getOrigins(digest: Digest): Promise<PeerInfo[]> {
    // Keyed stores, not computed-key literals (about 0.7 µs a key in a running role).
    const attributes: Attributes = {};
    attributes[ATTR.digest] = digest.toString();
    return withSpan(SPAN.originstoreGetOrigins, attributes, async (span) => {
      const { outcome, cached } = this.#locations.get(
        digest.hex,
        () => this.#cluster.locations(digest),
      );
      const located = await outcome;
      span.setAttribute(ATTR.originstoreCached, cached);
      if (!located.ok) throw new Error(`origin locations: ${message(located.error)}`);
      const results = await Promise.all(located.value.map(async (addr) => {
        const { outcome } = this.#contexts.get(addr, () => this.#peerContext(addr));
        return { addr, result: await outcome };
      }));
      const origins: PeerInfo[] = [];
      const errors: string[] = [];
      for (const { addr, result } of results) {
        if (result.ok) {
          const pc = result.value;
          origins.push({
            peerId: pc.peerId,
            ip: pc.ip,
            port: pc.port,
            origin: true,
            complete: true,
          });
        } else {
          errors.push(`${addr}: ${message(result.error)}`);
        }
      }
      span.setAttribute(ATTR.originCount, origins.length);
      span.setAttribute(ATTR.originstoreUnavailable, errors.length);
      if (origins.length === 0) throw new Error(`all origins unavailable: ${errors.join(", ")}`);
      return origins;
    });
  }

  async #peerContext(addr: string): Promise<PeerContext> {
    const url = `http://${addr}${PEER_CONTEXT.template}`;
    try {
      const res = await this.#fetch(url, {
        method: PEER_CONTEXT.method,
        route: PEER_CONTEXT.template,
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      const text = await res.text();
      if (res.status !== 200) {
        throw new HttpStatusError("GET", url, res.status, text);
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (error) {
        throw new Error(`GET ${url}: invalid JSON: ${message(error)}`);
      }
      return parsePeerContext(json);
    } catch (error) {
      this.#onUnavailable(addr, error);
      throw error;
    }
  }
}
