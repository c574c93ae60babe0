/**
 * Kraken's torrent metadata ("metainfo") for one blob, byte-compatible with upstream Go nodes.
 *
 * A metainfo splits a blob into fixed-size pieces (the last may be shorter) and records the
 * CRC-32 (IEEE) of each piece. Its serialised form is compact JSON with Go field names in a fixed
 * order; its info hash is the SHA-1 of the bencoded info dictionary with keys sorted byte-wise.
 * Both must match Go byte for byte, or peers disagree on torrent identity (kraken-wire.md §3).
 *
 * Piece length comes from a {@linkcode PieceLengthTable}, which maps blob sizes to piece lengths
 * exactly like the origin's `metainfogen.piece_lengths` config. Every origin of a cluster must use
 * the same table.
 *
 * @example
 * ```ts
 * import { digestOfBytes } from "./digest.ts";
 * import { generateMetaInfo, PieceLengthTable } from "./metainfo.ts";
 *
 * const bytes = new TextEncoder().encode("hello");
 * const table = new PieceLengthTable({ 0: "4MB" });
 * const mi = await generateMetaInfo(await digestOfBytes(bytes), {
 *   stream: ReadableStream.from([bytes]),
 *   size: bytes.length,
 * }, table);
 * mi.serialize(); // {"Info":{"PieceLength":4194304,"PieceSums":[...],"Name":"2cf2…","Length":5}}
 * mi.infoHash.hex;
 * ```
 *
 * @module
 */

import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
import { bencode } from "./bencode.ts";
import { Digest } from "./digest.ts";
import { parseByteSize } from "../common/byte_size.ts";
import { bytesToHex } from "../common/bytes.ts";

/** Thrown when metainfo JSON or metainfo fields are invalid. */
export class MetaInfoError extends Error {
  /** @param message what was wrong */
  constructor(message: string) {
    super(message);
    this.name = "MetaInfoError";
  }
}

/** A torrent info hash: 20 bytes, the SHA-1 of the bencoded info dictionary. */
export class InfoHash {
  /** The 20 raw bytes (treat as read-only). */
  readonly bytes: Uint8Array;
  /** The 40 lowercase hex characters. */
  readonly hex: string;

  private constructor(bytes: Uint8Array, hex: string) {
    this.bytes = bytes;
    this.hex = hex;
  }

  /**
   * Wraps 20 raw bytes (copied).
   * @throws {MetaInfoError} if the length is not 20
   */
  static fromBytes(bytes: Uint8Array): InfoHash {
    if (bytes.length !== 20) {
      throw new MetaInfoError(`info hash must be 20 bytes, got ${bytes.length}`);
    }
    return new InfoHash(bytes.slice(), bytesToHex(bytes));
  }

  /**
   * Parses 40 hex characters (either case).
   * @throws {MetaInfoError} on anything else
   */
  static fromHex(hex: string): InfoHash {
    if (!/^[0-9a-fA-F]{40}$/.test(hex)) {
      throw new MetaInfoError(`invalid info hash hex: ${JSON.stringify(hex.slice(0, 80))}`);
    }
    const bytes = new Uint8Array(20);
    for (let i = 0; i < 20; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
    return new InfoHash(bytes, hex.toLowerCase());
  }

  /** The hex form. */
  toString(): string {
    return this.hex;
  }

  /**
   * The Go JSON form: upstream's `InfoHash` is a `[20]byte` without a marshaller, so it encodes
   * as an array of 20 integers, not as a string (kraken-wire.md §0.3).
   */
  toJSON(): number[] {
    return Array.from(this.bytes);
  }

  /** True when both hashes are equal. */
  equals(other: InfoHash): boolean {
    return this.hex === other.hex;
  }
}

/** The fields of a metainfo's info dictionary. */
export interface MetaInfoFields {
  /** The blob's digest; serialised as its hex in `Name`. */
  readonly digest: Digest;
  /** Nominal piece length in bytes (> 0). */
  readonly pieceLength: number;
  /** CRC-32 IEEE of each piece as unsigned 32-bit integers; ceil(length / pieceLength) entries. */
  readonly pieceSums: readonly number[];
  /** Blob size in bytes. */
  readonly length: number;
}

/** An immutable, validated metainfo. Build with {@linkcode MetaInfo.create},
 * {@linkcode MetaInfo.deserialize} or {@linkcode generateMetaInfo}. */
export class MetaInfo {
  /** The blob's digest. */
  readonly digest: Digest;
  /** Nominal piece length in bytes; every piece but the last has exactly this length. */
  readonly pieceLength: number;
  /** CRC-32 IEEE of each piece. */
  readonly pieceSums: readonly number[];
  /** Blob size in bytes. */
  readonly length: number;
  /** SHA-1 of the bencoded info dictionary. */
  readonly infoHash: InfoHash;

  private constructor(fields: MetaInfoFields) {
    this.digest = fields.digest;
    this.pieceLength = fields.pieceLength;
    this.pieceSums = Object.freeze([...fields.pieceSums]);
    this.length = fields.length;
    this.infoHash = InfoHash.fromBytes(
      new Uint8Array(createHash("sha1").update(this.bencodeInfo()).digest()),
    );
  }

  /**
   * Validates the fields and builds a metainfo.
   * @throws {MetaInfoError} if a field is out of range or the piece count does not match
   */
  static create(fields: MetaInfoFields): MetaInfo {
    const { digest, pieceLength, pieceSums, length } = fields;
    if (!(digest instanceof Digest)) throw new MetaInfoError("digest must be a Digest");
    if (!Number.isSafeInteger(pieceLength) || pieceLength <= 0) {
      throw new MetaInfoError(`PieceLength must be a positive integer, got ${pieceLength}`);
    }
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new MetaInfoError(`Length must be a non-negative integer, got ${length}`);
    }
    for (const sum of pieceSums) {
      if (!Number.isInteger(sum) || sum < 0 || sum > 0xffffffff) {
        throw new MetaInfoError(`PieceSums entries must be uint32, got ${sum}`);
      }
    }
    const expected = Math.ceil(length / pieceLength);
    if (pieceSums.length !== expected) {
      throw new MetaInfoError(
        `PieceSums has ${pieceSums.length} entries, Length ${length} with PieceLength ` +
          `${pieceLength} needs ${expected}`,
      );
    }
    return new MetaInfo(fields);
  }

  /**
   * Parses the serialised JSON form. Legacy top-level keys (`Announce`, `CreationDate`, …) and
   * unknown keys are ignored; keys are matched exactly as Go emits them. `Name` must be 64
   * lowercase hex characters, because the info hash is computed over `Name` as written and
   * upstream only ever writes lowercase.
   * @throws {MetaInfoError} on malformed JSON or invalid fields
   */
  static deserialize(data: string | Uint8Array): MetaInfo {
    const text = typeof data === "string" ? data : new TextDecoder().decode(data);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new MetaInfoError(`metainfo is not valid JSON: ${(err as Error).message}`);
    }
    if (!isObject(parsed) || !isObject(parsed.Info)) {
      throw new MetaInfoError('metainfo must be an object with an "Info" object');
    }
    const info = parsed.Info;
    const name = info.Name;
    if (typeof name !== "string" || !/^[0-9a-f]{64}$/.test(name)) {
      throw new MetaInfoError(`Name must be 64 lowercase hex characters, got ${short(name)}`);
    }
    const digest = Digest.fromHex(name);
    const sums = info.PieceSums;
    if (sums !== null && !Array.isArray(sums)) {
      throw new MetaInfoError(`PieceSums must be an array or null, got ${short(sums)}`);
    }
    if (typeof info.PieceLength !== "number" || typeof info.Length !== "number") {
      throw new MetaInfoError("PieceLength and Length must be numbers");
    }
    return MetaInfo.create({
      digest,
      pieceLength: info.PieceLength,
      pieceSums: (sums ?? []) as number[],
      length: info.Length,
    });
  }

  /** Number of pieces: ceil(length / pieceLength); 0 for an empty blob. */
  get numPieces(): number {
    return this.pieceSums.length;
  }

  /**
   * Length of piece `i`: `pieceLength` for all but the last piece, the remainder for the last.
   * @throws {RangeError} if `i` is not a piece index
   */
  pieceLengthAt(i: number): number {
    this.#checkIndex(i);
    return i === this.numPieces - 1 ? this.length - i * this.pieceLength : this.pieceLength;
  }

  /**
   * True when `bytes` are exactly piece `i` (length and CRC-32 both match).
   * @throws {RangeError} if `i` is not a piece index
   */
  verifyPiece(i: number, bytes: Uint8Array): boolean {
    return bytes.length === this.pieceLengthAt(i) && crc32(bytes) === this.pieceSums[i];
  }

  /** The bencoded info dictionary whose SHA-1 is the info hash. */
  bencodeInfo(): Uint8Array {
    return bencode({
      PieceLength: this.pieceLength,
      PieceSums: this.pieceSums,
      Name: this.digest.hex,
      Length: this.length,
    });
  }

  /**
   * The wire/disk JSON form, byte-identical to Go's `json.Marshal`: fixed key order, no
   * whitespace, no trailing newline, and `null` PieceSums for an empty blob.
   */
  serialize(): string {
    return JSON.stringify({
      Info: {
        PieceLength: this.pieceLength,
        PieceSums: this.pieceSums.length === 0 ? null : this.pieceSums,
        Name: this.digest.hex,
        Length: this.length,
      },
    });
  }

  #checkIndex(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.numPieces) {
      throw new RangeError(`piece index ${i} out of range [0, ${this.numPieces})`);
    }
  }
}

/** Input for {@linkcode PieceLengthTable}: blob size → piece length, sizes as numbers or strings. */
export type PieceLengthTableInput =
  | Readonly<Record<string, string | number>>
  | Iterable<readonly [string | number, string | number]>;

/**
 * Chooses a piece length by blob size, as the origin's `metainfogen.piece_lengths` does: the
 * entry with the largest size ≤ the blob size wins; blobs smaller than every entry get the
 * smallest entry's piece length. There is deliberately no default table.
 */
export class PieceLengthTable {
  readonly #entries: ReadonlyArray<readonly [number, number]>;

  /**
   * @param input map of blob size → piece length, e.g. `{ 0: "4MB", "2GB": "8MB" }`
   * @throws {RangeError} if the table is empty, a size is malformed, a piece length is 0, or two
   *   keys denote the same size
   */
  constructor(input: PieceLengthTableInput) {
    const raw = isIterable(input) ? [...input] : Object.entries(input);
    if (raw.length === 0) throw new RangeError("piece length table is empty");
    const entries = raw.map(([size, len]): [number, number] => {
      const s = parseByteSize(size);
      const l = parseByteSize(len);
      if (l === 0) throw new RangeError(`piece length for size ${size} must be > 0`);
      return [s, l];
    }).sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < entries.length; i++) {
      if (entries[i][0] === entries[i - 1][0]) {
        throw new RangeError(`piece length table has two entries for size ${entries[i][0]}`);
      }
    }
    this.#entries = entries;
  }

  /** The piece length to use for a blob of `size` bytes. */
  pieceLengthFor(size: number): number {
    let chosen = this.#entries[0][1];
    for (const [s, len] of this.#entries) {
      if (s > size) break;
      chosen = len;
    }
    return chosen;
  }
}

/** Where {@linkcode generateMetaInfo} reads a blob from: a file path, or a stream of known size. */
export type MetaInfoSource =
  | string
  | { readonly stream: ReadableStream<Uint8Array>; readonly size: number };

/**
 * Computes a blob's metainfo by streaming it once (memory stays at one chunk). It does not
 * re-hash the content: callers pass blobs whose digest the store already verified.
 * @param pieceLengths a table (chosen by size) or a fixed piece length
 * @throws {MetaInfoError} if the stream's length differs from `size`
 */
export async function generateMetaInfo(
  digest: Digest,
  source: MetaInfoSource,
  pieceLengths: PieceLengthTable | number,
): Promise<MetaInfo> {
  let stream: ReadableStream<Uint8Array>;
  let size: number;
  if (typeof source === "string") {
    const file = await Deno.open(source, { read: true });
    try {
      size = (await file.stat()).size;
    } catch (err) {
      file.close();
      throw err;
    }
    stream = file.readable;
  } else {
    ({ stream, size } = source);
  }
  const pieceLength = typeof pieceLengths === "number"
    ? pieceLengths
    : pieceLengths.pieceLengthFor(size);
  if (!Number.isSafeInteger(pieceLength) || pieceLength <= 0) {
    await stream.cancel();
    throw new MetaInfoError(`piece length must be a positive integer, got ${pieceLength}`);
  }

  const sums: number[] = [];
  let crc = 0;
  let inPiece = 0;
  let total = 0;
  for await (const chunk of stream) {
    total += chunk.length;
    if (total > size) throw new MetaInfoError(`blob is longer than its size ${size}`);
    let at = 0;
    while (at < chunk.length) {
      const take = Math.min(pieceLength - inPiece, chunk.length - at);
      crc = crc32(chunk.subarray(at, at + take), crc);
      at += take;
      inPiece += take;
      if (inPiece === pieceLength) {
        sums.push(crc);
        crc = 0;
        inPiece = 0;
      }
    }
  }
  if (total !== size) throw new MetaInfoError(`blob has ${total} bytes, expected ${size}`);
  if (inPiece > 0) sums.push(crc);
  return MetaInfo.create({ digest, pieceLength, pieceSums: sums, length: size });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isIterable(v: unknown): v is Iterable<readonly [string | number, string | number]> {
  return typeof v === "object" && v !== null && Symbol.iterator in v;
}

function short(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}
