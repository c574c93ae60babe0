/**
 * Fast trace and span id generation.
 *
 * Ids come from a pool of cryptographically random 32-bit words refilled in bulk. A span id is
 * kept as two words and turned into hex only when something reads it (an export, an injected
 * header, a log line), so spans that nobody looks at before export never pay for the string. The
 * stock SDK calls `Math.random` per byte and builds the string at every start.
 *
 * @module
 */

import type { SpanContext, TraceState } from "@opentelemetry/api";

const POOL_WORDS = 4096;
const pool = new Uint32Array(POOL_WORDS);
let cursor = POOL_WORDS;

const HEX_BYTE: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** Returns one random 32-bit word from the pool. */
export function randomWord(): number {
  if (cursor === POOL_WORDS) {
    crypto.getRandomValues(pool);
    cursor = 0;
  }
  return pool[cursor++];
}

function wordHex(w: number): string {
  return HEX_BYTE[w >>> 24] + HEX_BYTE[(w >>> 16) & 0xff] + HEX_BYTE[(w >>> 8) & 0xff] +
    HEX_BYTE[w & 0xff];
}

/** Returns a random, valid (non-zero) 32-character lowercase hex trace id. */
export function newTraceId(): string {
  let a = randomWord();
  const b = randomWord(), c = randomWord(), d = randomWord();
  if ((a | b | c | d) === 0) a = 1;
  return wordHex(a) + wordHex(b) + wordHex(c) + wordHex(d);
}

/** Returns a random, valid (non-zero) 16-character lowercase hex span id. */
export function newSpanId(): string {
  let a = randomWord();
  const b = randomWord();
  if ((a | b) === 0) a = 1;
  return wordHex(a) + wordHex(b);
}

/** Hex of one byte, from the shared lookup table. */
export function byteHex(b: number): string {
  return HEX_BYTE[b & 0xff];
}

/**
 * The span context of a span created in this process: a fresh random span id, rendered as hex on
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
  #hi: number;
  #lo: number;
  #spanId: string | undefined;

  /** Creates a context with a new random span id for `traceId`. */
  constructor(traceId: string, traceFlags: number, traceState: TraceState | undefined) {
    this.traceId = traceId;
    this.traceFlags = traceFlags;
    this.traceState = traceState;
    this.#hi = randomWord();
    this.#lo = randomWord();
    if ((this.#hi | this.#lo) === 0) this.#hi = 1;
  }

  /** 16 hex digits, computed once on first read. */
  get spanId(): string {
    return this.#spanId ??= wordHex(this.#hi) + wordHex(this.#lo);
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
