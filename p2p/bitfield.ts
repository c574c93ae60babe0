/**
 * Piece bitfields in the binary form Kraken peers exchange (willf/bitset `MarshalBinary`).
 *
 * Wire form: a big-endian uint64 bit count, then ceil(bits / 64) big-endian uint64 words; bit
 * `i` lives in word `⌊i / 64⌋` at position `i mod 64`, position 0 being the word's least
 * significant bit. Example: 10 pieces with {0, 1, 9} set is `00..0A 00 00 00 00 00 00 02 03`.
 *
 * Decoding is strict: the byte length must match the declared bit count exactly and the unused
 * high bits of the last word must be zero. Upstream never sends stray bits, and accepting them
 * would make {@linkcode Bitfield.count} disagree with the bits a peer can actually serve, so a
 * bitfield carrying them is rejected with a {@linkcode BitfieldError} rather than masked.
 *
 * @module
 */

/** A malformed bitfield on the wire, or an index outside the bitfield. */
export class BitfieldError extends Error {
  /** Creates the error with a message that says what was wrong. */
  constructor(message: string) {
    super(message);
    this.name = "BitfieldError";
  }
}

// Set bits per byte value, so count() does not loop over every bit.
const POPCOUNT = new Uint8Array(256).map((_, v) => {
  let n = 0;
  for (let x = v; x !== 0; x >>= 1) n += x & 1;
  return n;
});

/** Largest bit count we accept: piece indexes are protobuf int32 on the wire. */
const MAX_BITS = 0x7fffffff;

/**
 * A fixed-length set of piece indexes.
 *
 * Bits are kept LSB-first in bytes padded to whole 64-bit words, which makes the wire
 * conversion a per-word byte reversal.
 */
export class Bitfield {
  /** Number of bits (pieces). */
  readonly length: number;
  #bytes: Uint8Array;

  /** Creates an all-clear bitfield of `length` bits. */
  constructor(length: number) {
    if (!Number.isInteger(length) || length < 0 || length > MAX_BITS) {
      throw new BitfieldError(`invalid bitfield length ${length}`);
    }
    this.length = length;
    this.#bytes = new Uint8Array(Math.ceil(length / 64) * 8);
  }

  /** Creates a bitfield with every bit set, as origins advertise. */
  static allSet(length: number): Bitfield {
    const b = new Bitfield(length);
    for (let i = 0; i < length >> 3; i++) b.#bytes[i] = 0xff;
    for (let i = length & ~7; i < length; i++) b.set(i);
    return b;
  }

  /**
   * Parses the willf/bitset binary form.
   *
   * @throws {BitfieldError} when the length does not match the bit count or stray bits are set.
   */
  static decode(data: Uint8Array): Bitfield {
    if (data.length < 8) {
      throw new BitfieldError(`bitfield too short: ${data.length} bytes`);
    }
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const bits = view.getBigUint64(0, false);
    if (bits > BigInt(MAX_BITS)) throw new BitfieldError(`bitfield too long: ${bits} bits`);
    const length = Number(bits);
    // Check the size before allocating, so a forged bit count cannot make us allocate.
    const needed = 8 + Math.ceil(length / 64) * 8;
    if (data.length !== needed) {
      throw new BitfieldError(
        `bitfield of ${length} bits needs ${needed} bytes, got ${data.length}`,
      );
    }
    const b = new Bitfield(length);
    for (let w = 0; w < b.#bytes.length; w += 8) {
      for (let k = 0; k < 8; k++) b.#bytes[w + k] = data[8 + w + 7 - k];
    }
    for (let i = length; i < b.#bytes.length * 8; i++) {
      if (b.#bytes[i >> 3] & (1 << (i & 7))) {
        throw new BitfieldError(`bitfield of ${length} bits has stray bit ${i} set`);
      }
    }
    return b;
  }

  /** Serializes to the willf/bitset binary form. */
  encode(): Uint8Array {
    const out = new Uint8Array(8 + this.#bytes.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(this.length), false);
    for (let w = 0; w < this.#bytes.length; w += 8) {
      for (let k = 0; k < 8; k++) out[8 + w + 7 - k] = this.#bytes[w + k];
    }
    return out;
  }

  /** Whether bit `i` is set. */
  get(i: number): boolean {
    this.#check(i);
    return (this.#bytes[i >> 3] & (1 << (i & 7))) !== 0;
  }

  /** Sets (or, with `value=false`, clears) bit `i`. */
  set(i: number, value = true): void {
    this.#check(i);
    if (value) this.#bytes[i >> 3] |= 1 << (i & 7);
    else this.#bytes[i >> 3] &= ~(1 << (i & 7));
  }

  /** Number of set bits. */
  count(): number {
    let n = 0;
    for (const byte of this.#bytes) n += POPCOUNT[byte];
    return n;
  }

  /** Whether every bit is set (true for a zero-length bitfield). */
  complete(): boolean {
    return this.count() === this.length;
  }

  /** An independent copy. */
  clone(): Bitfield {
    const b = new Bitfield(this.length);
    b.#bytes.set(this.#bytes);
    return b;
  }

  /** Whether both bitfields have the same length and bits. */
  equals(other: Bitfield): boolean {
    return this.length === other.length && this.#bytes.every((v, i) => v === other.#bytes[i]);
  }

  #check(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) {
      throw new BitfieldError(`bit ${i} out of range [0, ${this.length})`);
    }
  }
}
