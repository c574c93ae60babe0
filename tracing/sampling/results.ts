/**
 * What every sampler here shares: frozen results (samplers return these constants instead of
 * building a result per span, so the common decisions allocate nothing), the type of
 * `shouldSample` (samplers define it as an arrow field, so the six parameters are typed once, here),
 * and the options of a sampler with a
 * rate limit.
 *
 * @module
 */

import type { Attributes } from "@opentelemetry/api";
import { type Sampler, SamplingDecision, type SamplingResult } from "@opentelemetry/sdk-trace";

/** `Sampler.shouldSample`: samplers here implement it as a field of this type. */
export type ShouldSample = Sampler["shouldSample"];

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

/** A frozen sampled result carrying `attributes` (computed once, not per span). */
export function sampledWith(attributes: Attributes): SamplingResult {
  return Object.freeze({
    decision: SAMPLED.decision,
    attributes: Object.freeze({ ...attributes }),
  });
}

/** Options every rate-limited sampler takes besides its rate. */
export interface RateLimitOptions {
  /** Monotonic clock in milliseconds. Default `performance.now`. */
  now?: () => number;
  /** Called for each decision the limit turned down (the `rate_limit` drop counter). */
  onDrop?: () => void;
}
