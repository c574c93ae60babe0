/**
 * The piece exchange engine for one torrent: it serves the pieces it has, fetches the pieces
 * it lacks from its connected peers, and reports a summary of the exchange. It knows nothing of
 * files, announces or HTTP; a scheduler plugs it in through three seams:
 *
 * - a {@linkcode TorrentStorage} (from `torrent.ts`) for the torrent's pieces;
 * - {@linkcode PeerConn}s from `conn.ts`: on the dial side, `reserve(peerId)` a slot, run
 *   `dialPeer({ handshake: dispatcher.handshake(namespace), ... })`, then
 *   `addConn(conn, { isOrigin })`, or `cancelReservation(peerId)` and blacklist on failure;
 *   on the accept side, return `dispatcher.admit(remote)` from the handshake lookup, then
 *   `addConn(conn)` (an acceptor assumes the dialer is an agent);
 * - completion and teardown: `whenComplete()` / the `onComplete` option, `summary()` for the
 *   download span, and `close()`.
 *
 * Piece selection is rarest-first over pieces the peer has and we lack, skipping pieces with a
 * live request elsewhere (except in endgame, when few pieces remain) and pieces that already
 * failed with that peer. Each peer has a pipeline of 3 outstanding requests (5 for origins).
 * Requests expire after max(4 s, ceil(4 s × piece MiB)) and are rescanned every half timeout;
 * an expired or invalid request is never re-sent to the same peer.
 *
 * Up to {@linkcode RECEIVE_DEPTH} received pieces of one connection are being stored at once
 * while the next frames are read, so the disk write of a piece overlaps the socket read of the
 * next; a connection's receive ring must therefore hold `RECEIVE_DEPTH` buffers. Pieces are sent
 * from one buffer per peer, read just before the writer sends it, behind room for the frame
 * header, so header and piece go out in one socket write.
 *
 * Every PIECE_PAYLOAD is checked against its CRC-32 sum. A bad piece marks the request invalid
 * and, deliberately stricter than upstream (which keeps the connection), blacklists the sender
 * for the torrent and closes its connection: a peer serving corrupt data is not worth the
 * bandwidth. Any other closed connection is blacklisted too, until the torrent completes.
 *
 * The P2P layer is never traced (ERD NG1–NG3); {@linkcode Dispatcher.summary} is what the
 * download span records instead.
 *
 * @module
 */

import { Bitfield } from "./bitfield.ts";
import { Blacklist } from "./blacklist.ts";
import type { PieceBufferSource } from "./buffer_pool.ts";
import type { LocalHandshake, PeerConn, RemoteHandshake } from "./conn.ts";
import { encodePayloadFrame, type Frame, PAYLOAD_HEADER_ROOM } from "./frame.ts";
import {
  announcePieceMessage,
  completeMessage,
  ErrorCode,
  errorMessage,
  type Message,
  MessageType,
  type PiecePayloadMessage,
  piecePayloadMessage,
  type PieceRequestMessage,
  pieceRequestMessage,
} from "./message.ts";
import { maxPieceLength, type TorrentStorage, verifyPiece } from "./torrent.ts";

/** Upstream's reply to a request for part of a piece. */
export const CHUNK_NOT_SUPPORTED = "reading / writing chunk of piece not supported";

const MIB = 1024 * 1024;

/**
 * Received pieces of one connection stored concurrently; give connections at least this many
 * receive buffers (`payloadBuffers`).
 */
export const RECEIVE_DEPTH = 3;

/** A request the dispatcher refuses: wrong torrent, full, duplicate peer, closed. */
export class DispatcherError extends Error {
  /** Creates the error with the reason. */
  constructor(message: string) {
    super(message);
    this.name = "DispatcherError";
  }
}

/** Options for {@linkcode Dispatcher}. Defaults are upstream's. */
export interface DispatcherOptions {
  /** The torrent's pieces. */
  storage: TorrentStorage;
  /** This node's peer id, 40 hex. */
  peerId: string;
  /** Blacklist shared with the scheduler's dialer. Default: a private 30 s blacklist. */
  blacklist?: Blacklist;
  /** Outstanding requests per agent peer. Default 3. */
  pipelineLimit?: number;
  /** Outstanding requests per origin peer. Default 5. */
  originPipelineLimit?: number;
  /** Remaining pieces at or below which requests may be duplicated. Default `pipelineLimit`. */
  endgameThreshold?: number;
  /** Never duplicate requests. Default false. */
  disableEndgame?: boolean;
  /** Lower bound of the request timeout, ms. Default 4000. */
  pieceRequestMinTimeoutMs?: number;
  /** Request timeout per MiB of the largest piece, ms. Default 4000. */
  pieceRequestTimeoutPerMbMs?: number;
  /** Connections per torrent, pending (reserved) and active. Default 10. */
  maxOpenConn?: number;
  /** Incoming handshakes sharing more peers than this with us are refused. Default maxOpenConn. */
  maxMutualConn?: number;
  /** Called once when the last missing piece is stored (not when complete from the start). */
  onComplete?: () => void;
  /** Told about peer failures (connection errors, bad pieces, storage errors); for logging. */
  onError?: (err: Error, peerId: string) => void;
  /**
   * Where send buffers come from, and where they and the connections' receive rings (from the
   * same pool, `ConnOptions.bufferPool`) go back once a peer is done. Default: allocated per peer.
   */
  bufferPool?: PieceBufferSource;
}

/** Options for {@linkcode Dispatcher.addConn}. */
export interface AddConnOptions {
  /** The peer is an origin: it has every piece and gets the origin pipeline limit. */
  isOrigin?: boolean;
}

/** Counters of one torrent's exchange, for the download span. */
export interface P2PSummary {
  /** Pieces in the torrent. */
  piecesTotal: number;
  /** Pieces present before any were downloaded. */
  piecesAtStart: number;
  /** Verified pieces received from origin peers. */
  piecesFromOrigins: number;
  /** Verified pieces received from agent peers. */
  piecesFromAgents: number;
  /** Pieces received again after we already had them (endgame). */
  piecesDuplicate: number;
  /** Pieces rejected: bad checksum, or wrong offset/length. */
  piecesInvalid: number;
  /** Verified piece bytes received. */
  bytesReceived: number;
  /** Of `bytesReceived`, the bytes from origin peers. */
  bytesFromOrigins: number;
  /** Piece bytes served to peers. */
  bytesServed: number;
  /** Distinct peers that had an active connection. */
  peersConnected: number;
  /** Milliseconds from creation until completion, or until now. */
  durationMs: number;
  /** bytesReceived per second over durationMs. */
  throughputBytesPerSecond: number;
  /** Whether every piece is present. */
  complete: boolean;
}

interface Peer {
  conn: PeerConn;
  isOrigin: boolean;
  bitfield: Bitfield;
  // Piece indexes with a live request to this peer.
  pending: Set<number>;
  // The frame being sent to this peer: PAYLOAD_HEADER_ROOM bytes for the header, then the piece.
  // The connection's writer takes one queued piece at a time and has written it before it asks
  // for the next, so one buffer per peer suffices.
  sendBuffer?: Uint8Array;
}

type RequestStatus = "pending" | "expired" | "invalid";

interface PieceRequest {
  peerId: string;
  sentAt: number;
  status: RequestStatus;
}

/** Piece exchange for one torrent across its peer connections. */
export class Dispatcher {
  /** The torrent's info hash. */
  readonly infoHash: string;

  #storage: TorrentStorage;
  #peerId: string;
  #blacklist: Blacklist;
  #pipelineLimit: number;
  #originPipelineLimit: number;
  #endgameThreshold: number;
  #disableEndgame: boolean;
  #maxOpenConn: number;
  #maxMutualConn: number;
  #requestTimeoutMs: number;
  #onComplete?: () => void;
  #onError: (err: Error, peerId: string) => void;

  #have: Bitfield;
  #haveCount: number;
  // Pieces whose verified bytes are being written, so a concurrent copy counts as duplicate.
  #writing = new Set<number>();
  // Number of connected peers holding each piece, for rarest-first.
  #rarity: Uint32Array;
  #peers = new Map<string, Peer>();
  #reserved = new Set<string>();
  // Read loops and connection writers still running, so close() can wait for all of them.
  #tasks = new Set<Promise<void>>();
  #requests = new Map<number, PieceRequest[]>();
  #rescanTimer?: ReturnType<typeof setInterval>;
  #waiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  #closed = false;

  #startedAt = Date.now();
  #completedAt?: number;
  #stats = {
    piecesAtStart: 0,
    piecesFromOrigins: 0,
    piecesFromAgents: 0,
    piecesDuplicate: 0,
    piecesInvalid: 0,
    bytesReceived: 0,
    bytesFromOrigins: 0,
    bytesServed: 0,
  };
  #everConnected = new Set<string>();
  #bufferPool: PieceBufferSource | undefined;

  /** Starts a dispatcher over `options.storage`; it holds no peers until `addConn`. */
  constructor(options: DispatcherOptions) {
    const storage = options.storage;
    this.#storage = storage;
    this.infoHash = storage.infoHash;
    this.#peerId = options.peerId.toLowerCase();
    this.#blacklist = options.blacklist ?? new Blacklist();
    this.#bufferPool = options.bufferPool;
    this.#pipelineLimit = options.pipelineLimit ?? 3;
    this.#originPipelineLimit = options.originPipelineLimit ?? 5;
    this.#endgameThreshold = options.endgameThreshold ?? this.#pipelineLimit;
    this.#disableEndgame = options.disableEndgame ?? false;
    this.#maxOpenConn = options.maxOpenConn ?? 10;
    this.#maxMutualConn = options.maxMutualConn ?? this.#maxOpenConn;
    this.#requestTimeoutMs = Math.max(
      options.pieceRequestMinTimeoutMs ?? 4000,
      Math.ceil((options.pieceRequestTimeoutPerMbMs ?? 4000) * maxPieceLength(storage) / MIB),
    );
    this.#onComplete = options.onComplete;
    this.#onError = options.onError ?? (() => {});
    this.#have = storage.bitfield().clone();
    if (this.#have.length !== storage.numPieces) {
      throw new DispatcherError(
        `storage bitfield has ${this.#have.length} bits for ${storage.numPieces} pieces`,
      );
    }
    this.#haveCount = this.#have.count();
    this.#stats.piecesAtStart = this.#haveCount;
    this.#rarity = new Uint32Array(storage.numPieces);
    if (this.complete) this.#completedAt = this.#startedAt;
    else {
      this.#rescanTimer = setInterval(() => this.#rescan(), this.#requestTimeoutMs / 2);
    }
  }

  /** Whether every piece is present. */
  get complete(): boolean {
    return this.#haveCount === this.#storage.numPieces;
  }

  /** Peer ids with an active connection. */
  get peerIds(): string[] {
    return [...this.#peers.keys()];
  }

  /** The request timeout in ms derived from the piece length. */
  get requestTimeoutMs(): number {
    return this.#requestTimeoutMs;
  }

  /**
   * This node's handshake for the torrent: own bitfield and those of connected peers.
   * Pass the namespace when dialing; the acceptor sends none.
   */
  handshake(namespace = ""): LocalHandshake {
    const remoteBitfields = new Map<string, Bitfield>();
    for (const [id, peer] of this.#peers) remoteBitfields.set(id, peer.bitfield.clone());
    return {
      peerId: this.#peerId,
      infoHash: this.infoHash,
      name: this.#storage.digestHex,
      namespace,
      bitfield: this.#have.clone(),
      remoteBitfields,
    };
  }

  /**
   * Reserves a pending slot for dialing `peerId`. False when the torrent is complete (completion
   * clears the blacklist, so a late handout would otherwise redial peers that failed it), the peer
   * is this node, already connected or reserved, blacklisted, or the torrent is at `maxOpenConn`.
   */
  reserve(peerId: string): boolean {
    const id = peerId.toLowerCase();
    if (
      this.#closed || this.complete || id === this.#peerId || this.#peers.has(id) ||
      this.#reserved.has(id) ||
      this.#blacklist.has(id, this.infoHash) || this.#openCount() >= this.#maxOpenConn
    ) {
      return false;
    }
    this.#reserved.add(id);
    return true;
  }

  /** Frees a slot from {@linkcode reserve} after a failed dial. */
  cancelReservation(peerId: string): void {
    this.#reserved.delete(peerId.toLowerCase());
  }

  /**
   * Acceptor-side check of an incoming handshake, for use in a handshake lookup.
   *
   * @returns the handshake to reply with.
   * @throws {DispatcherError} when the torrent differs, the peer is connected already, the
   *   torrent is at capacity, or more than `maxMutualConn` of the peer's peers are ours too.
   */
  admit(remote: RemoteHandshake): LocalHandshake {
    if (this.#closed) throw new DispatcherError("dispatcher is closed");
    if (remote.infoHash !== this.infoHash) {
      throw new DispatcherError(`info hash ${remote.infoHash} is not ${this.infoHash}`);
    }
    if (remote.peerId === this.#peerId) throw new DispatcherError("connection to self");
    if (this.#peers.has(remote.peerId) || this.#reserved.has(remote.peerId)) {
      throw new DispatcherError(`already connected to ${remote.peerId}`);
    }
    if (this.#openCount() >= this.#maxOpenConn) {
      throw new DispatcherError(`torrent at capacity (${this.#maxOpenConn} connections)`);
    }
    let mutual = 0;
    for (const id of remote.remoteBitfields.keys()) {
      if (this.#peers.has(id) || this.#reserved.has(id)) mutual++;
    }
    if (mutual > this.#maxMutualConn) {
      throw new DispatcherError(`${mutual} mutual connections exceed ${this.#maxMutualConn}`);
    }
    return this.handshake("");
  }

  /**
   * Takes ownership of an established connection and starts exchanging pieces with it.
   * A reservation for the peer, if any, becomes the active connection.
   *
   * @throws {DispatcherError} when the connection is for another torrent or piece count, the
   *   peer is connected already, or the torrent is full; the connection is closed then.
   */
  addConn(conn: PeerConn, options: AddConnOptions = {}): void {
    const reject = (reason: string): never => {
      conn.close();
      throw new DispatcherError(`peer ${conn.peerId}: ${reason}`);
    };
    const id = conn.peerId;
    if (this.#closed) reject("dispatcher is closed");
    if (conn.infoHash !== this.infoHash) reject(`connection is for torrent ${conn.infoHash}`);
    if (id === this.#peerId) reject("connection to self");
    if (this.#peers.has(id)) reject("already connected");
    const wasReserved = this.#reserved.delete(id);
    if (!wasReserved && this.#openCount() >= this.#maxOpenConn) {
      reject(`torrent at capacity (${this.#maxOpenConn} connections)`);
    }
    const n = this.#storage.numPieces;
    const bitfield = options.isOrigin ? Bitfield.allSet(n) : conn.remoteBitfield.clone();
    if (bitfield.length !== n) reject(`bitfield has ${bitfield.length} bits, torrent ${n}`);
    const peer: Peer = { conn, isOrigin: options.isOrigin ?? false, bitfield, pending: new Set() };
    this.#peers.set(id, peer);
    this.#everConnected.add(id);
    for (let i = 0; i < n; i++) if (bitfield.get(i)) this.#rarity[i]++;
    for (const task of [this.#run(peer), conn.closed]) {
      this.#tasks.add(task);
      task.finally(() => this.#tasks.delete(task));
    }
    if (this.complete && bitfield.complete()) peer.conn.close();
    else this.#requestFrom(peer);
  }

  /**
   * Resolves when every piece is present; rejects if the dispatcher closes first.
   */
  whenComplete(): Promise<void> {
    if (this.complete) return Promise.resolve();
    if (this.#closed) return Promise.reject(new DispatcherError("dispatcher closed"));
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** The exchange so far. */
  summary(): P2PSummary {
    const durationMs = (this.#completedAt ?? Date.now()) - this.#startedAt;
    const s = this.#stats;
    return {
      piecesTotal: this.#storage.numPieces,
      ...s,
      peersConnected: this.#everConnected.size,
      durationMs,
      throughputBytesPerSecond: durationMs > 0
        ? Math.round(s.bytesReceived * 1000 / durationMs)
        : 0,
      complete: this.complete,
    };
  }

  /** Closes every connection and stops the timers; pending `whenComplete` calls reject. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      clearInterval(this.#rescanTimer);
      for (const w of this.#waiters.splice(0)) w.reject(new DispatcherError("dispatcher closed"));
      for (const peer of this.#peers.values()) peer.conn.close();
    }
    await Promise.all(this.#tasks);
  }

  #openCount(): number {
    return this.#peers.size + this.#reserved.size;
  }

  async #run(peer: Peer): Promise<void> {
    // Pieces being stored, oldest first; a payload's buffer is reused RECEIVE_DEPTH payloads on.
    const storing: Promise<void>[] = [];
    try {
      for await (const frame of peer.conn) {
        if (this.#closed) break;
        const handled = this.#handle(peer, frame);
        if (frame.payload === undefined) await handled;
        else if (storing.push(handled) >= RECEIVE_DEPTH) await storing.shift();
      }
    } catch (err) {
      this.#onError(err as Error, peer.conn.peerId);
    } finally {
      peer.conn.close();
      await Promise.allSettled(storing);
      this.#removePeer(peer);
      this.#releaseBuffers(peer);
    }
  }

  async #handle(peer: Peer, { message, payload }: Frame): Promise<void> {
    switch (message.type) {
      case MessageType.PIECE_REQUEST:
        this.#serve(peer, message.pieceRequest);
        break;
      case MessageType.PIECE_PAYLOAD:
        await this.#receive(peer, message.piecePayload, payload ?? new Uint8Array(0));
        break;
      case MessageType.ANNOUCE_PIECE: {
        const index = message.announcePiece?.index ?? 0;
        if (index < 0 || index >= this.#storage.numPieces) return;
        this.#markPeerHas(peer, index);
        this.#requestFrom(peer);
        break;
      }
      case MessageType.COMPLETE:
        if (this.complete) {
          peer.conn.close();
          return;
        }
        for (let i = 0; i < this.#storage.numPieces; i++) this.#markPeerHas(peer, i);
        this.#requestFrom(peer);
        break;
      case MessageType.ERROR:
        if (message.error?.code === ErrorCode.PIECE_REQUEST_FAILED) {
          this.#fail(message.error.index, peer.conn.peerId, "invalid");
          this.#requestFromAll();
        }
        break;
        // A BITFIELD after the handshake, CANCEL_PIECE and unknown types are ignored.
    }
  }

  #serve(peer: Peer, req: PieceRequestMessage | undefined): void {
    const { index, offset, length } = req ?? { index: 0, offset: 0, length: 0 };
    const reply = (msg: Message) => peer.conn.send({ message: msg });
    if (index < 0 || index >= this.#storage.numPieces) {
      reply(errorMessage(index, `piece index ${index} out of range`));
      return;
    }
    if (offset !== 0 || length !== this.#storage.pieceLength(index)) {
      reply(errorMessage(index, CHUNK_NOT_SUPPORTED));
      return;
    }
    if (!this.#have.get(index)) {
      reply(errorMessage(index, `piece ${index} not present`));
      return;
    }
    // The piece is read when the writer reaches this message, so queued requests cost no
    // memory until the socket can take their bytes.
    peer.conn.send(async () => {
      try {
        const frameLength = PAYLOAD_HEADER_ROOM + maxPieceLength(this.#storage);
        const buffer = peer.sendBuffer ??= this.#bufferPool?.take(frameLength) ??
          new Uint8Array(frameLength);
        const bytes = await this.#storage.readPiece(index, buffer.subarray(PAYLOAD_HEADER_ROOM));
        if (bytes.length !== length) {
          throw new Error(`piece ${index} read ${bytes.length} bytes, expected ${length}`);
        }
        this.#stats.bytesServed += bytes.length;
        this.#markPeerHas(peer, index);
        const message = piecePayloadMessage(index, bytes.length);
        // A storage may hand back other bytes than the buffer's (a copy): then two writes.
        const inPlace = bytes.buffer === buffer.buffer &&
          bytes.byteOffset === buffer.byteOffset + PAYLOAD_HEADER_ROOM;
        return inPlace
          ? { message, encoded: encodePayloadFrame(message, buffer, bytes.length) }
          : { message, payload: bytes };
      } catch (err) {
        return { message: errorMessage(index, (err as Error).message) };
      }
    });
  }

  async #receive(
    peer: Peer,
    header: PiecePayloadMessage | undefined,
    payload: Uint8Array,
  ): Promise<void> {
    const id = peer.conn.peerId;
    const index = header?.index ?? 0;
    if (index < 0 || index >= this.#storage.numPieces) {
      this.#onError(new Error(`piece payload for index ${index} out of range`), id);
      return;
    }
    if ((header?.offset ?? 0) !== 0 || payload.length !== this.#storage.pieceLength(index)) {
      this.#stats.piecesInvalid++;
      this.#fail(index, id, "invalid");
      this.#requestFromAll();
      return;
    }
    if (this.#have.get(index) || this.#writing.has(index)) {
      this.#stats.piecesDuplicate++;
      this.#clearRequest(index, id);
      this.#requestFrom(peer);
      return;
    }
    if (!verifyPiece(this.#storage, index, payload)) {
      this.#stats.piecesInvalid++;
      this.#fail(index, id, "invalid");
      this.#onError(new Error(`piece ${index} failed its CRC-32 check`), id);
      this.#blacklist.add(id, this.infoHash);
      peer.conn.close();
      return;
    }
    this.#writing.add(index);
    try {
      await this.#storage.writePiece(index, payload);
    } catch (err) {
      this.#fail(index, id, "invalid");
      this.#onError(err as Error, id);
      return;
    } finally {
      this.#writing.delete(index);
    }
    if (this.#closed) return;
    this.#have.set(index);
    this.#haveCount++;
    this.#stats.bytesReceived += payload.length;
    if (peer.isOrigin) {
      this.#stats.piecesFromOrigins++;
      this.#stats.bytesFromOrigins += payload.length;
    } else {
      this.#stats.piecesFromAgents++;
    }
    // Endgame may have the same piece pending at other peers; their slots are free again.
    const freed = (this.#requests.get(index) ?? [])
      .filter((r) => r.status === "pending" && r.peerId !== id)
      .map((r) => this.#peers.get(r.peerId));
    this.#requests.delete(index);
    for (const p of this.#peers.values()) p.pending.delete(index);
    for (const p of this.#peers.values()) {
      if (p !== peer) p.conn.send({ message: announcePieceMessage(index) });
    }
    if (this.complete) {
      this.#finish();
      return;
    }
    this.#requestFrom(peer);
    for (const p of freed) if (p) this.#requestFrom(p);
  }

  #finish(): void {
    this.#completedAt = Date.now();
    clearInterval(this.#rescanTimer);
    this.#requests.clear();
    for (const peer of this.#peers.values()) {
      peer.pending.clear();
      if (peer.bitfield.complete()) peer.conn.close();
      else peer.conn.send({ message: completeMessage() });
    }
    this.#blacklist.clear(this.infoHash);
    for (const w of this.#waiters.splice(0)) w.resolve();
    this.#onComplete?.();
  }

  #markPeerHas(peer: Peer, index: number): void {
    if (peer.bitfield.get(index)) return;
    peer.bitfield.set(index);
    this.#rarity[index]++;
  }

  // Gives a finished peer's buffers back to the pool: the receive ring now (every stored piece
  // has settled), the send buffer once the writer has stopped using it.
  #releaseBuffers(peer: Peer): void {
    peer.conn.releaseBuffers();
    const pool = this.#bufferPool;
    if (pool === undefined) return;
    peer.conn.closed.then(() => {
      if (peer.sendBuffer !== undefined) pool.give(peer.sendBuffer);
      peer.sendBuffer = undefined;
    });
  }

  #removePeer(peer: Peer): void {
    const id = peer.conn.peerId;
    if (this.#peers.get(id) !== peer) return;
    this.#peers.delete(id);
    for (let i = 0; i < this.#storage.numPieces; i++) {
      if (peer.bitfield.get(i)) this.#rarity[i]--;
    }
    // Forget every request to the peer, failed ones included: its pending pieces become
    // requestable elsewhere right away.
    for (const [index, reqs] of this.#requests) {
      const rest = reqs.filter((r) => r.peerId !== id);
      if (rest.length === 0) this.#requests.delete(index);
      else this.#requests.set(index, rest);
    }
    if (this.#closed || this.complete) return;
    this.#blacklist.add(id, this.infoHash);
    this.#requestFromAll();
  }

  // Marks the live request for (index, peer) expired or invalid, freeing the peer's slot.
  #fail(index: number, peerId: string, status: RequestStatus): void {
    const req = this.#requests.get(index)?.find((r) =>
      r.peerId === peerId && r.status === "pending"
    );
    if (req) req.status = status;
    this.#peers.get(peerId)?.pending.delete(index);
    if (!req && status === "invalid") {
      // Unrequested data or an error for a piece we never asked this peer for: still never
      // ask this peer for it again.
      const reqs = this.#requests.get(index) ?? [];
      reqs.push({ peerId, sentAt: Date.now(), status });
      this.#requests.set(index, reqs);
    }
  }

  #clearRequest(index: number, peerId: string): void {
    const reqs = this.#requests.get(index);
    if (reqs) {
      const rest = reqs.filter((r) => !(r.peerId === peerId && r.status === "pending"));
      if (rest.length === 0) this.#requests.delete(index);
      else this.#requests.set(index, rest);
    }
    this.#peers.get(peerId)?.pending.delete(index);
  }

  #rescan(): void {
    const now = Date.now();
    let expired = false;
    for (const [index, reqs] of this.#requests) {
      for (const r of reqs) {
        if (r.status === "pending" && now - r.sentAt >= this.#requestTimeoutMs) {
          r.status = "expired";
          this.#peers.get(r.peerId)?.pending.delete(index);
          expired = true;
        }
      }
    }
    if (expired) this.#requestFromAll();
  }

  #requestFromAll(): void {
    for (const peer of this.#peers.values()) this.#requestFrom(peer);
  }

  // Sends rarest-first requests to `peer` up to its pipeline limit.
  #requestFrom(peer: Peer): void {
    if (this.#closed || this.complete || peer.conn.isClosed) return;
    const limit = peer.isOrigin ? this.#originPipelineLimit : this.#pipelineLimit;
    const quota = limit - peer.pending.size;
    if (quota <= 0) return;
    const id = peer.conn.peerId;
    const remaining = this.#storage.numPieces - this.#haveCount;
    const endgame = !this.#disableEndgame && remaining <= this.#endgameThreshold;
    const candidates: number[] = [];
    for (let i = 0; i < this.#storage.numPieces; i++) {
      if (!peer.bitfield.get(i) || this.#have.get(i) || this.#writing.has(i)) continue;
      if (peer.pending.has(i)) continue;
      const reqs = this.#requests.get(i);
      if (reqs?.some((r) => r.peerId === id && r.status !== "pending")) continue;
      if (!endgame && reqs?.some((r) => r.status === "pending")) continue;
      candidates.push(i);
    }
    // Stable sort: equally rare pieces keep index order.
    candidates.sort((a, b) => this.#rarity[a] - this.#rarity[b]);
    for (const index of candidates.slice(0, quota)) {
      if (
        !peer.conn.send({ message: pieceRequestMessage(index, this.#storage.pieceLength(index)) })
      ) {
        return;
      }
      peer.pending.add(index);
      const reqs = this.#requests.get(index) ?? [];
      reqs.push({ peerId: id, sentAt: Date.now(), status: "pending" });
      this.#requests.set(index, reqs);
    }
  }
}
