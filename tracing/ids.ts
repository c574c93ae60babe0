/**
 * Fast trace and span id generation.
 *
 * Ids are cut from a pool of random hex digits: 4 KiB from `crypto.getRandomValues` rendered in one
 * native `toHex` call, so a trace id is one substring of that pool (no per-byte work or string
 * concatenation at span start). A span context only reserves its 16 digits and takes the substring
 * when something reads its span id (an export, an injected header, a log line), so the unsampled
 * spans nobody looks at never make the string. The stock SDK calls `Math.random` per byte and joins
 * the digits at every start.
 *
 * @module
 */

import type { SpanContext, TraceState } from "@opentelemetry/api";

const POOL_BYTES = 4096;
const poolBytes = new Uint8Array(POOL_BYTES);
// The ES2025 `Uint8Array.prototype.toHex` (V8 has it; the TypeScript lib may not yet).
const toHex = (poolBytes as Uint8Array & { toHex(): string }).toHex;
let pool = "";
let cursor = 0;

const HEX_BYTE: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const ZERO_DIGIT = 48;

/**
 * Whether `id` is all zero digits, the W3C's invalid trace or span id. Ids are substrings (of the
 * pool, of a `traceparent`), and V8 compares a substring with another string of its length through
 * a runtime call (~30 ns here); this loop stops at the first non-zero digit.
 */
export function isZeroId(id: string): boolean {
  for (let i = 0; i < id.length; i++) if (id.charCodeAt(i) !== ZERO_DIGIT) return false;
  return true;
}

/** Reserves `length` random hex digits: they are `pool.slice(at, at + length)` (read `pool` after). */
function reserve(length: number): number {
  if (cursor + length > pool.length) {
    crypto.getRandomValues(poolBytes);
    pool = toHex.call(poolBytes);
    cursor = 0;
  }
  const at = cursor;
  cursor += length;
  return at;
}

/** Returns a random, valid (non-zero) 32-character lowercase hex trace id. */
export function newTraceId(): string {
  const at = reserve(32);
  const id = pool.slice(at, at + 32);
  return isZeroId(id) ? newTraceId() : id;
}

/** Returns a random, valid (non-zero) 16-character lowercase hex span id. */
export function newSpanId(): string {
  const at = reserve(16);
  const id = pool.slice(at, at + 16);
  return isZeroId(id) ? newSpanId() : id;
}

/** Hex of one byte, from the shared lookup table. */
export function byteHex(b: number): string {
  return HEX_BYTE[b & 0xff];
}

/**
 * The span context of a span created in this process: a fresh random span id, cut from the pool on
 * first read. Behaves as a plain `SpanContext` for every reader (the id is a getter on the
 * prototype, so copy it with {@linkcode toPlainSpanContext} rather than object spread).
 */
export class LocalSpanContext implements SpanContext {
  /** 32 hex digits, shared with the parent. */
  readonly traceId: string;
  /** W3C trace flags. */
  readonly traceFlags: number;
  /** Vendor trace state carried from the parent or set by the sampler. */
  readonly traceState: TraceState | undefined;
  // Where the span id's digits start in `#idOrPool`: the pool until the id is read, then the id.
  #at: number;
  #idOrPool: string;

  /** Creates a context with a new random span id for `traceId`. */
  constructor(traceId: string, traceFlags: number, traceState: TraceState | undefined) {
    this.traceId = traceId;
    this.traceFlags = traceFlags;
    this.traceState = traceState;
    this.#at = reserve(16);
    this.#idOrPool = pool;
  }

  /** 16 hex digits, taken once on first read. */
  get spanId(): string {
    if (this.#at >= 0) {
      const id = this.#idOrPool.slice(this.#at, this.#at + 16);
      this.#idOrPool = isZeroId(id) ? newSpanId() : id;
      this.#at = -1;
    }
    return this.#idOrPool;
  }
}

/** Copies any span context into a plain object (safe to spread or serialise). */
export function toPlainSpanContext(sc: SpanContext): SpanContext {
  return {
    traceId: sc.traceId,
    spanId: sc.spanId,
    traceFlags: sc.traceFlags,
    traceState: sc.traceState,
    isRemote: sc.isRemote,
  };
}
