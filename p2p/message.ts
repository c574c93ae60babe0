/**
 * The `p2p.Message` protobuf (proto3, package `p2p`) that Kraken peers exchange, with its
 * binary encoder and decoder built on `@bufbuild/protobuf/wire`.
 *
 * Field numbers follow upstream's `proto/p2p/p2p.proto`, including the misspelled
 * `ANNOUCE_PIECE` type. Proto3 rules apply both ways: zero and empty scalars are omitted when
 * encoding (a handshake BITFIELD has no `type` field, index 0 is absent), missing fields decode
 * as zero or empty, unknown fields and known fields with an unexpected wire type are skipped as
 * Go's protobuf runtime does, and strings must be valid UTF-8. Enums are open: an unknown
 * `type` or `code` value decodes as its number.
 *
 * Piece bytes are never inside a message; see `frame.ts` for how they follow a PIECE_PAYLOAD.
 *
 * @example
 * ```ts
 * import { decodeMessage, encodeMessage, pieceRequestMessage } from "./message.ts";
 * const bytes = encodeMessage(pieceRequestMessage(5, 4194304));
 * // bytes = 10 01 22 07 10 05 20 80 80 80 02
 * decodeMessage(bytes).pieceRequest?.index; // 5
 * ```
 *
 * @module
 */

import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";

/** `Message.Type` values. The enum is open, so a decoded `type` may hold other numbers. */
export const MessageType = {
  BITFIELD: 0,
  PIECE_REQUEST: 1,
  PIECE_PAYLOAD: 2,
  /** Upstream's spelling; it is the real name of the value. */
  ANNOUCE_PIECE: 3,
  CANCEL_PIECE: 4,
  ERROR: 5,
  COMPLETE: 6,
} as const;

/** `ErrorMessage.ErrorCode` values. */
export const ErrorCode = {
  PIECE_REQUEST_FAILED: 0,
} as const;

/** The handshake message: who the sender is, which torrent, and which pieces it holds. */
export interface BitfieldMessage {
  /** Info hash, 40 lowercase hex characters (field 2). */
  infoHash: string;
  /** Blob digest hex, 64 characters without `sha256:` (field 3). */
  name: string;
  /** Sender's peer id, 40 hex characters (field 4). */
  peerID: string;
  /** Sender's bitfield in willf/bitset binary form (field 5). */
  bitfieldBytes: Uint8Array;
  /** Namespace; set only by the connection initiator (field 6). */
  namespace: string;
  /** Peer id hex → bitfield bytes of each peer the sender is connected to (field 7). */
  remoteBitfieldBytes: Map<string, Uint8Array>;
}

/** Request for one whole piece: `offset` must be 0 and `length` the exact piece length. */
export interface PieceRequestMessage {
  /** Piece index (field 2). */
  index: number;
  /** Byte offset in the piece (field 3); always 0. */
  offset: number;
  /** Number of bytes (field 4); the piece's exact length. */
  length: number;
}

/** Header of a piece; `length` raw bytes follow the frame on the stream. */
export interface PiecePayloadMessage {
  /** Piece index (field 2). */
  index: number;
  /** Byte offset in the piece (field 3); always 0. */
  offset: number;
  /** Number of raw bytes following the frame (field 4). */
  length: number;
  /** Unused by upstream (field 5). */
  digest: string;
}

/** Tells a peer the sender now holds a piece. */
export interface AnnouncePieceMessage {
  /** Piece index (field 2). */
  index: number;
}

/** Cancels a piece request; upstream never sends it and ignores it. */
export interface CancelPieceMessage {
  /** Piece index (field 2). */
  index: number;
}

/** A failed piece request. */
export interface ErrorMessage {
  /** Human-readable reason (field 2). */
  error: string;
  /** Piece index the error is about (field 3). */
  index: number;
  /** Error code (field 4); see {@linkcode ErrorCode}. */
  code: number;
}

/** The empty COMPLETE sub-message; upstream never sets it, only `type`. */
export type CompleteMessage = Record<string, never>;

/** A `p2p.Message`. Decoded sub-messages always carry every field, zero when absent. */
export interface Message {
  /** Field 1; never set by upstream. */
  version: string;
  /** Field 2; see {@linkcode MessageType}. */
  type: number;
  /** Field 3. */
  bitfield?: BitfieldMessage;
  /** Field 4. */
  pieceRequest?: PieceRequestMessage;
  /** Field 5. */
  piecePayload?: PiecePayloadMessage;
  /** Field 6. */
  announcePiece?: AnnouncePieceMessage;
  /** Field 7. */
  cancelPiece?: CancelPieceMessage;
  /** Field 8. */
  error?: ErrorMessage;
  /** Field 9. */
  complete?: CompleteMessage;
}

/** A byte sequence that is not a valid `p2p.Message`. */
export class MessageError extends Error {
  /** Creates the error; `cause` is the protobuf reader's own error, when there is one. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "MessageError";
  }
}

/** Builds a handshake BITFIELD message (its `type` is 0, so it has no type field on the wire). */
export function bitfieldMessage(
  fields: Omit<BitfieldMessage, "namespace" | "remoteBitfieldBytes"> & {
    namespace?: string;
    remoteBitfieldBytes?: Map<string, Uint8Array>;
  },
): Message {
  return {
    version: "",
    type: MessageType.BITFIELD,
    bitfield: {
      ...fields,
      namespace: fields.namespace ?? "",
      remoteBitfieldBytes: fields.remoteBitfieldBytes ?? new Map(),
    },
  };
}

/** Builds a PIECE_REQUEST for a whole piece of `length` bytes. */
export function pieceRequestMessage(index: number, length: number): Message {
  return {
    version: "",
    type: MessageType.PIECE_REQUEST,
    pieceRequest: { index, offset: 0, length },
  };
}

/** Builds the PIECE_PAYLOAD header for a whole piece of `length` bytes. */
export function piecePayloadMessage(index: number, length: number): Message {
  return {
    version: "",
    type: MessageType.PIECE_PAYLOAD,
    piecePayload: { index, offset: 0, length, digest: "" },
  };
}

/** Builds an ANNOUCE_PIECE message. */
export function announcePieceMessage(index: number): Message {
  return { version: "", type: MessageType.ANNOUCE_PIECE, announcePiece: { index } };
}

/** Builds an ERROR message with code PIECE_REQUEST_FAILED. */
export function errorMessage(index: number, error: string): Message {
  return {
    version: "",
    type: MessageType.ERROR,
    error: { error, index, code: ErrorCode.PIECE_REQUEST_FAILED },
  };
}

/** Builds a COMPLETE message the way upstream sends it: only `type`, no sub-message. */
export function completeMessage(): Message {
  return { version: "", type: MessageType.COMPLETE };
}

/** Encodes a message to protobuf bytes (without the frame length). */
export function encodeMessage(msg: Message): Uint8Array {
  const w = new BinaryWriter();
  if (msg.version !== "") w.tag(1, WireType.LengthDelimited).string(msg.version);
  if (msg.type !== 0) w.tag(2, WireType.Varint).int32(msg.type);
  if (msg.bitfield) {
    w.tag(3, WireType.LengthDelimited).fork();
    writeBitfield(w, msg.bitfield);
    w.join();
  }
  if (msg.pieceRequest) {
    const m = msg.pieceRequest;
    w.tag(4, WireType.LengthDelimited).fork();
    writeInt32s(w, [m.index, m.offset, m.length]);
    w.join();
  }
  if (msg.piecePayload) {
    const m = msg.piecePayload;
    w.tag(5, WireType.LengthDelimited).fork();
    writeInt32s(w, [m.index, m.offset, m.length]);
    if (m.digest !== "") w.tag(5, WireType.LengthDelimited).string(m.digest);
    w.join();
  }
  if (msg.announcePiece) {
    w.tag(6, WireType.LengthDelimited).fork();
    writeInt32s(w, [msg.announcePiece.index]);
    w.join();
  }
  if (msg.cancelPiece) {
    w.tag(7, WireType.LengthDelimited).fork();
    writeInt32s(w, [msg.cancelPiece.index]);
    w.join();
  }
  if (msg.error) {
    const m = msg.error;
    w.tag(8, WireType.LengthDelimited).fork();
    if (m.error !== "") w.tag(2, WireType.LengthDelimited).string(m.error);
    if (m.index !== 0) w.tag(3, WireType.Varint).int32(m.index);
    if (m.code !== 0) w.tag(4, WireType.Varint).int32(m.code);
    w.join();
  }
  if (msg.complete) w.tag(9, WireType.LengthDelimited).bytes(new Uint8Array(0));
  return w.finish();
}

// Writes int32 fields numbered 2, 3, ... in order, omitting zeros (all the index-like
// sub-messages start at field 2 because upstream left field 1 unused).
function writeInt32s(w: BinaryWriter, values: number[]): void {
  values.forEach((v, i) => {
    if (v !== 0) w.tag(i + 2, WireType.Varint).int32(v);
  });
}

function writeBitfield(w: BinaryWriter, m: BitfieldMessage): void {
  if (m.infoHash !== "") w.tag(2, WireType.LengthDelimited).string(m.infoHash);
  if (m.name !== "") w.tag(3, WireType.LengthDelimited).string(m.name);
  if (m.peerID !== "") w.tag(4, WireType.LengthDelimited).string(m.peerID);
  if (m.bitfieldBytes.length > 0) w.tag(5, WireType.LengthDelimited).bytes(m.bitfieldBytes);
  if (m.namespace !== "") w.tag(6, WireType.LengthDelimited).string(m.namespace);
  // Map entries are messages {1: key, 2: value}; both are always written, as Go does.
  for (const [key, value] of m.remoteBitfieldBytes) {
    w.tag(7, WireType.LengthDelimited).fork();
    w.tag(1, WireType.LengthDelimited).string(key);
    w.tag(2, WireType.LengthDelimited).bytes(value);
    w.join();
  }
}

/**
 * Decodes protobuf bytes into a message. Byte fields are copied, so the result never aliases
 * `data`.
 *
 * @throws {MessageError} on truncated or malformed protobuf or invalid UTF-8.
 */
export function decodeMessage(data: Uint8Array): Message {
  try {
    return readMessage(new BinaryReader(data));
  } catch (err) {
    if (err instanceof MessageError) throw err;
    throw new MessageError(`invalid p2p message: ${(err as Error).message}`, { cause: err });
  }
}

// Calls `field` for each field of the message in `r`; a field whose wire type differs from
// the schema's is skipped like an unknown field. Repeated embedded messages merge, as in
// proto3, because the callbacks update the same target object.
function readFields(
  r: BinaryReader,
  schema: Record<number, WireType>,
  field: (no: number) => void,
): void {
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (schema[no] === wt) field(no);
    else r.skip(wt, no);
  }
}

const V = WireType.Varint;
const L = WireType.LengthDelimited;

function readMessage(r: BinaryReader): Message {
  const msg: Message = { version: "", type: 0 };
  readFields(r, { 1: L, 2: V, 3: L, 4: L, 5: L, 6: L, 7: L, 8: L, 9: L }, (no) => {
    switch (no) {
      case 1:
        msg.version = r.string(true);
        break;
      case 2:
        msg.type = r.int32();
        break;
      case 3:
        msg.bitfield = readBitfield(sub(r), msg.bitfield);
        break;
      case 4:
        msg.pieceRequest = readIndexed(sub(r), msg.pieceRequest ?? zeroRange());
        break;
      case 5:
        msg.piecePayload = readPayload(sub(r), msg.piecePayload);
        break;
      case 6:
        msg.announcePiece = readIndexed(sub(r), msg.announcePiece ?? { index: 0 });
        break;
      case 7:
        msg.cancelPiece = readIndexed(sub(r), msg.cancelPiece ?? { index: 0 });
        break;
      case 8:
        msg.error = readError(sub(r), msg.error);
        break;
      case 9:
        readFields(sub(r), {}, () => {});
        msg.complete = {};
        break;
    }
  });
  return msg;
}

function sub(r: BinaryReader): BinaryReader {
  return new BinaryReader(r.bytes());
}

function zeroRange(): PieceRequestMessage {
  return { index: 0, offset: 0, length: 0 };
}

// Reads the int32 fields 2 (index), 3 (offset) and 4 (length) that the piece sub-messages
// share; a target without `offset`/`length` keys ignores those fields, as its schema has none.
function readIndexed<T extends { index: number; offset?: number; length?: number }>(
  r: BinaryReader,
  target: T,
): T {
  const schema: Record<number, WireType> = { 2: V };
  if ("offset" in target) schema[3] = V;
  if ("length" in target) schema[4] = V;
  readFields(r, schema, (no) => {
    const v = r.int32();
    if (no === 2) target.index = v;
    else if (no === 3) target.offset = v;
    else target.length = v;
  });
  return target;
}

function readPayload(r: BinaryReader, prev?: PiecePayloadMessage): PiecePayloadMessage {
  const m = prev ?? { index: 0, offset: 0, length: 0, digest: "" };
  readFields(r, { 2: V, 3: V, 4: V, 5: L }, (no) => {
    if (no === 5) m.digest = r.string(true);
    else if (no === 2) m.index = r.int32();
    else if (no === 3) m.offset = r.int32();
    else m.length = r.int32();
  });
  return m;
}

function readError(r: BinaryReader, prev?: ErrorMessage): ErrorMessage {
  const m = prev ?? { error: "", index: 0, code: 0 };
  readFields(r, { 2: L, 3: V, 4: V }, (no) => {
    if (no === 2) m.error = r.string(true);
    else if (no === 3) m.index = r.int32();
    else m.code = r.int32();
  });
  return m;
}

function readBitfield(r: BinaryReader, prev?: BitfieldMessage): BitfieldMessage {
  const m = prev ?? {
    infoHash: "",
    name: "",
    peerID: "",
    bitfieldBytes: new Uint8Array(0),
    namespace: "",
    remoteBitfieldBytes: new Map(),
  };
  readFields(r, { 2: L, 3: L, 4: L, 5: L, 6: L, 7: L }, (no) => {
    switch (no) {
      case 2:
        m.infoHash = r.string(true);
        break;
      case 3:
        m.name = r.string(true);
        break;
      case 4:
        m.peerID = r.string(true);
        break;
      case 5:
        m.bitfieldBytes = r.bytes().slice();
        break;
      case 6:
        m.namespace = r.string(true);
        break;
      case 7: {
        const entry = sub(r);
        let key = "";
        let value = new Uint8Array(0);
        readFields(entry, { 1: L, 2: L }, (eno) => {
          if (eno === 1) key = entry.string(true);
          else value = entry.bytes().slice();
        });
        m.remoteBitfieldBytes.set(key, value);
        break;
      }
    }
  });
  return m;
}
