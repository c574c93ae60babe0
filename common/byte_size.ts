/**
 * Byte sizes as written in YAML configuration and upstream's config files: `4MB`, `4MiB`,
 * `512KB`, `17B` or a plain number of bytes. Units are binary whatever their spelling.
 *
 * ```ts
 * import { parseByteSize } from "./byte_size.ts";
 * parseByteSize("4MB"); // 4194304
 * ```
 *
 * @module
 */

const BYTE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 2 ** 10,
  kb: 2 ** 10,
  kib: 2 ** 10,
  m: 2 ** 20,
  mb: 2 ** 20,
  mib: 2 ** 20,
  g: 2 ** 30,
  gb: 2 ** 30,
  gib: 2 ** 30,
  t: 2 ** 40,
  tb: 2 ** 40,
  tib: 2 ** 40,
  p: 2 ** 50,
  pb: 2 ** 50,
  pib: 2 ** 50,
};

/**
 * Parses a human byte size as upstream configs write them. Units are binary whatever their
 * spelling (`4MB` = `4MiB` = 4194304), case-insensitive, optionally separated by spaces.
 * A plain number is taken as bytes.
 * @throws {RangeError} for negative, fractional, unknown-unit or overflowing sizes
 */
export function parseByteSize(value: string | number): number {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`invalid byte size ${value}: must be a non-negative integer`);
    }
    return value;
  }
  const m = /^\s*(\d+)\s*([a-zA-Z]*)\s*$/.exec(String(value));
  const unit = m ? BYTE_UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new RangeError(`invalid byte size ${JSON.stringify(value)}: expected e.g. "4MB"`);
  }
  const n = Number(m[1]) * unit;
  if (!Number.isSafeInteger(n)) {
    throw new RangeError(`byte size ${JSON.stringify(value)} too large`);
  }
  return n;
}
