/**
 * Caps the number of new sampled traces per second (`max_traces_per_second`): a root decision of
 * the delegate that would sample is kept only while the token bucket has a token.
 *
 * @module
 */

import type { Sampler } from "@opentelemetry/sdk-trace";
import { isSampled, RATE_LIMITED, type RateLimitOptions, type ShouldSample } from "./results.ts";
import { TokenBucket } from "./token_bucket.ts";

/** Options of {@linkcode RateLimitingSampler}. */
export interface RateLimitingSamplerOptions extends RateLimitOptions {
  /** The sampler whose positive decisions are rate limited. */
  delegate: Sampler;
  /** Sampled decisions allowed per second (burst: one second's worth). */
  maxPerSecond: number;
}

/** A sampler that turns the delegate's sampled decisions down beyond a rate. */
export class RateLimitingSampler implements Sampler {
  readonly #delegate: Sampler;
  readonly #bucket: TokenBucket;
  readonly #onDrop: (() => void) | undefined;
  readonly #max: number;

  /** Creates the sampler. */
  constructor(options: RateLimitingSamplerOptions) {
    this.#delegate = options.delegate;
    this.#max = options.maxPerSecond;
    this.#bucket = new TokenBucket({ ratePerSecond: options.maxPerSecond, now: options.now });
    this.#onDrop = options.onDrop;
  }

  /** Asks the delegate; a sampled answer costs one token or becomes not sampled. */
  readonly shouldSample: ShouldSample = (context, traceId, spanName, kind, attributes, links) => {
    const result = this.#delegate.shouldSample(context, traceId, spanName, kind, attributes, links);
    if (!isSampled(result) || this.#bucket.tryTake()) return result;
    this.#onDrop?.();
    return RATE_LIMITED;
  };

  /** Describes the sampler. */
  toString(): string {
    return `RateLimitingSampler{${this.#max}/s, ${this.#delegate.toString()}}`;
  }
}
