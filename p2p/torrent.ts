/**
 * The storage seam of the P2P layer: what a dispatcher needs to know about one torrent's
 * pieces, and the piece checks that do not depend on where the pieces live.
 *
 * Agents back a {@linkcode TorrentStorage} with their download file and piece-status
 * metadata; origins with a complete cache file (every piece present, writes unsupported).
 *
 * @module
 */

import { crc32 } from "node:zlib";
import type { Bitfield } from "./bitfield.ts";

/**
 * One torrent's pieces as the dispatcher sees them. Pieces are consecutive slices of
 * `pieceLength(0)` bytes (the last may be shorter), checked by CRC-32 IEEE sums from the
 * metainfo.
 *
 * While a dispatcher runs it is the only writer: it keeps its own copy of `bitfield()` and
 * updates it after each `writePiece`.
 */
export interface TorrentStorage {
  /** Info hash, 40 lowercase hex characters. */
  readonly infoHash: string;
  /** Blob digest hex, 64 lowercase characters without `sha256:`. */
  readonly digestHex: string;
  /** Number of pieces, ceil(length / piece length); 0 for an empty blob. */
  readonly numPieces: number;
  /** Length in bytes of piece `i`. */
  pieceLength(i: number): number;
  /** CRC-32 IEEE sum of piece `i` from the metainfo, as an unsigned 32-bit integer. */
  pieceSum(i: number): number;
  /** The pieces present now. */
  bitfield(): Bitfield;
  /**
   * Reads piece `i`, into the start of `into` when given (then the result is a view of it);
   * rejects when it is absent or unreadable.
   */
  readPiece(i: number, into?: Uint8Array): Promise<Uint8Array>;
  /** Stores piece `i`, whose checksum the caller has already verified. */
  writePiece(i: number, bytes: Uint8Array): Promise<void>;
  /** Whether every piece is present. */
  complete(): boolean;
}

/** Whether `bytes` has the length and CRC-32 sum recorded for piece `i`. */
export function verifyPiece(storage: TorrentStorage, i: number, bytes: Uint8Array): boolean {
  return bytes.length === storage.pieceLength(i) && crc32(bytes) >>> 0 === storage.pieceSum(i);
}

/** The largest piece length of a torrent: the first piece's, or 0 for an empty blob. */
export function maxPieceLength(storage: TorrentStorage): number {
  return storage.numPieces === 0 ? 0 : storage.pieceLength(0);
}
