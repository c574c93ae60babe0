/**
 * Content digests as Kraken uses them: SHA-256 only, written `sha256:<64 hex>`.
 *
 * Servers parse path digests strictly ({@linkcode parseDigest}); only the agent's own blob
 * routes also accept bare hex ({@linkcode parseDigestLoose}). Parsing lowercases the hex because
 * Go's hex decoder accepts uppercase while upstream always emits lowercase, and a single
 * canonical form keeps file names and hash-ring keys stable.
 *
 * @example
 * ```ts
 * import { digestOfBytes, parseDigest } from "./digest.ts";
 *
 * const d = await digestOfBytes(new TextEncoder().encode("hello"));
 * d.toString(); // "sha256:2cf24dba…9824"
 * parseDigest(d.toString()).equals(d); // true
 * d.shardId; // "2cf2", the hash-ring key
 * ```
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { bytesToHex } from "../common/bytes.ts";

/** The only digest algorithm Kraken supports. */
export const DIGEST_ALGORITHM = "sha256";

const HEX64 = /^[0-9a-fA-F]{64}$/;

/** Thrown when a string is not a valid digest. */
export class DigestError extends Error {
  /** @param message what was wrong with the input */
  constructor(message: string) {
    super(message);
    this.name = "DigestError";
  }
}

/** An immutable SHA-256 digest. Construct with {@linkcode parseDigest} or {@linkcode Digest.fromHex}. */
export class Digest {
  /** The 64 lowercase hex characters, without the `sha256:` prefix. */
  readonly hex: string;

  private constructor(hex: string) {
    this.hex = hex;
  }

  /**
   * Builds a digest from 64 hex characters (either case).
   * @throws {DigestError} if `hex` is not exactly 64 hex characters
   */
  static fromHex(hex: string): Digest {
    if (typeof hex !== "string" || !HEX64.test(hex)) {
      throw new DigestError(`invalid sha256 hex: ${describe(hex)}`);
    }
    return new Digest(hex.toLowerCase());
  }

  /** Builds a digest from the 32 raw hash bytes. */
  static fromBytes(bytes: Uint8Array): Digest {
    if (bytes.length !== 32) {
      throw new DigestError(`sha256 digest must be 32 bytes, got ${bytes.length}`);
    }
    return new Digest(bytesToHex(bytes));
  }

  /** The first 4 hex characters: the key for the hash ring. */
  get shardId(): string {
    return this.hex.slice(0, 4);
  }

  /** The canonical string form `sha256:<hex>`. */
  toString(): string {
    return `${DIGEST_ALGORITHM}:${this.hex}`;
  }

  /** JSON form, as Go's `core.Digest` marshals: the string `sha256:<hex>`. */
  toJSON(): string {
    return this.toString();
  }

  /** True when both digests name the same content. */
  equals(other: Digest): boolean {
    return this.hex === other.hex;
  }
}

/**
 * Parses the strict form `sha256:<64 hex>` used by every server route and JSON body.
 * @throws {DigestError} on any other input
 */
export function parseDigest(s: string): Digest {
  if (typeof s !== "string") throw new DigestError(`invalid digest: ${describe(s)}`);
  const colon = s.indexOf(":");
  if (colon < 0) {
    throw new DigestError(`invalid digest ${describe(s)}: expected "sha256:<hex>"`);
  }
  const algo = s.slice(0, colon);
  if (algo !== DIGEST_ALGORITHM) {
    throw new DigestError(`unsupported digest algorithm ${describe(algo)}: only sha256`);
  }
  return Digest.fromHex(s.slice(colon + 1));
}

/**
 * Parses either `sha256:<hex>` or bare 64-character hex, as the agent's blob API accepts.
 * @throws {DigestError} on any other input
 */
export function parseDigestLoose(s: string): Digest {
  if (typeof s === "string" && HEX64.test(s)) return Digest.fromHex(s);
  return parseDigest(s);
}

/** Computes the digest of bytes held in memory (Web Crypto). */
export async function digestOfBytes(bytes: Uint8Array): Promise<Digest> {
  const hash = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Digest.fromBytes(new Uint8Array(hash));
}

/**
 * Incremental SHA-256 for data that arrives in chunks. Web Crypto cannot hash incrementally,
 * so this wraps `node:crypto`; a multi-gigabyte blob never has to sit in memory.
 */
export class DigestHasher {
  #hash: Hash = createHash("sha256");
  #done = false;

  /** Feeds the next chunk. */
  update(chunk: Uint8Array): void {
    if (this.#done) throw new Error("DigestHasher already finished");
    this.#hash.update(chunk);
  }

  /** Finishes hashing and returns the digest; the hasher cannot be reused afterwards. */
  digest(): Digest {
    if (this.#done) throw new Error("DigestHasher already finished");
    this.#done = true;
    return Digest.fromBytes(new Uint8Array(this.#hash.digest()));
  }
}

/** Hashes a whole stream chunk by chunk. */
export async function digestOfStream(stream: ReadableStream<Uint8Array>): Promise<Digest> {
  const hasher = new DigestHasher();
  for await (const chunk of stream) hasher.update(chunk);
  return hasher.digest();
}

/** Short, printable rendering of bad input for error messages (network input can be huge). */
function describe(value: unknown): string {
  const s = typeof value === "string" ? value : String(value);
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
}
