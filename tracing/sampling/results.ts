/**
 * Shared, frozen sampling results. Samplers return these constants instead of building a result
 * per span, so the common decisions allocate nothing.
 *
 * @module
 */

import { SamplingDecision, type SamplingResult } from "@opentelemetry/sdk-trace";

/** Record and sample the span. */
export const SAMPLED: SamplingResult = Object.freeze({
  decision: SamplingDecision.RECORD_AND_SAMPLED,
});

/** Do not record the span (its context still propagates). */
export const NOT_SAMPLED: SamplingResult = Object.freeze({
  decision: SamplingDecision.NOT_RECORD,
});

/**
 * Not recorded because a rate limit turned a sampled decision down. Same decision as
 * {@linkcode NOT_SAMPLED}; a distinct object so a caller can tell the drop was already counted.
 */
export const RATE_LIMITED: SamplingResult = Object.freeze({
  decision: SamplingDecision.NOT_RECORD,
});

/** True when `result` records and samples the span. */
export function isSampled(result: SamplingResult): boolean {
  return result.decision === SamplingDecision.RECORD_AND_SAMPLED;
}
