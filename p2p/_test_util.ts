/**
 * Helpers shared by the p2p tests: an in-memory {@linkcode TorrentStorage}, a scripted
 * {@linkcode ByteConn}, a seeded PRNG, and a node (dispatcher + accept loop) on 127.0.0.1.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
import { Bitfield } from "./bitfield.ts";
import { Blacklist } from "./blacklist.ts";
import { dialPeer, type PeerServer, servePeers } from "./conn.ts";
import { Dispatcher, type DispatcherOptions, RECEIVE_DEPTH } from "./dispatcher.ts";
import type { ByteConn } from "./frame.ts";
import type { TorrentStorage } from "./torrent.ts";

/** Deterministic PRNG (mulberry32) returning floats in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` bytes from `rand`. */
export function randomBytes(rand: () => number, n: number): Uint8Array {
  return Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));
}

/** A random 40-hex peer id. */
export function randomPeerId(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(20)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

/** Options for {@linkcode MemoryStorage}. */
export interface MemoryStorageOptions {
  /** Start with every piece present. Default false. */
  complete?: boolean;
  /** Rewrites piece bytes on read, to make a peer serve bad data. */
  corrupt?: (index: number, bytes: Uint8Array) => Uint8Array;
}

/** A torrent held in memory; its sums and hashes are computed from `blob`. */
export class MemoryStorage implements TorrentStorage {
  readonly infoHash: string;
  readonly digestHex: string;
  readonly numPieces: number;
  readonly #pieceLen: number;
  readonly #sums: number[];
  readonly #data: Uint8Array;
  readonly #have: Bitfield;
  readonly #corrupt?: (index: number, bytes: Uint8Array) => Uint8Array;
  /** Number of writePiece calls. */
  writes = 0;

  /** Describes `blob` cut in `pieceLength` pieces. */
  constructor(blob: Uint8Array, pieceLength: number, options: MemoryStorageOptions = {}) {
    this.#pieceLen = pieceLength;
    this.numPieces = Math.ceil(blob.length / pieceLength);
    this.#sums = Array.from(
      { length: this.numPieces },
      (_, i) => crc32(blob.subarray(i * pieceLength, (i + 1) * pieceLength)) >>> 0,
    );
    this.digestHex = createHash("sha256").update(blob).digest("hex");
    this.infoHash = createHash("sha1").update(`${this.digestHex}:${pieceLength}`).digest("hex");
    this.#data = options.complete ? blob.slice() : new Uint8Array(blob.length);
    this.#have = options.complete ? Bitfield.allSet(this.numPieces) : new Bitfield(this.numPieces);
    this.#corrupt = options.corrupt;
  }

  /** The blob bytes as stored now. */
  get data(): Uint8Array {
    return this.#data;
  }

  pieceLength(i: number): number {
    return Math.min(this.#pieceLen, this.#data.length - i * this.#pieceLen);
  }

  pieceSum(i: number): number {
    return this.#sums[i];
  }

  bitfield(): Bitfield {
    return this.#have.clone();
  }

  readPiece(i: number, into?: Uint8Array): Promise<Uint8Array> {
    if (!this.#have.get(i)) return Promise.reject(new Error(`piece ${i} missing`));
    const start = i * this.#pieceLen;
    const piece = this.#data.subarray(start, start + this.pieceLength(i));
    let bytes: Uint8Array = piece.slice();
    if (into) {
      into.set(piece);
      bytes = into.subarray(0, piece.length);
    }
    return Promise.resolve(this.#corrupt ? this.#corrupt(i, bytes) : bytes);
  }

  writePiece(i: number, bytes: Uint8Array): Promise<void> {
    this.#data.set(bytes, i * this.#pieceLen);
    this.#have.set(i);
    this.writes++;
    return Promise.resolve();
  }

  complete(): boolean {
    return this.#have.complete();
  }
}

/** Options for {@linkcode ScriptedConn}. */
export interface ScriptedConnOptions {
  /** After the chunks run out, block reads until close() instead of returning EOF. */
  hang?: boolean;
  /** Accept at most this many bytes per write call, to exercise partial writes. */
  maxWrite?: number;
}

/** A {@linkcode ByteConn} that reads the given chunks and records writes. */
export class ScriptedConn implements ByteConn {
  #chunks: Uint8Array[];
  #hang: boolean;
  #maxWrite: number;
  #onClose?: () => void;
  /** Everything written, concatenated in order by {@linkcode ScriptedConn.written}. */
  writes: Uint8Array[] = [];
  /** Whether close() was called. */
  closed = false;
  /** The buffers passed to read(), to see where bytes land. */
  readTargets: Uint8Array[] = [];

  /** Creates a connection that will read `chunks` in order. */
  constructor(chunks: Uint8Array[], options: ScriptedConnOptions = {}) {
    this.#chunks = chunks.map((c) => c.slice());
    this.#hang = options.hang ?? false;
    this.#maxWrite = options.maxWrite ?? Infinity;
  }

  read(p: Uint8Array): Promise<number | null> {
    if (this.closed) return Promise.reject(new Error("closed"));
    this.readTargets.push(p);
    const chunk = this.#chunks[0];
    if (chunk === undefined) {
      if (!this.#hang) return Promise.resolve(null);
      return new Promise((_, reject) => this.#onClose = () => reject(new Error("closed")));
    }
    const n = Math.min(p.length, chunk.length);
    p.set(chunk.subarray(0, n));
    if (n === chunk.length) this.#chunks.shift();
    else this.#chunks[0] = chunk.subarray(n);
    return Promise.resolve(n);
  }

  write(p: Uint8Array): Promise<number> {
    if (this.closed) return Promise.reject(new Error("closed"));
    const n = Math.min(p.length, this.#maxWrite);
    this.writes.push(p.slice(0, n));
    return Promise.resolve(n);
  }

  close(): void {
    this.closed = true;
    this.#onClose?.();
  }

  /** All bytes written so far. */
  written(): Uint8Array {
    return concat(this.writes);
  }
}

/** Concatenates byte arrays. */
export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Cuts `data` into chunks of random sizes between 1 and `max`. */
export function chop(data: Uint8Array, rand: () => number, max: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let off = 0; off < data.length;) {
    const n = 1 + Math.floor(rand() * max);
    chunks.push(data.subarray(off, off + n));
    off += n;
  }
  return chunks;
}

/** A dispatcher serving its torrent on an ephemeral 127.0.0.1 port. */
export class TestNode {
  /** Own peer id. */
  readonly peerId: string;
  /** The node's storage. */
  readonly storage: MemoryStorage;
  /** The node's dispatcher. */
  readonly dispatcher: Dispatcher;
  /** The node's blacklist. */
  readonly blacklist: Blacklist;
  /** Listening port. */
  readonly port: number;
  /** Errors from rejected handshakes and failed peers. */
  readonly errors: Error[] = [];
  #server: PeerServer;

  /** Starts the node. */
  constructor(storage: MemoryStorage, options: Partial<DispatcherOptions> = {}) {
    this.peerId = randomPeerId();
    this.storage = storage;
    this.blacklist = options.blacklist ?? new Blacklist();
    this.dispatcher = new Dispatcher({
      ...options,
      storage,
      peerId: this.peerId,
      blacklist: this.blacklist,
      onError: (err) => this.errors.push(err),
    });
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = listener.addr.port;
    this.#server = servePeers(listener, {
      lookup: (_ns, _name, _hash, remote) => this.dispatcher.admit(remote),
      onConn: (conn) => this.dispatcher.addConn(conn),
      onError: (err) => this.errors.push(err),
      maxPayloadLength: storage.pieceLength(0),
      // As the scheduler runs its connections.
      payloadBuffers: RECEIVE_DEPTH,
    });
  }

  /** Dials `other` and adds the connection to this node's dispatcher. */
  async connect(other: { peerId: string; port: number }, isOrigin = false): Promise<void> {
    if (!this.dispatcher.reserve(other.peerId)) throw new Error("reservation refused");
    try {
      const conn = await dialPeer({
        hostname: "127.0.0.1",
        port: other.port,
        expectedPeerId: other.peerId,
        handshake: this.dispatcher.handshake("test-ns"),
        maxPayloadLength: this.storage.pieceLength(0),
        payloadBuffers: RECEIVE_DEPTH,
      });
      this.dispatcher.addConn(conn, { isOrigin });
    } catch (err) {
      this.dispatcher.cancelReservation(other.peerId);
      throw err;
    }
  }

  /** Stops the accept loop and the dispatcher. */
  async close(): Promise<void> {
    await this.#server.close();
    await this.dispatcher.close();
  }
}
