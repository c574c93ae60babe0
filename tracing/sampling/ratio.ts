/**
 * Deterministic probability sampling by trace id.
 *
 * The decision uses the low 56 bits of the trace id, the part W3C Trace Context level 2 requires
 * to be random, with OpenTelemetry's consistent-probability rule: a trace is sampled at rate `p`
 * when its 56-bit value `R` satisfies `R >= T`, with rejection threshold `T = round((1 - p) * 2^56)`.
 * Every process therefore reaches the same decision for the same trace at the same rate, and a
 * trace sampled at a low rate is also sampled at every higher rate, so services with different
 * rates still produce whole traces for the lower-rate share.
 *
 * @module
 */

import type { Sampler, SamplingResult } from "@opentelemetry/sdk-trace";
import { NOT_SAMPLED, SAMPLED } from "./results.ts";

const TWO_32 = 2 ** 32;
const TWO_56 = 2 ** 56;

function hexValue(traceId: string, start: number, end: number): number {
  let value = 0;
  for (let i = start; i < end; i++) {
    const c = traceId.charCodeAt(i);
    // '0'-'9' = 48-57, 'A'-'F' = 65-70, 'a'-'f' = 97-102.
    value = value * 16 + (c <= 57 ? c - 48 : (c | 32) - 87);
  }
  return value;
}

/**
 * True when the trace with id `traceId` (32 hex digits) is sampled at probability `rate`.
 * Rates at or above 1 always sample; rates at or below 0 (and NaN) never do.
 */
export function traceIdSampled(traceId: string, rate: number): boolean {
  if (rate >= 1) return true;
  if (!(rate > 0)) return false;
  const threshold = Math.round((1 - rate) * TWO_56);
  // Compare the 56-bit numbers as (high 24 bits, low 32 bits) so no precision is lost.
  const tHigh = Math.floor(threshold / TWO_32);
  const tLow = threshold - tHigh * TWO_32;
  const rHigh = hexValue(traceId, 18, 24);
  if (rHigh !== tHigh) return rHigh > tHigh;
  return hexValue(traceId, 24, 32) >= tLow;
}

/** A sampler that samples a fixed share of traces, decided by trace id. */
export class RatioSampler implements Sampler {
  /** The sampling probability in [0, 1]. */
  readonly rate: number;

  /** Creates a sampler for probability `rate` (clamped to [0, 1]). */
  constructor(rate: number) {
    this.rate = rate >= 1 ? 1 : rate > 0 ? rate : 0;
  }

  /** Samples when {@linkcode traceIdSampled} says so for this trace id. */
  shouldSample(_context: unknown, traceId: string): SamplingResult {
    return traceIdSampled(traceId, this.rate) ? SAMPLED : NOT_SAMPLED;
  }

  /** Describes the sampler. */
  toString(): string {
    return `RatioSampler{${this.rate}}`;
  }
}
