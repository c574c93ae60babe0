/**
 * Safe file names for names that arrive from the network (namespaces such as `library/ubuntu`
 * or `TODO`, tags such as `library/ubuntu:latest`, digests), and a guard that keeps joined paths
 * inside a storage root.
 *
 * {@linkcode encodeFileName} percent-encodes every UTF-8 byte outside `[A-Za-z0-9_.-]` with
 * uppercase hex, and also a leading `.`. Because `%` itself is always encoded the mapping is
 * injective (two names never share a file), and its output can never be empty, `.`, `..`, contain
 * `/` or NUL, or be absolute. {@linkcode decodeFileName} inverts it, accepting only the canonical
 * encoding so that listing a directory yields each name exactly once.
 *
 * @example
 * ```ts
 * import { encodeFileName, resolveInside } from "./paths.ts";
 *
 * encodeFileName("library/ubuntu:latest"); // "library%2Fubuntu%3Alatest"
 * resolveInside("/var/cache/kraken", "tags", encodeFileName("../../etc/passwd"));
 * // "/var/cache/kraken/tags/%2E.%2F%2E.%2Fetc%2Fpasswd"
 * ```
 *
 * @module
 */

import { resolve, sep } from "node:path";

/** Longest encoded file name accepted: the common file-system limit (ext4, xfs, tmpfs). */
export const MAX_FILE_NAME_BYTES = 255;

/** Thrown for a name that cannot be stored safely or a path that would leave its root. */
export class PathError extends Error {
  /** @param message what was wrong */
  constructor(message: string) {
    super(message);
    this.name = "PathError";
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function isPlain(byte: number, index: number): boolean {
  return (byte >= 0x30 && byte <= 0x39) || // 0-9
    (byte >= 0x41 && byte <= 0x5a) || // A-Z
    (byte >= 0x61 && byte <= 0x7a) || // a-z
    byte === 0x5f || byte === 0x2d || // _ -
    (byte === 0x2e && index > 0); // . except leading, so never "." / ".." / hidden
}

/**
 * Encodes an arbitrary name as a single safe file-name component.
 * @throws {PathError} if the name is empty, contains NUL or unpaired surrogates, or its encoding
 *   exceeds {@linkcode MAX_FILE_NAME_BYTES}
 */
export function encodeFileName(name: string): string {
  if (typeof name !== "string" || name.length === 0) throw new PathError("name is empty");
  if (name.includes("\0")) throw new PathError("name contains a NUL byte");
  // TextEncoder maps lone surrogates to U+FFFD, which would make two names collide.
  if (!name.isWellFormed()) throw new PathError("name is not well-formed Unicode");
  let out = "";
  const bytes = encoder.encode(name);
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    out += isPlain(b, i)
      ? String.fromCharCode(b)
      : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
    if (out.length > MAX_FILE_NAME_BYTES) {
      throw new PathError(
        `name too long: encoded form exceeds ${MAX_FILE_NAME_BYTES} bytes (${name.length} characters in)`,
      );
    }
  }
  return out;
}

/**
 * Decodes a file name produced by {@linkcode encodeFileName}.
 * @throws {PathError} if `encoded` is not exactly the canonical encoding of some name
 */
export function decodeFileName(encoded: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < encoded.length; i++) {
    const c = encoded.charCodeAt(i);
    if (c === 0x25 && /^[0-9A-F]{2}$/.test(encoded.slice(i + 1, i + 3))) {
      bytes.push(parseInt(encoded.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c < 0x80) {
      bytes.push(c);
    } else {
      throw new PathError(`not an encoded file name: ${JSON.stringify(encoded.slice(0, 80))}`);
    }
  }
  let name: string;
  try {
    name = decoder.decode(new Uint8Array(bytes));
  } catch {
    throw new PathError(`encoded file name is not UTF-8: ${JSON.stringify(encoded.slice(0, 80))}`);
  }
  // Only the canonical form is valid: rejects e.g. "a%62", "%2e" and bare "/".
  if (name.length === 0 || name.includes("\0") || encodeFileName(name) !== encoded) {
    throw new PathError(`not an encoded file name: ${JSON.stringify(encoded.slice(0, 80))}`);
  }
  return name;
}

/**
 * Joins `parts` onto `root` and returns the absolute result, refusing any result outside `root`
 * (`..` segments, absolute parts) and any NUL. It does not resolve symbolic links: the store
 * creates every entry below its root itself.
 * @throws {PathError} if the result escapes `root` or a part contains NUL
 */
export function resolveInside(root: string, ...parts: string[]): string {
  for (const p of [root, ...parts]) {
    if (typeof p !== "string") throw new PathError("path part is not a string");
    if (p.includes("\0")) throw new PathError("path contains a NUL byte");
  }
  const base = resolve(root);
  const full = resolve(base, ...parts);
  const prefix = base.endsWith(sep) ? base : base + sep;
  if (full !== base && !full.startsWith(prefix)) {
    throw new PathError(`path ${JSON.stringify(parts.join(sep).slice(0, 200))} escapes ${base}`);
  }
  return full;
}
