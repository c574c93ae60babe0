/**
 * The announce protocol between agents and trackers (kraken-wire.md §2.1): its routes and both
 * sides of its JSON. {@linkcode PeerInfo} and the announce request/response bodies are upstream's
 * exact JSON — peer IDs and info hashes as arrays of 20 integers, the interval as integer
 * nanoseconds, `null` for an empty peer list, keys in Go's field order. The tracker server and
 * the agent's `cluster/announce_client.ts` both use these functions, so both ends agree byte for
 * byte. The Go `encoding/json` conventions ({@linkcode goJson}, {@linkcode goField}, 20-byte IDs)
 * live here too; `peercontext.ts` shares them.
 *
 * @example
 * ```ts
 * import { ANNOUNCE, encodeAnnounceResponse, parseAnnounceResponse } from "./announce.ts";
 * ANNOUNCE.spanName; // "POST /announce/{infohash}"
 * const body = encodeAnnounceResponse(null, 3000); // {"peers":null,"interval":3000000000}\n
 * parseAnnounceResponse(JSON.parse(body)).intervalMs; // 3000
 * ```
 *
 * @module
 */

import { type Digest, DigestError, parseDigest } from "../storage/digest.ts";
import { InfoHash } from "../storage/metainfo.ts";
import { route } from "./route.ts";

/** Announce a torrent and get peers (v2: the info hash in the path). */
export const ANNOUNCE = route("POST", "/announce/{infohash}");

/** Announce with the query-string v1 protocol, still served for old agents. */
export const ANNOUNCE_V1 = route("GET", "/announce");

/** A blob's metainfo through the tracker, which asks the origin cluster. */
export const TRACKER_METAINFO = route("GET", "/namespace/{namespace}/blobs/{digest}/metainfo");

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

// A byte's decimal text, and a hex digit's value by character code (-1: not a hex digit).
const BYTE_TEXT: readonly string[] = Array.from({ length: 256 }, (_, b) => String(b));
const HEX_DIGIT = new Int8Array(128).fill(-1);
for (let c = 0; c < 16; c++) {
  HEX_DIGIT["0123456789abcdef".charCodeAt(c)] = c;
  HEX_DIGIT["0123456789ABCDEF".charCodeAt(c)] = c;
}

/** The JSON text of {@linkcode hex20ToJSON}'s array (`[133,185,…]`), written directly. */
export function hex20JsonText(hex: string): string {
  const bad = () =>
    new AnnounceWireError(`not a 20-byte hex ID: ${JSON.stringify(hex.slice(0, 80))}`);
  if (hex.length !== 40) throw bad();
  let out = "[";
  for (let i = 0; i < 40; i += 2) {
    // Past the table (a code of 128 or more) reads as undefined: not a hex digit either.
    const hi = HEX_DIGIT[hex.charCodeAt(i)] ?? -1;
    const lo = HEX_DIGIT[hex.charCodeAt(i + 1)] ?? -1;
    if (hi < 0 || lo < 0) throw bad();
    out += i === 0 ? BYTE_TEXT[hi << 4 | lo] : "," + BYTE_TEXT[hi << 4 | lo];
  }
  return out + "]";
}

/**
 * The JSON text of a {@linkcode PeerInfo}: `goJson(peerInfoToJSON(peer))`, byte for byte, without
 * the intermediate object.
 */
export function peerInfoJsonText(peer: PeerInfo): string {
  return `{"peer_id":${hex20JsonText(peer.peerId)},"ip":${goJson(peer.ip)},"port":${
    JSON.stringify(peer.port)
  },"origin":${JSON.stringify(peer.origin)},"complete":${JSON.stringify(peer.complete)}}`;
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
  return answerText(peers, intervalMs, peerInfoJsonText);
}

function answerText(
  peers: PeerInfo[] | null,
  intervalMs: number,
  peerText: (peer: PeerInfo) => string,
): string {
  let list = "null";
  if (peers !== null && peers.length > 0) {
    list = "[" + peerText(peers[0]);
    for (let i = 1; i < peers.length; i++) list += "," + peerText(peers[i]);
    list += "]";
  }
  return `{"peers":${list},"interval":${JSON.stringify(Math.round(intervalMs * 1e6))}}\n`;
}

/** Options of {@linkcode AnnounceAnswerEncoder}. */
export interface AnnounceAnswerEncoderOptions {
  /** Peers whose JSON text is kept; past it, what is kept is dropped and kept anew. Default 16384. */
  maxRememberedPeers?: number;
}

// A peer's JSON text and the fields it was written from.
interface RememberedPeer {
  ip: string;
  port: number;
  origin: boolean;
  complete: boolean;
  text: string;
}

/**
 * Writes announce answers as {@linkcode encodeAnnounceResponse} does, keeping each peer's JSON text
 * by peer ID: a tracker hands the same peers out again and again, and writing a peer's 20-integer
 * ID was most of an answer's cost (docs/performance.md). A kept text is used only while every
 * field of the peer is still what it was written from.
 */
export class AnnounceAnswerEncoder {
  readonly #max: number;
  readonly #peers = new Map<string, RememberedPeer>();

  /** Creates an encoder that keeps at most `maxRememberedPeers` peers' texts. */
  constructor(options: AnnounceAnswerEncoderOptions = {}) {
    this.#max = options.maxRememberedPeers ?? 16_384;
  }

  /** Peers whose text is kept now. */
  get rememberedPeers(): number {
    return this.#peers.size;
  }

  /** The answer's body, byte for byte what {@linkcode encodeAnnounceResponse} writes. */
  encode(peers: PeerInfo[] | null, intervalMs: number): string {
    return answerText(peers, intervalMs, (peer) => this.#peerText(peer));
  }

  #peerText(peer: PeerInfo): string {
    const kept = this.#peers.get(peer.peerId);
    if (
      kept !== undefined && kept.ip === peer.ip && kept.port === peer.port &&
      kept.origin === peer.origin && kept.complete === peer.complete
    ) {
      return kept.text;
    }
    const text = peerInfoJsonText(peer);
    if (this.#max === 0) return text;
    if (this.#peers.size >= this.#max) this.#peers.clear();
    this.#peers.set(peer.peerId, {
      ip: peer.ip,
      port: peer.port,
      origin: peer.origin,
      complete: peer.complete,
      text,
    });
    return text;
  }
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
