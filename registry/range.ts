/**
 * Range requests on blob GETs (RFC 9110 §14): the `Range` header of a request resolved against the
 * blob's size, and the headers of the partial answer. Both registries (proxy and agent) use it, so
 * containerd can resume an interrupted layer pull.
 *
 * - No `Range`, or a unit other than `bytes`: the whole blob (200), as RFC 9110 lets a server ignore
 *   a unit it does not know.
 * - One satisfiable range (`a-b`, `a-`, `-n`; an end past the blob is cut to the last byte): 206 with
 *   `Content-Range: bytes a-b/size`.
 * - Several disjoint ranges: the whole blob (200); multipart answers are not made, which the RFC
 *   allows by ignoring the header.
 * - `If-Range` that is not the blob's entity tag (a date, another tag): the whole blob.
 * - Malformed syntax, overlapping ranges, or no satisfiable range: 416 `RANGE_INVALID` with
 *   `Content-Range: bytes * /size` (no space) and a message saying which.
 *
 * ```ts
 * import { resolveRange } from "./range.ts";
 * resolveRange("bytes=10-19", 100); // { start: 10, end: 19 }
 * resolveRange(null, 100); // null: the whole blob
 * ```
 *
 * @module
 */

import { RegistryError } from "./errors.ts";

/** An inclusive byte range of a blob. */
export interface ByteRange {
  /** First byte. */
  start: number;
  /** Last byte (inclusive). */
  end: number;
}

const SPEC = /^(\d*)-(\d*)$/;

function refused(header: string, size: number, why: string): RegistryError {
  return new RegistryError(
    "RANGE_INVALID",
    `requested range not satisfiable: ${why}`,
    { range: header.slice(0, 200), size },
    416,
    { "content-range": `bytes */${size}` },
  );
}

/** The conditions of a ranged request beside `Range`. */
export interface RangeConditions {
  /** The request's `If-Range`. */
  ifRange?: string | null;
  /** The blob's entity tag (`"<digest>"`); an `If-Range` naming anything else gets the whole blob. */
  etag?: string;
}

/**
 * The part of a blob of `size` bytes that `header` (the request's `Range`) asks for, or null for
 * the whole blob (also when an `If-Range` does not name the blob's entity tag: the client's copy is
 * of something else, RFC 9110 §13.1.5).
 * @throws {RegistryError} `RANGE_INVALID` (416) for malformed, overlapping or unsatisfiable ranges
 */
export function resolveRange(
  header: string | null,
  size: number,
  conditions: RangeConditions = {},
): ByteRange | null {
  if (header === null) return null;
  const ifRange = conditions.ifRange?.trim();
  if (ifRange && ifRange !== conditions.etag) return null;
  const eq = header.indexOf("=");
  if (eq < 0) throw refused(header, size, "expected bytes=<start>-<end>");
  if (header.slice(0, eq).trim().toLowerCase() !== "bytes") return null;
  const ranges: ByteRange[] = [];
  for (const raw of header.slice(eq + 1).split(",")) {
    const m = SPEC.exec(raw.trim());
    if (!m || (m[1] === "" && m[2] === "")) {
      throw refused(header, size, `malformed range ${JSON.stringify(raw.trim().slice(0, 50))}`);
    }
    if (m[1] === "") {
      const suffix = Number(m[2]);
      if (suffix > 0 && size > 0) ranges.push({ start: Math.max(0, size - suffix), end: size - 1 });
      continue;
    }
    const start = Number(m[1]);
    if (m[2] !== "" && Number(m[2]) < start) {
      throw refused(header, size, `range ${raw.trim()} ends before it starts`);
    }
    const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (start < size) ranges.push({ start, end });
  }
  if (ranges.length === 0) throw refused(header, size, `no range within the ${size} bytes`);
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].start <= sorted[i - 1].end) {
      throw refused(header, size, "overlapping ranges");
    }
  }
  return ranges.length === 1 ? ranges[0] : null;
}

/** The length of `range` in bytes. */
export function rangeLength(range: ByteRange): number {
  return range.end - range.start + 1;
}

/** The headers of a 206 answer for `range` of a blob of `size` bytes. */
export function partialContentHeaders(range: ByteRange, size: number): Record<string, string> {
  return {
    "content-range": `bytes ${range.start}-${range.end}/${size}`,
    "content-length": String(rangeLength(range)),
  };
}
