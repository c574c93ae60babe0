/**
 * Path-segment escaping with Go's `url.PathEscape` rules, which every upstream client uses for
 * namespaces and tags in URLs (kraken-wire.md §8). Upstream servers route on the raw path, so the
 * escaped form must match byte for byte: `/` becomes `%2F`, while `:`, `@`, `=`, `+`, `&` and `$`
 * stay as they are.
 *
 * @example
 * ```ts
 * import { pathEscape } from "./escape.ts";
 *
 * pathEscape("library/ubuntu"); // "library%2Fubuntu"
 * pathEscape("library/ubuntu:latest"); // "library%2Fubuntu:latest"
 * ```
 *
 * @module
 */

const encoder = new TextEncoder();

/** True for bytes Go's PathEscape leaves alone in a path segment. */
function isKept(byte: number): boolean {
  return (byte >= 0x30 && byte <= 0x39) || // 0-9
    (byte >= 0x41 && byte <= 0x5a) || // A-Z
    (byte >= 0x61 && byte <= 0x7a) || // a-z
    // Unreserved marks, plus the reserved characters a path segment may carry unescaped.
    "-_.~$&+:=@".includes(String.fromCharCode(byte));
}

/**
 * Escapes `s` for use as one URL path segment exactly like Go's `url.PathEscape`: UTF-8 bytes
 * outside the kept set become `%XX` with uppercase hex.
 */
export function pathEscape(s: string): string {
  let out = "";
  for (const byte of encoder.encode(s)) {
    out += isKept(byte)
      ? String.fromCharCode(byte)
      : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}
