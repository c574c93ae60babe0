/**
 * MurmurHash3 x64_128, the hash behind upstream Kraken's rendezvous ring.
 *
 * Upstream uses the Go `spaolacci/murmur3` package; the 64-bit variant it
 * calls for the ring is the first half (`h1`) of the 128-bit x64 digest. The
 * arithmetic here runs on pairs of unsigned 32-bit words instead of `bigint`
 * because the ring hashes one short key per member on every blob request and
 * `bigint` arithmetic allocates on every operation.
 *
 * ```ts
 * import { murmur3x64_128 } from "./murmur3.ts";
 * const { h1 } = murmur3x64_128(new TextEncoder().encode("hello"));
 * // h1 === 0xcbd8a7b341bd9b02n
 * ```
 *
 * @module
 */

/** The two 64-bit halves of a MurmurHash3 x64_128 digest. */
export interface Murmur3Digest {
  /** First half; Go's `murmur3.Sum64` and `New64().Sum()` return this value. */
  h1: bigint;
  /** Second half. */
  h2: bigint;
}

// Each 64-bit lane is held as a (hi, lo) pair of uint32 values. The mixing
// helpers write into these module-level scratch slots rather than returning
// fresh objects, which keeps the hot loop allocation-free.
let outHi = 0;
let outLo = 0;

/** (aHi:aLo) * (bHi:bLo) mod 2^64, via 16-bit limbs so no partial product exceeds 2^53. */
function mul64(aHi: number, aLo: number, bHi: number, bLo: number): void {
  const a48 = aHi >>> 16, a32 = aHi & 0xffff, a16 = aLo >>> 16, a00 = aLo & 0xffff;
  const b48 = bHi >>> 16, b32 = bHi & 0xffff, b16 = bLo >>> 16, b00 = bLo & 0xffff;
  let c00 = a00 * b00;
  let c16 = c00 >>> 16;
  c00 &= 0xffff;
  c16 += a16 * b00;
  let c32 = c16 >>> 16;
  c16 &= 0xffff;
  c16 += a00 * b16;
  c32 += c16 >>> 16;
  c16 &= 0xffff;
  c32 += a32 * b00;
  let c48 = c32 >>> 16;
  c32 &= 0xffff;
  c32 += a16 * b16;
  c48 += c32 >>> 16;
  c32 &= 0xffff;
  c32 += a00 * b32;
  c48 += c32 >>> 16;
  c32 &= 0xffff;
  // Only the low 16 bits of the top limb survive mod 2^64, and `&` keeps
  // exactly those even though the sum itself can exceed 2^32.
  c48 = (c48 + a48 * b00 + a32 * b16 + a16 * b32 + a00 * b48) & 0xffff;
  outHi = ((c48 << 16) | c32) >>> 0;
  outLo = ((c16 << 16) | c00) >>> 0;
}

/** (aHi:aLo) + (bHi:bLo) mod 2^64. */
function add64(aHi: number, aLo: number, bHi: number, bLo: number): void {
  const lo = aLo + bLo;
  outLo = lo >>> 0;
  outHi = (aHi + bHi + (lo > 0xffffffff ? 1 : 0)) >>> 0;
}

/** Rotates (hi:lo) left by r bits, 0 < r < 64, r !== 32. */
function rotl64(hi: number, lo: number, r: number): void {
  if (r > 32) {
    const t = hi;
    hi = lo;
    lo = t;
    r -= 32;
  }
  outHi = ((hi << r) | (lo >>> (32 - r))) >>> 0;
  outLo = ((lo << r) | (hi >>> (32 - r))) >>> 0;
}

/** The finalisation mix (`fmix64`) of MurmurHash3. */
function fmix64(hi: number, lo: number): void {
  // k ^= k >>> 33 only moves bits of the high word into the low word.
  lo = (lo ^ (hi >>> 1)) >>> 0;
  mul64(hi, lo, 0xff51afd7, 0xed558ccd);
  hi = outHi;
  lo = (outLo ^ (hi >>> 1)) >>> 0;
  mul64(hi, lo, 0xc4ceb9fe, 0x1a85ec53);
  hi = outHi;
  outLo = (outLo ^ (hi >>> 1)) >>> 0;
}

const C1_HI = 0x87c37b91, C1_LO = 0x114253d5;
const C2_HI = 0x4cf5ad43, C2_LO = 0x2745937f;

/** Reads a little-endian uint32 at offset i. */
function le32(data: Uint8Array, i: number): number {
  return (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)) >>> 0;
}

/** Reads `n` (1 to 8) bytes at `start` as a little-endian 64-bit value (the tail's keys). */
function leTail64(data: Uint8Array, start: number, n: number): void {
  let hi = 0, lo = 0;
  for (let j = n - 1; j >= 0; j--) {
    const b = data[start + j];
    if (j >= 4) hi |= b << ((j - 4) * 8);
    else lo |= b << (j * 8);
  }
  outHi = hi >>> 0;
  outLo = lo >>> 0;
}

/** The key mix of one lane: `rotl64(k * a, r) * b` (k1: c1, 31, c2; k2: c2, 33, c1). */
function mixKey(
  kHi: number,
  kLo: number,
  aHi: number,
  aLo: number,
  r: number,
  bHi: number,
  bLo: number,
): void {
  mul64(kHi, kLo, aHi, aLo);
  rotl64(outHi, outLo, r);
  mul64(outHi, outLo, bHi, bLo);
}

/** The state update of one lane after its key is mixed in: `(rotl64(h, r) + other) * 5 + c`. */
function mixLane(hHi: number, hLo: number, r: number, oHi: number, oLo: number, c: number): void {
  rotl64(hHi, hLo, r);
  add64(outHi, outLo, oHi, oLo);
  mul64(outHi, outLo, 0, 5);
  add64(outHi, outLo, 0, c);
}

/**
 * Computes MurmurHash3 x64_128 and returns it as four uint32 words:
 * `[h1 high, h1 low, h2 high, h2 low]`.
 *
 * This is the allocation-light form for callers (like the hash ring) that only
 * need a few bits of the result and want to avoid `bigint`.
 *
 * @param data bytes to hash
 * @param seed 32-bit seed; Go's `murmur3.Sum128WithSeed` semantics (both lanes start at it)
 */
export function murmur3x64_128Words(data: Uint8Array, seed = 0): Uint32Array {
  const len = data.length;
  let h1Hi = 0, h1Lo = seed >>> 0, h2Hi = 0, h2Lo = seed >>> 0;
  const blocksEnd = len - (len % 16);

  for (let i = 0; i < blocksEnd; i += 16) {
    mixKey(le32(data, i + 4), le32(data, i), C1_HI, C1_LO, 31, C2_HI, C2_LO);
    mixLane((h1Hi ^ outHi) >>> 0, (h1Lo ^ outLo) >>> 0, 27, h2Hi, h2Lo, 0x52dce729);
    h1Hi = outHi;
    h1Lo = outLo;
    mixKey(le32(data, i + 12), le32(data, i + 8), C2_HI, C2_LO, 33, C1_HI, C1_LO);
    mixLane((h2Hi ^ outHi) >>> 0, (h2Lo ^ outLo) >>> 0, 31, h1Hi, h1Lo, 0x38495ab5);
    h2Hi = outHi;
    h2Lo = outLo;
  }

  // Tail: up to 15 bytes, little-endian into k1 (bytes 0-7) and k2 (8-14).
  const tail = len - blocksEnd;
  if (tail > 8) {
    leTail64(data, blocksEnd + 8, tail - 8);
    mixKey(outHi, outLo, C2_HI, C2_LO, 33, C1_HI, C1_LO);
    h2Hi = (h2Hi ^ outHi) >>> 0;
    h2Lo = (h2Lo ^ outLo) >>> 0;
  }
  if (tail > 0) {
    leTail64(data, blocksEnd, Math.min(tail, 8));
    mixKey(outHi, outLo, C1_HI, C1_LO, 31, C2_HI, C2_LO);
    h1Hi = (h1Hi ^ outHi) >>> 0;
    h1Lo = (h1Lo ^ outLo) >>> 0;
  }

  // Finalisation: xor in the length, cross-add, fmix each lane, cross-add.
  const lenHi = Math.floor(len / 0x100000000) >>> 0;
  const lenLo = len >>> 0;
  h1Hi = (h1Hi ^ lenHi) >>> 0;
  h1Lo = (h1Lo ^ lenLo) >>> 0;
  h2Hi = (h2Hi ^ lenHi) >>> 0;
  h2Lo = (h2Lo ^ lenLo) >>> 0;
  add64(h1Hi, h1Lo, h2Hi, h2Lo);
  h1Hi = outHi;
  h1Lo = outLo;
  add64(h2Hi, h2Lo, h1Hi, h1Lo);
  h2Hi = outHi;
  h2Lo = outLo;
  fmix64(h1Hi, h1Lo);
  h1Hi = outHi;
  h1Lo = outLo;
  fmix64(h2Hi, h2Lo);
  h2Hi = outHi;
  h2Lo = outLo;
  add64(h1Hi, h1Lo, h2Hi, h2Lo);
  h1Hi = outHi;
  h1Lo = outLo;
  add64(h2Hi, h2Lo, h1Hi, h1Lo);
  return Uint32Array.of(h1Hi, h1Lo, outHi, outLo);
}

/**
 * Computes MurmurHash3 x64_128 of `data`.
 *
 * @param data bytes to hash
 * @param seed 32-bit seed, default 0 (the value upstream Kraken uses)
 * @returns both 64-bit halves as unsigned `bigint`s
 */
export function murmur3x64_128(data: Uint8Array, seed = 0): Murmur3Digest {
  const w = murmur3x64_128Words(data, seed);
  return {
    h1: (BigInt(w[0]) << 32n) | BigInt(w[1]),
    h2: (BigInt(w[2]) << 32n) | BigInt(w[3]),
  };
}
