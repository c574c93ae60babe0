/**
 * Framing of P2P messages on a TCP stream.
 *
 * A frame is a 4-byte big-endian length followed by that many bytes of a protobuf
 * `p2p.Message` (at most {@linkcode MAX_MESSAGE_LENGTH}). A PIECE_PAYLOAD frame is followed on
 * the stream by exactly `piecePayload.length` raw piece bytes, which the length prefix does not
 * count. A frame that breaks these rules raises a {@linkcode FrameError}; the stream is then out
 * of sync and the caller must drop the connection.
 *
 * {@linkcode FrameReader} buffers small reads but reads piece payloads straight into the
 * returned array, so piece bytes are copied only when they arrived in the same read as their
 * header. With `payloadBuffers: n` that array is one of a ring of `n` buffers kept across frames
 * (a fresh 4 MiB array per piece costs more CPU in zeroing and page faults than the copy out of
 * the socket), taken from a `bufferPool` when one is given so they outlive the connection.
 * A sender that reads a piece into a buffer at {@linkcode PAYLOAD_HEADER_ROOM} can have the frame
 * header put just before it ({@linkcode encodePayloadFrame}) and send the whole PIECE_PAYLOAD frame
 * in one write ({@linkcode FrameWriter.writeEncoded}): the same bytes on the wire as a header write
 * followed by a payload write, one socket write (and one TCP push) fewer per piece.
 * Timeouts close the connection: a TCP read cannot be cancelled otherwise, and a connection that
 * missed a deadline is dropped anyway.
 *
 * @example
 * ```ts
 * import { FrameReader, FrameWriter } from "./frame.ts";
 * import { completeMessage } from "./message.ts";
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: 8000 });
 * await new FrameWriter(conn).write(completeMessage());
 * const frame = await new FrameReader(conn).read({ timeoutMs: 5000 });
 * ```
 *
 * @module
 */

import { closeQuietly } from "../common/close.ts";
import type { PieceBufferSource } from "./buffer_pool.ts";
import {
  decodeMessage,
  encodeMessage,
  type Message,
  MessageError,
  MessageType,
} from "./message.ts";

/** Largest protobuf message a frame may carry (32 KiB), handshake bitfields included. */
export const MAX_MESSAGE_LENGTH = 32768;

/** Default cap on piece payload bytes after a PIECE_PAYLOAD frame (64 MiB). */
export const DEFAULT_MAX_PAYLOAD_LENGTH = 64 * 1024 * 1024;

/** A stream that violates the framing rules; the connection must be dropped. */
export class FrameError extends Error {
  /** Creates the error; `cause` is the decoder's error for an undecodable message. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "FrameError";
  }
}

/** A read or write that missed its deadline; the connection has been closed. */
export class DeadlineError extends Error {
  /** Creates the error naming the operation and its timeout. */
  constructor(message: string) {
    super(message);
    this.name = "DeadlineError";
  }
}

/** The part of `Deno.Conn` the framing needs; any `Deno.Conn` satisfies it. */
export interface ByteConn {
  /** Reads into `p`, resolving to the byte count or `null` at end of stream. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes some prefix of `p`, resolving to its length. */
  write(p: Uint8Array): Promise<number>;
  /** Closes the stream; pending reads and writes must then settle. */
  close(): void;
}

/** One received frame. */
export interface Frame {
  /** The decoded message. */
  message: Message;
  /** The raw piece bytes that followed a PIECE_PAYLOAD frame. */
  payload?: Uint8Array;
}

/** Options for {@linkcode FrameReader}. */
export interface FrameReaderOptions {
  /**
   * Largest PIECE_PAYLOAD length accepted; a larger one is a {@linkcode FrameError} rather
   * than an allocation a peer chooses. Default {@linkcode DEFAULT_MAX_PAYLOAD_LENGTH}.
   */
  maxPayloadLength?: number;
  /**
   * Read piece payloads into a ring of this many buffers kept by the reader: a payload is then
   * valid only until `payloadBuffers` more payloads have been read. Default 0: each payload is a
   * fresh array the caller owns.
   */
  payloadBuffers?: number;
  /**
   * Where the ring's buffers come from; {@linkcode FrameReader.releaseBuffers} gives them back.
   * Default: the reader allocates its own.
   */
  bufferPool?: PieceBufferSource;
}

/** Options for a single read or write. */
export interface DeadlineOptions {
  /** Milliseconds allowed for the whole frame; on expiry the connection is closed. */
  timeoutMs?: number;
}

/** Closes `conn` if `fn` has not settled after `timeoutMs`, turning the fallout into a DeadlineError. */
async function withDeadline<T>(
  conn: ByteConn,
  what: string,
  timeoutMs: number | undefined,
  fn: () => Promise<T>,
): Promise<T> {
  if (timeoutMs === undefined) return await fn();
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    closeQuietly(conn);
  }, timeoutMs);
  try {
    return await fn();
  } catch (err) {
    if (expired) throw new DeadlineError(`${what} did not finish within ${timeoutMs} ms`);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

// An unfilled ring slot.
const EMPTY = new Uint8Array(0);

/** Reads frames from a connection. Not safe for concurrent `read` calls. */
export class FrameReader {
  #conn: ByteConn;
  #maxPayload: number;
  // Buffered bytes live in #buf[#start, #end). Sized for one maximal frame plus a header.
  #buf = new Uint8Array(2 * (MAX_MESSAGE_LENGTH + 4));
  #start = 0;
  #end = 0;
  #ring: Uint8Array[];
  #next = 0;
  #pool: PieceBufferSource | undefined;

  /** Wraps `conn`; the reader owns its read side from now on. */
  constructor(conn: ByteConn, options: FrameReaderOptions = {}) {
    this.#conn = conn;
    this.#maxPayload = options.maxPayloadLength ?? DEFAULT_MAX_PAYLOAD_LENGTH;
    this.#ring = Array.from({ length: options.payloadBuffers ?? 0 }, () => EMPTY);
    this.#pool = options.bufferPool;
  }

  /**
   * Gives the ring's buffers back to the `bufferPool` (the ring refills from it on later reads).
   * Call it only when no payload this reader returned is still in use.
   */
  releaseBuffers(): void {
    for (const [slot, buffer] of this.#ring.entries()) {
      if (buffer !== EMPTY) this.#pool?.give(buffer);
      this.#ring[slot] = EMPTY;
    }
  }

  /**
   * Reads the next frame (and its payload, for PIECE_PAYLOAD).
   *
   * @returns the frame, or `null` when the stream ends cleanly between frames.
   * @throws {FrameError} on an oversized length, undecodable message or truncated frame.
   * @throws {DeadlineError} when `timeoutMs` passes first (the connection is then closed).
   */
  read(options: DeadlineOptions = {}): Promise<Frame | null> {
    return withDeadline(this.#conn, "frame read", options.timeoutMs, () => this.#read());
  }

  async #read(): Promise<Frame | null> {
    if (!(await this.#fill(4, true))) return null;
    const view = new DataView(this.#buf.buffer, this.#start, 4);
    const length = view.getUint32(0, false);
    if (length > MAX_MESSAGE_LENGTH) {
      throw new FrameError(`frame length ${length} exceeds ${MAX_MESSAGE_LENGTH}`);
    }
    await this.#fill(4 + length, false);
    let message: Message;
    try {
      message = decodeMessage(this.#buf.subarray(this.#start + 4, this.#start + 4 + length));
    } catch (err) {
      if (err instanceof MessageError) throw new FrameError(err.message, { cause: err });
      throw err;
    }
    this.#start += 4 + length;
    if (message.type !== MessageType.PIECE_PAYLOAD) return { message };
    const payloadLength = message.piecePayload?.length ?? 0;
    if (payloadLength < 0 || payloadLength > this.#maxPayload) {
      throw new FrameError(`piece payload length ${payloadLength} out of range`);
    }
    return { message, payload: await this.#readPayload(payloadLength) };
  }

  // Ensures `n` bytes are buffered. Returns false only for a clean EOF with nothing buffered
  // when `eofOk`; any other EOF is a truncated frame.
  async #fill(n: number, eofOk: boolean): Promise<boolean> {
    while (this.#end - this.#start < n) {
      if (this.#buf.length - this.#start < n) {
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      }
      const got = await this.#conn.read(this.#buf.subarray(this.#end));
      if (got === null) {
        if (eofOk && this.#end === this.#start) return false;
        throw new FrameError("connection closed in the middle of a frame");
      }
      this.#end += got;
    }
    return true;
  }

  async #readPayload(length: number): Promise<Uint8Array> {
    let payload: Uint8Array;
    if (this.#ring.length === 0) payload = new Uint8Array(length);
    else {
      const slot = this.#next;
      this.#next = (slot + 1) % this.#ring.length;
      if (this.#ring[slot].length < length) {
        if (this.#ring[slot] !== EMPTY) this.#pool?.give(this.#ring[slot]);
        this.#ring[slot] = this.#pool?.take(length) ?? new Uint8Array(length);
      }
      payload = this.#ring[slot].subarray(0, length);
    }
    const buffered = Math.min(length, this.#end - this.#start);
    payload.set(this.#buf.subarray(this.#start, this.#start + buffered));
    this.#start += buffered;
    let filled = buffered;
    while (filled < length) {
      const got = await this.#conn.read(payload.subarray(filled));
      if (got === null) throw new FrameError("connection closed in the middle of a piece payload");
      filled += got;
    }
    return payload;
  }
}

/**
 * Encodes a message as a frame: the 4-byte big-endian length and the protobuf bytes.
 *
 * @throws {FrameError} when the message exceeds {@linkcode MAX_MESSAGE_LENGTH}.
 */
export function encodeFrame(message: Message): Uint8Array {
  const body = encodeMessage(message);
  if (body.length > MAX_MESSAGE_LENGTH) {
    throw new FrameError(`message of ${body.length} bytes exceeds ${MAX_MESSAGE_LENGTH}`);
  }
  const frame = new Uint8Array(4 + body.length);
  new DataView(frame.buffer).setUint32(0, body.length, false);
  frame.set(body, 4);
  return frame;
}

/**
 * Bytes a send buffer keeps free before a piece for its PIECE_PAYLOAD frame header (the 4-byte
 * length and the message: about 20 bytes for a whole piece), see {@linkcode encodePayloadFrame}.
 */
export const PAYLOAD_HEADER_ROOM = 64;

/**
 * Completes a PIECE_PAYLOAD frame in place: the `payloadLength` piece bytes are already at
 * `buffer[PAYLOAD_HEADER_ROOM, PAYLOAD_HEADER_ROOM + payloadLength)`; the frame header for
 * `message` is written into the bytes just before them. Returns the frame, header then payload,
 * as a view of `buffer` (nothing is copied but the header).
 *
 * @throws {FrameError} when `message` is not a PIECE_PAYLOAD of `payloadLength` bytes, its header
 *   does not fit in {@linkcode PAYLOAD_HEADER_ROOM}, or `buffer` is too short.
 */
export function encodePayloadFrame(
  message: Message,
  buffer: Uint8Array,
  payloadLength: number,
): Uint8Array {
  if (message.type !== MessageType.PIECE_PAYLOAD) {
    throw new FrameError("only PIECE_PAYLOAD frames carry payload bytes");
  }
  const declared = message.piecePayload?.length ?? 0;
  if (declared !== payloadLength) {
    throw new FrameError(
      `PIECE_PAYLOAD declares ${declared} bytes but ${payloadLength} were given`,
    );
  }
  if (buffer.length < PAYLOAD_HEADER_ROOM + payloadLength) {
    throw new FrameError(
      `a ${buffer.length}-byte buffer cannot hold a ${payloadLength}-byte frame`,
    );
  }
  const header = encodeFrame(message);
  if (header.length > PAYLOAD_HEADER_ROOM) {
    throw new FrameError(`frame header of ${header.length} bytes exceeds ${PAYLOAD_HEADER_ROOM}`);
  }
  const start = PAYLOAD_HEADER_ROOM - header.length;
  buffer.set(header, start);
  return buffer.subarray(start, PAYLOAD_HEADER_ROOM + payloadLength);
}

/** Writes frames to a connection. Not safe for concurrent `write` calls. */
export class FrameWriter {
  #conn: ByteConn;

  /** Wraps `conn`; the writer owns its write side from now on. */
  constructor(conn: ByteConn) {
    this.#conn = conn;
  }

  /**
   * Writes one frame, then `payload` for a PIECE_PAYLOAD message.
   *
   * @throws {FrameError} when the message is too large or the payload does not match
   *   `piecePayload.length` (checked before anything is written).
   * @throws {DeadlineError} when `timeoutMs` passes first (the connection is then closed).
   */
  async write(
    message: Message,
    payload?: Uint8Array,
    options: DeadlineOptions = {},
  ): Promise<void> {
    const expected = message.type === MessageType.PIECE_PAYLOAD
      ? message.piecePayload?.length ?? 0
      : undefined;
    if (expected !== (payload === undefined ? undefined : payload.length)) {
      throw new FrameError(
        expected === undefined
          ? "only PIECE_PAYLOAD frames carry payload bytes"
          : `PIECE_PAYLOAD declares ${expected} bytes but ${payload?.length ?? 0} were given`,
      );
    }
    const frame = encodeFrame(message);
    await withDeadline(this.#conn, "frame write", options.timeoutMs, async () => {
      await this.#writeAll(frame);
      if (payload !== undefined && payload.length > 0) await this.#writeAll(payload);
    });
  }

  /**
   * Writes bytes that are whole frames already (from {@linkcode encodePayloadFrame} or
   * {@linkcode encodeFrame}) as they are, in as few writes as the socket takes.
   *
   * @throws {DeadlineError} when `timeoutMs` passes first (the connection is then closed).
   */
  async writeEncoded(frame: Uint8Array, options: DeadlineOptions = {}): Promise<void> {
    await withDeadline(this.#conn, "frame write", options.timeoutMs, () => this.#writeAll(frame));
  }

  async #writeAll(p: Uint8Array): Promise<void> {
    for (let off = 0; off < p.length;) off += await this.#conn.write(p.subarray(off));
  }
}
