/**
 * P2P connections: the BITFIELD handshake on both sides and the resulting {@linkcode PeerConn}.
 *
 * There is one TCP connection per (peer pair, torrent). The initiator ({@linkcode dialPeer};
 * only agents dial) sends its BITFIELD with the torrent's namespace, then expects one BITFIELD
 * back from the peer id the tracker named. The acceptor ({@linkcode acceptHandshake}) validates
 * the first frame (peer id and info hash: 40 hex; name: 64 hex), asks a lookup for the local
 * torrent, replies with its own BITFIELD and an empty namespace, and rejects the connection if
 * the info hashes differ. Each handshake step has a deadline (5 s by default); a failed
 * handshake closes the socket. Hex ids are normalised to lowercase.
 *
 * After the handshake a {@linkcode PeerConn} sends through a bounded queue drained by one
 * writer task, and yields incoming frames (with piece payload bytes) by async iteration. Reads
 * are pulled by the iterating consumer, so TCP flow control, not a receive buffer, bounds what
 * a slow consumer holds.
 *
 * @example
 * ```ts
 * import { dialPeer } from "./conn.ts";
 * declare const handshake: import("./conn.ts").LocalHandshake;
 * const conn = await dialPeer({ hostname: "127.0.0.1", port: 16001, expectedPeerId: "ab".repeat(20), handshake });
 * for await (const { message, payload } of conn) console.log(message.type, payload?.length);
 * ```
 *
 * @module
 */

import { Bitfield } from "./bitfield.ts";
import type { PieceBufferSource } from "./buffer_pool.ts";
import { closeQuietly } from "../common/close.ts";
import { type ByteConn, type Frame, FrameReader, FrameWriter } from "./frame.ts";
import { bitfieldMessage, type Message, MessageType } from "./message.ts";

/** Default handshake step timeout (upstream `handshake_timeout`). */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;

/** Default send queue capacity in messages (upstream `sender_buffer_size`). */
export const DEFAULT_SENDER_BUFFER_SIZE = 10000;

/** A handshake that failed: bad first frame, unknown torrent, wrong peer, timeout, I/O error. */
export class HandshakeError extends Error {
  /** Creates the error; `cause` holds the underlying error, if any. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "HandshakeError";
  }
}

/** What this node tells a peer about itself and the torrent in its BITFIELD. */
export interface LocalHandshake {
  /** Own peer id, 40 hex. */
  peerId: string;
  /** Info hash, 40 hex. */
  infoHash: string;
  /** Blob digest hex, 64 characters. */
  name: string;
  /** Namespace; sent only when dialing. */
  namespace?: string;
  /** Own pieces. */
  bitfield: Bitfield;
  /** Bitfields of the peers this node is connected to for the torrent, by peer id. */
  remoteBitfields?: Map<string, Bitfield>;
}

/** A peer's validated BITFIELD. */
export interface RemoteHandshake {
  /** The peer's id, 40 lowercase hex. */
  peerId: string;
  /** Info hash, 40 lowercase hex. */
  infoHash: string;
  /** Blob digest hex, 64 lowercase characters. */
  name: string;
  /** Namespace; empty unless the peer dialed. */
  namespace: string;
  /** The peer's pieces. */
  bitfield: Bitfield;
  /** Bitfields of the peers it is connected to, by lowercase peer id. */
  remoteBitfields: Map<string, Bitfield>;
}

/**
 * Acceptor-side torrent lookup. Resolves to the local handshake for the torrent, or `null`
 * (or throws) to reject the connection. Agents ignore `namespace`; origins use it to start a
 * backend fetch for a blob they lack, and still reject.
 */
export type HandshakeLookup = (
  namespace: string,
  nameHex: string,
  infoHash: string,
  remote: RemoteHandshake,
) => Promise<LocalHandshake | null> | LocalHandshake | null;

/** Options shared by both handshake sides. */
export interface ConnOptions {
  /** Deadline of each handshake read and write, in ms. Default 5000. */
  timeoutMs?: number;
  /** Send queue capacity in messages. Default 10000. */
  senderBufferSize?: number;
  /** Largest piece payload accepted; set it to the torrent's piece length. Default 64 MiB. */
  maxPayloadLength?: number;
  /**
   * Receive piece payloads into a ring of this many buffers of the connection: a payload is then
   * valid only until that many more payloads have been pulled. Default 0 (a fresh array each).
   */
  payloadBuffers?: number;
  /** Where that ring's buffers come from (see {@linkcode PeerConn.releaseBuffers}). */
  bufferPool?: PieceBufferSource;
}

/** Options for {@linkcode dialPeer}. */
export interface DialOptions extends ConnOptions {
  /** Peer address. */
  hostname: string;
  /** Peer port. */
  port: number;
  /** Peer id the tracker handed out; the reply must carry it. */
  expectedPeerId: string;
  /** This node's BITFIELD, including the namespace. */
  handshake: LocalHandshake;
}

/** A message to send, with the raw bytes that follow a PIECE_PAYLOAD. */
export interface Outgoing {
  /** The message. */
  message: Message;
  /** Piece bytes, only for PIECE_PAYLOAD. */
  payload?: Uint8Array;
  /**
   * The whole frame already encoded, header and payload (`encodePayloadFrame` in `frame.ts`):
   * sent as it is, in one write, instead of encoding `message` and writing `payload` after it.
   */
  encoded?: Uint8Array;
}

/**
 * A queued send: a ready message, or a producer the writer calls when the message's turn
 * comes, so piece bytes are read only when the socket can take them. A producer should turn
 * its own failures into an ERROR message; if it throws, the connection is closed.
 */
export type OutgoingItem = Outgoing | (() => Promise<Outgoing>);

const HEX40 = /^[0-9a-fA-F]{40}$/;
const HEX64 = /^[0-9a-fA-F]{64}$/;

/** Whether `s` is a peer id or info hash in hex (20 bytes). */
export function isHex20(s: string): boolean {
  return HEX40.test(s);
}

/** Whether `s` is a sha256 digest in hex (32 bytes, no `sha256:` prefix). */
export function isSha256Hex(s: string): boolean {
  return HEX64.test(s);
}

/**
 * Validates a handshake frame.
 *
 * @throws {HandshakeError} when it is not a BITFIELD or a field is malformed.
 */
export function parseHandshake(message: Message): RemoteHandshake {
  const b = message.bitfield;
  if (message.type !== MessageType.BITFIELD || b === undefined) {
    throw new HandshakeError(`expected a BITFIELD handshake, got message type ${message.type}`);
  }
  if (!isHex20(b.peerID)) throw new HandshakeError(`invalid peer id ${JSON.stringify(b.peerID)}`);
  if (!isHex20(b.infoHash)) {
    throw new HandshakeError(`invalid info hash ${JSON.stringify(b.infoHash)}`);
  }
  if (!isSha256Hex(b.name)) throw new HandshakeError(`invalid name ${JSON.stringify(b.name)}`);
  const remoteBitfields = new Map<string, Bitfield>();
  try {
    for (const [peer, bytes] of Object.entries(b.remoteBitfieldBytes)) {
      if (!isHex20(peer)) throw new Error(`invalid remote peer id ${JSON.stringify(peer)}`);
      remoteBitfields.set(peer.toLowerCase(), Bitfield.decode(bytes));
    }
    return {
      peerId: b.peerID.toLowerCase(),
      infoHash: b.infoHash.toLowerCase(),
      name: b.name.toLowerCase(),
      namespace: b.namespace,
      bitfield: Bitfield.decode(b.bitfieldBytes),
      remoteBitfields,
    };
  } catch (err) {
    throw new HandshakeError(`invalid handshake bitfield: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

function handshakeMessage(local: LocalHandshake, namespace: string): Message {
  const remote: Record<string, Uint8Array> = {};
  for (const [peer, bits] of local.remoteBitfields ?? []) remote[peer] = bits.encode();
  return bitfieldMessage({
    infoHash: local.infoHash,
    name: local.name,
    peerID: local.peerId,
    bitfieldBytes: local.bitfield.encode(),
    namespace,
    remoteBitfieldBytes: remote,
  });
}

// Runs a handshake over `conn`, closing it and wrapping the error on any failure.
async function handshakeOver<T>(conn: ByteConn, what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    closeQuietly(conn);
    if (err instanceof HandshakeError) throw err;
    throw new HandshakeError(`${what}: ${(err as Error).message}`, { cause: err });
  }
}

async function readHandshake(reader: FrameReader, timeoutMs: number): Promise<RemoteHandshake> {
  const frame = await reader.read({ timeoutMs });
  if (frame === null) throw new HandshakeError("peer closed the connection during the handshake");
  return parseHandshake(frame.message);
}

/**
 * Dials a peer and runs the initiator handshake.
 *
 * @throws {HandshakeError} when the dial, either handshake step, or a check fails (the peer id
 *   differs from `expectedPeerId`, or the reply is for another torrent or piece count).
 */
export async function dialPeer(options: DialOptions): Promise<PeerConn> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const { hostname, port, handshake } = options;
  const addr = `${hostname}:${port}`;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  let tcp: Deno.TcpConn;
  try {
    tcp = await Deno.connect({ hostname, port, signal: abort.signal });
  } catch (err) {
    const reason = abort.signal.aborted ? `timed out after ${timeoutMs} ms` : String(err);
    throw new HandshakeError(`dial ${addr}: ${reason}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
  noDelay(tcp);
  return await handshakeOver(tcp, `handshake with ${addr}`, async () => {
    const reader = new FrameReader(tcp, options);
    const writer = new FrameWriter(tcp);
    const namespace = handshake.namespace ?? "";
    await writer.write(handshakeMessage(handshake, namespace), undefined, { timeoutMs });
    const remote = await readHandshake(reader, timeoutMs);
    if (remote.peerId !== options.expectedPeerId.toLowerCase()) {
      throw new HandshakeError(
        `${addr} answered as peer ${remote.peerId}, expected ${options.expectedPeerId}`,
      );
    }
    checkSameTorrent(handshake, remote);
    return new PeerConn(tcp, reader, writer, {
      ...remote,
      namespace,
      localPeerId: handshake.peerId,
      initiated: true,
      senderBufferSize: options.senderBufferSize,
    });
  });
}

// Small control messages (requests, announces) must not wait for Nagle's algorithm to meet a
// delayed ACK; Go, which upstream peers run on, disables it on every TCP connection too.
function noDelay(conn: Deno.Conn): void {
  if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
}

function checkSameTorrent(local: LocalHandshake, remote: RemoteHandshake): void {
  if (remote.infoHash !== local.infoHash.toLowerCase()) {
    throw new HandshakeError(`info hash mismatch: ${remote.infoHash} != ${local.infoHash}`);
  }
  if (remote.bitfield.length !== local.bitfield.length) {
    throw new HandshakeError(
      `peer bitfield has ${remote.bitfield.length} pieces, torrent has ${local.bitfield.length}`,
    );
  }
}

/**
 * Runs the acceptor handshake on a freshly accepted connection.
 *
 * The lookup runs only after the first frame validated. Its handshake is sent with an empty
 * namespace; a differing info hash is rejected after that reply, as upstream does.
 *
 * @throws {HandshakeError} on any failure; `conn` is closed by then.
 */
export function acceptHandshake(
  conn: Deno.Conn,
  lookup: HandshakeLookup,
  options: ConnOptions = {},
): Promise<PeerConn> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  noDelay(conn);
  return handshakeOver(conn, "accept handshake", async () => {
    const reader = new FrameReader(conn, options);
    const writer = new FrameWriter(conn);
    const remote = await readHandshake(reader, timeoutMs);
    const local = await lookup(remote.namespace, remote.name, remote.infoHash, remote);
    if (local === null) {
      throw new HandshakeError(`torrent ${remote.name} (${remote.infoHash}) not found`);
    }
    await writer.write(handshakeMessage(local, ""), undefined, { timeoutMs });
    checkSameTorrent(local, remote);
    return new PeerConn(conn, reader, writer, {
      ...remote,
      localPeerId: local.peerId,
      initiated: false,
      senderBufferSize: options.senderBufferSize,
    });
  });
}

/** Options for {@linkcode servePeers}. */
export interface ServePeersOptions extends ConnOptions {
  /** Finds the torrent a handshake asks for. */
  lookup: HandshakeLookup;
  /** Receives each connection that completed the handshake. */
  onConn: (conn: PeerConn) => void;
  /** Told about each rejected handshake; default ignores them. */
  onError?: (err: Error) => void;
}

/** A running accept loop. */
export interface PeerServer {
  /** Stops accepting, closes the listener, aborts in-flight handshakes and waits for them. */
  close(): Promise<void>;
}

/**
 * Accepts connections on `listener` and runs {@linkcode acceptHandshake} on each.
 *
 * A failed handshake only closes that connection; the loop keeps accepting.
 */
export function servePeers(listener: Deno.Listener, options: ServePeersOptions): PeerServer {
  const inflight = new Set<Promise<void>>();
  // Connections still handshaking, closed on shutdown so close() never waits out a deadline.
  const handshaking = new Set<Deno.Conn>();
  let stopping = false;
  const loop = (async () => {
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (err) {
        // A closed listener ends the loop; anything else (such as EMFILE) is transient.
        if (stopping || err instanceof Deno.errors.BadResource) return;
        options.onError?.(err as Error);
        continue;
      }
      const task = handle(conn);
      inflight.add(task);
      task.then(() => inflight.delete(task));
    }
  })();
  async function handle(conn: Deno.Conn): Promise<void> {
    let peer: PeerConn;
    handshaking.add(conn);
    try {
      peer = await acceptHandshake(conn, options.lookup, options);
    } catch (err) {
      if (!stopping) options.onError?.(err as Error);
      return;
    } finally {
      handshaking.delete(conn);
    }
    if (stopping) {
      peer.close();
      return;
    }
    try {
      options.onConn(peer);
    } catch (err) {
      peer.close();
      options.onError?.(err as Error);
    }
  }
  return {
    async close() {
      stopping = true;
      try {
        listener.close();
      } catch {
        // Already closed by the owner.
      }
      await loop;
      for (const conn of handshaking) closeQuietly(conn);
      await Promise.all(inflight);
    },
  };
}

/** Identity and state of the peer at the other end of a {@linkcode PeerConn}. */
export interface PeerConnInfo extends RemoteHandshake {
  /** This node's peer id. */
  localPeerId: string;
  /** Whether this node dialed. */
  initiated: boolean;
  /** Send queue capacity. Default 10000. */
  senderBufferSize?: number;
}

/**
 * An established connection for one torrent. Created by {@linkcode dialPeer} or
 * {@linkcode acceptHandshake}, which hand over the reader holding any bytes that followed the
 * handshake.
 *
 * Iterate it once to receive frames; iteration ends when either side closes and throws on a
 * protocol or socket error (the connection is closed by then).
 */
export class PeerConn implements AsyncIterable<Frame> {
  /** The remote peer's id. */
  readonly peerId: string;
  /** This node's peer id. */
  readonly localPeerId: string;
  /** Info hash of the torrent. */
  readonly infoHash: string;
  /** Blob digest hex. */
  readonly name: string;
  /** Namespace from the initiator's handshake. */
  readonly namespace: string;
  /** The remote's bitfield as of the handshake. */
  readonly remoteBitfield: Bitfield;
  /** The remote's view of its other peers' bitfields, as of the handshake. */
  readonly remoteBitfields: Map<string, Bitfield>;
  /** Whether this node dialed. */
  readonly initiated: boolean;
  /** Resolves once the connection is closed and its writer has stopped. */
  readonly closed: Promise<void>;

  #conn: ByteConn;
  #reader: FrameReader;
  #writer: FrameWriter;
  #capacity: number;
  #queue: OutgoingItem[] = [];
  #head = 0;
  #wake: (() => void) | undefined;
  #isClosed = false;

  /** Wraps a connection whose handshake has completed. */
  constructor(conn: ByteConn, reader: FrameReader, writer: FrameWriter, info: PeerConnInfo) {
    this.#conn = conn;
    this.#reader = reader;
    this.#writer = writer;
    this.#capacity = info.senderBufferSize ?? DEFAULT_SENDER_BUFFER_SIZE;
    this.peerId = info.peerId;
    this.localPeerId = info.localPeerId;
    this.infoHash = info.infoHash;
    this.name = info.name;
    this.namespace = info.namespace;
    this.remoteBitfield = info.bitfield;
    this.remoteBitfields = info.remoteBitfields;
    this.initiated = info.initiated;
    this.closed = this.#writeLoop();
  }

  /** Whether `close` has been called or the connection failed. */
  get isClosed(): boolean {
    return this.#isClosed;
  }

  /**
   * Queues a message. Returns false, dropping it, when the connection is closed or the queue
   * holds `senderBufferSize` messages already.
   */
  send(item: OutgoingItem): boolean {
    if (this.#isClosed || this.#queue.length - this.#head >= this.#capacity) return false;
    this.#queue.push(item);
    this.#wake?.();
    return true;
  }

  /**
   * Gives the receive ring's buffers back to the `bufferPool`. Call it only once no payload
   * received on this connection is still in use (its pieces stored or dropped).
   */
  releaseBuffers(): void {
    this.#reader.releaseBuffers();
  }

  /** Closes the socket and drops queued messages. Idempotent. */
  close(): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    this.#queue = [];
    this.#head = 0;
    closeQuietly(this.#conn);
    this.#wake?.();
  }

  /** Yields incoming frames until the connection closes. */
  async *[Symbol.asyncIterator](): AsyncIterator<Frame> {
    while (!this.#isClosed) {
      let frame: Frame | null;
      try {
        frame = await this.#reader.read();
      } catch (err) {
        if (this.#isClosed) return;
        this.close();
        throw err;
      }
      if (frame === null) {
        this.close();
        return;
      }
      yield frame;
    }
  }

  async #writeLoop(): Promise<void> {
    while (true) {
      if (this.#head === this.#queue.length && !this.#isClosed) {
        await new Promise<void>((resolve) => this.#wake = resolve);
        this.#wake = undefined;
        continue;
      }
      if (this.#isClosed) return;
      const item = this.#queue[this.#head++];
      // Drop consumed slots once the queue drains, keeping shift() costs away.
      if (this.#head === this.#queue.length) {
        this.#queue = [];
        this.#head = 0;
      }
      try {
        const out = typeof item === "function" ? await item() : item;
        if (this.#isClosed) return;
        if (out.encoded !== undefined) await this.#writer.writeEncoded(out.encoded);
        else await this.#writer.write(out.message, out.payload);
      } catch {
        // A write error ends the connection; the reader side sees the close.
        this.close();
        return;
      }
    }
  }
}
