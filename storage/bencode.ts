/**
 * Bencoding (BitTorrent's serialisation), encoder only: Kraken needs it solely to compute the
 * info hash of a metainfo, and that hash is only stable if every node encodes the same value to
 * the same bytes. Hence dictionary keys are always sorted byte-wise, the rule of the Go
 * encoder upstream uses.
 *
 * @example
 * ```ts
 * import { bencode } from "./bencode.ts";
 *
 * new TextDecoder().decode(bencode({ b: 1, a: ["x"] })); // "d1:al1:xe1:bi1ee"
 * ```
 *
 * @module
 */

import { concatBytes } from "../common/bytes.ts";

/** A value that can be bencoded: integers, byte strings, lists and string-keyed dictionaries. */
export type BencodeValue =
  | number
  | bigint
  | string
  | Uint8Array
  | readonly BencodeValue[]
  | { readonly [key: string]: BencodeValue };

const encoder = new TextEncoder();

/**
 * Encodes a value. Strings are written as their UTF-8 bytes; numbers must be safe integers.
 * @throws {TypeError} for non-integer numbers or unsupported values
 */
export function bencode(value: BencodeValue): Uint8Array {
  const parts: Uint8Array[] = [];
  write(value, parts);
  return concatBytes(parts);
}

function write(value: BencodeValue, parts: Uint8Array[]): void {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) {
      throw new TypeError(`bencode: ${value} is not a safe integer`);
    }
    parts.push(encoder.encode(`i${value}e`));
  } else if (typeof value === "bigint") {
    parts.push(encoder.encode(`i${value}e`));
  } else if (typeof value === "string") {
    writeBytes(encoder.encode(value), parts);
  } else if (value instanceof Uint8Array) {
    writeBytes(value, parts);
  } else if (Array.isArray(value)) {
    parts.push(encoder.encode("l"));
    for (const item of value) write(item, parts);
    parts.push(encoder.encode("e"));
  } else if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value as { readonly [key: string]: BencodeValue })
      .map(([key, v]) => [encoder.encode(key), v] as const)
      .sort((a, b) => compareBytes(a[0], b[0]));
    parts.push(encoder.encode("d"));
    for (const [key, v] of entries) {
      writeBytes(key, parts);
      write(v, parts);
    }
    parts.push(encoder.encode("e"));
  } else {
    throw new TypeError(`bencode: unsupported value of type ${typeof value}`);
  }
}

function writeBytes(bytes: Uint8Array, parts: Uint8Array[]): void {
  parts.push(encoder.encode(`${bytes.length}:`), bytes);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}
