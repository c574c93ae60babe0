/**
 * The announce protocol between agents and trackers (kraken-wire.md §2.1), both sides of its JSON
 * and the client agents use.
 *
 * - Wire codec: {@linkcode PeerInfo} and the announce request/response bodies in upstream's exact
 *   JSON — peer IDs and info hashes as arrays of 20 integers, the interval as integer nanoseconds,
 *   `null` for an empty peer list, keys in Go's field order. The tracker server decodes and
 *   encodes with the same functions, so both ends agree byte for byte.
 * - {@linkcode AnnounceClient}: `POST /announce/{infohash}` and the tracker's metainfo route, with
 *   upstream's tracker choice (rendezvous ring of tracker addresses keyed by the digest, next
 *   tracker on network errors, passive health filter) and 202 polling for metainfo.
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
import { type Digest, DigestError, parseDigest } from "../storage/digest.ts";
import { InfoHash, MetaInfo } from "../storage/metainfo.ts";
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

// ---------------------------------------------------------------------------------------------
// Wire codec

/** A peer of a torrent, as the tracker hands it out (upstream `core.PeerInfo`). */
export interface PeerInfo {
  /** The peer ID: 40 lowercase hex characters (20 bytes; a 20-integer array in JSON). */
  peerId: string;
  /** The announced P2P address. */
  ip: string;
  /** The announced P2P port. */
  port: number;
  /** True for origins (which the tracker adds from its origin store). */
  origin: boolean;
  /** True when the peer has the whole blob. */
  complete: boolean;
}

/** A JSON body that does not have the announce protocol's shape; the message says what is wrong. */
export class AnnounceWireError extends Error {
  /** @param message what was wrong, naming the field */
  constructor(message: string) {
    super(message);
    this.name = "AnnounceWireError";
  }
}

const HEX40 = /^[0-9a-f]{40}$/;

/** True for a peer ID in its string form (40 lowercase hex characters). */
export function isPeerId(s: string): boolean {
  return HEX40.test(s);
}

/**
 * The JSON form of a 20-byte ID given as 40 hex characters: an array of 20 integers, as Go's
 * `encoding/json` writes a `[20]byte` (kraken-wire.md §0.3).
 */
export function hex20ToJSON(hex: string): number[] {
  if (!/^[0-9a-fA-F]{40}$/.test(hex)) {
    throw new AnnounceWireError(`not a 20-byte hex ID: ${JSON.stringify(hex.slice(0, 80))}`);
  }
  const out: number[] = [];
  for (let i = 0; i < 40; i += 2) out.push(parseInt(hex.slice(i, i + 2), 16));
  return out;
}

/**
 * Reads a 20-byte ID from its JSON form (an array of exactly 20 integers in 0–255) into 40
 * lowercase hex characters. Stricter than Go, which zero-fills short arrays and drops extra items.
 */
export function parseHex20(value: unknown, field: string): string {
  if (!Array.isArray(value) || value.length !== 20) {
    throw new AnnounceWireError(`${field}: must be an array of 20 integers (0-255)`);
  }
  let hex = "";
  for (const b of value) {
    if (!Number.isInteger(b) || b < 0 || b > 255) {
      throw new AnnounceWireError(`${field}: must be an array of 20 integers (0-255)`);
    }
    hex += (b as number).toString(16).padStart(2, "0");
  }
  return hex;
}

/**
 * Looks a key up the way Go decodes JSON into a struct: keys match case-insensitively and, when
 * several keys match, the last one wins.
 */
export function goField(obj: Record<string, unknown>, name: string): unknown {
  const lower = name.toLowerCase();
  let found: unknown;
  for (const key of Object.keys(obj)) {
    if (key.toLowerCase() === lower) found = obj[key];
  }
  return found;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function optionalBool(obj: Record<string, unknown>, name: string, field: string): boolean {
  const v = goField(obj, name);
  if (v === undefined || v === null) return false;
  if (typeof v !== "boolean") throw new AnnounceWireError(`${field}.${name}: must be a boolean`);
  return v;
}

/**
 * Serialises like Go's `json.Encoder`/`json.Marshal`, which escape `<`, `>`, `&`, U+2028 and
 * U+2029 inside strings. Those characters only ever occur inside strings in JSON text, so they
 * can be replaced in the output as a whole.
 */
export function goJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** The JSON object of a {@linkcode PeerInfo}, keys in upstream's field order. */
export function peerInfoToJSON(peer: PeerInfo): Record<string, unknown> {
  return {
    peer_id: hex20ToJSON(peer.peerId),
    ip: peer.ip,
    port: peer.port,
    origin: peer.origin,
    complete: peer.complete,
  };
}

/**
 * Reads a {@linkcode PeerInfo} from its JSON object. `peer_id` (20 integers), a non-empty `ip`
 * and a `port` in 1–65535 are required; `origin` and `complete` default to false.
 */
export function parsePeerInfo(value: unknown, field = "peer"): PeerInfo {
  if (!isObject(value)) throw new AnnounceWireError(`${field}: must be an object`);
  const peerId = parseHex20(goField(value, "peer_id"), `${field}.peer_id`);
  const ip = goField(value, "ip");
  if (typeof ip !== "string" || ip === "") {
    throw new AnnounceWireError(`${field}.ip: must be a non-empty string`);
  }
  const port = goField(value, "port");
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new AnnounceWireError(`${field}.port: must be an integer in 1-65535`);
  }
  return {
    peerId,
    ip,
    port,
    origin: optionalBool(value, "origin", field),
    complete: optionalBool(value, "complete", field),
  };
}

/** The fields of an announce request body. */
export interface AnnounceRequestBody {
  /** The blob's digest. */
  digest: Digest;
  /** The torrent's info hash. */
  infoHash: InfoHash;
  /** The announcing peer. */
  peer: PeerInfo;
}

/**
 * The announce request body as upstream's client marshals it (no trailing newline):
 * `{"name":"<hex>","digest":"sha256:<hex>","info_hash":[20 ints],"peer":{...}}`. `name` is the
 * digest hex, kept for trackers that predate `digest`.
 */
export function encodeAnnounceRequest(body: AnnounceRequestBody): string {
  return goJson({
    name: body.digest.hex,
    digest: body.digest.toString(),
    info_hash: body.infoHash.toJSON(),
    peer: peerInfoToJSON(body.peer),
  });
}

/** A decoded announce request; `infoHash` is absent when the body has none (v2 takes the path's). */
export interface ParsedAnnounceRequest {
  /** The digest: `digest`, or the hex in `name` when `digest` is missing. */
  digest: Digest;
  /** The body's `info_hash`, if present. */
  infoHash: InfoHash | undefined;
  /** The announcing peer. */
  peer: PeerInfo;
}

/** Decodes an announce request body (already parsed from JSON). */
export function parseAnnounceRequest(value: unknown): ParsedAnnounceRequest {
  if (!isObject(value)) throw new AnnounceWireError("request body must be a JSON object");
  const rawDigest = goField(value, "digest");
  let digest: Digest;
  try {
    if (rawDigest !== undefined && rawDigest !== null) {
      if (typeof rawDigest !== "string") throw new DigestError("digest must be a string");
      digest = parseDigest(rawDigest);
    } else {
      const name = goField(value, "name");
      if (typeof name !== "string") throw new DigestError("neither digest nor name is set");
      digest = parseDigest(`sha256:${name}`);
    }
  } catch (error) {
    if (error instanceof DigestError) {
      throw new AnnounceWireError(`get request digest: ${error.message}`);
    }
    throw error;
  }
  const rawHash = goField(value, "info_hash");
  const infoHash = rawHash === undefined || rawHash === null
    ? undefined
    : InfoHash.fromHex(parseHex20(rawHash, "info_hash"));
  const peer = goField(value, "peer");
  if (peer === undefined || peer === null) throw new AnnounceWireError("peer: is required");
  return { digest, infoHash, peer: parsePeerInfo(peer) };
}

/**
 * The announce response body as upstream's tracker writes it, trailing newline included:
 * `{"peers":[...]|null,"interval":<ns>}`. `peers === null` is the answer to a complete peer.
 */
export function encodeAnnounceResponse(peers: PeerInfo[] | null, intervalMs: number): string {
  return goJson({
    peers: peers === null || peers.length === 0 ? null : peers.map(peerInfoToJSON),
    interval: Math.round(intervalMs * 1e6),
  }) + "\n";
}

/** A decoded announce response. */
export interface AnnounceResponseBody {
  /** The handout in the tracker's priority order (`null` on the wire reads as empty). */
  peers: PeerInfo[];
  /** The tracker's announce interval in milliseconds (sent as nanoseconds). */
  intervalMs: number;
}

/** Decodes an announce response body (already parsed from JSON). */
export function parseAnnounceResponse(value: unknown): AnnounceResponseBody {
  if (!isObject(value)) throw new AnnounceWireError("response body must be a JSON object");
  const rawPeers = goField(value, "peers");
  let peers: PeerInfo[] = [];
  if (rawPeers !== undefined && rawPeers !== null) {
    if (!Array.isArray(rawPeers)) throw new AnnounceWireError("peers: must be an array or null");
    peers = rawPeers.map((p, i) => parsePeerInfo(p, `peers[${i}]`));
  }
  const interval = goField(value, "interval") ?? 0;
  if (typeof interval !== "number" || !Number.isInteger(interval) || interval < 0) {
    throw new AnnounceWireError("interval: must be a non-negative integer of nanoseconds");
  }
  return { peers, intervalMs: interval / 1e6 };
}

// ---------------------------------------------------------------------------------------------
// Client

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
  /** Tracker addresses (`host:port`), spelled as on every other agent (they are ring labels). */
  trackers: readonly string[];
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
  readonly #ring: HashRing;
  readonly #health: PassiveHealthFilter;
  readonly #fetch: TrackerFetch;
  readonly #timeoutMs: number;
  readonly #poll: PollOptions;

  /** @param options see {@linkcode AnnounceClientOptions} */
  constructor(options: AnnounceClientOptions) {
    if (options.trackers.length === 0) throw new RangeError("announce client needs a tracker");
    for (const addr of options.trackers) {
      if (!/^(\[[^\]]+\]|[^\s/:]+):\d{1,5}$/.test(addr)) {
        throw new TypeError(`tracker address must be host:port, got ${JSON.stringify(addr)}`);
      }
    }
    this.#health = options.health ?? new PassiveHealthFilter();
    this.#ring = new HashRing(options.trackers, {
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
        const res = await this.#send(addr, "POST", `/announce/${params.infoHash.hex}`, {
          route: "/announce/{infohash}",
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
    const path = `/namespace/${pathEscape(namespace)}/blobs/${digest}/metainfo`;
    return withSpan(
      SPAN.metainfoRequest,
      { [ATTR.namespace]: namespace, [ATTR.digest]: digest.toString() },
      () =>
        this.#onTrackers(`metainfo of ${digest}`, digest, async (addr) => {
          setAttributes({ [ATTR.trackerAddr]: addr });
          let attempts = 0;
          const text = await pollAccepted(() => {
            attempts++;
            return this.#send(addr, "GET", path, {
              route: "/namespace/{namespace}/blobs/{digest}/metainfo",
            });
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
    method: string,
    path: string,
    init: { route: string; body?: string; headers?: HeadersInit },
  ): Promise<string> {
    const url = `http://${addr}${path}`;
    const signal = AbortSignal.timeout(this.#timeoutMs);
    const res = await this.#fetch(url, { method, signal, expectedStatus: [202], ...init });
    const text = await res.text();
    if (res.status === 200) return text;
    if (res.status === 202) throw new AcceptedError(method, url);
    throw new HttpStatusError(method, url, res.status, text);
  }
}
