/**
 * A token bucket: the rate limit behind `max_traces_per_second` and the trust boundary's
 * `client_sampled_rate_limit`. Tokens refill continuously at `ratePerSecond` up to `burst`; the
 * bucket starts full. Over any window of `t` seconds at most `burst + t * ratePerSecond` tokens are
 * taken, so the sustained rate never exceeds the limit.
 *
 * @module
 */

/** Options of {@linkcode TokenBucket}. */
export interface TokenBucketOptions {
  /** Tokens added per second. */
  ratePerSecond: number;
  /** Bucket size. Default `max(1, ratePerSecond)`: one second's worth, at least one token. */
  burst?: number;
  /** Monotonic clock in milliseconds. Default `performance.now`. */
  now?: () => number;
}

/** A token bucket with lazy refill (no timer). */
export class TokenBucket {
  readonly #ratePerMs: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #last: number;

  /** Creates a full bucket. */
  constructor(options: TokenBucketOptions) {
    this.#ratePerMs = Math.max(0, options.ratePerSecond) / 1000;
    this.#burst = options.burst ?? Math.max(1, options.ratePerSecond);
    this.#now = options.now ?? (() => performance.now());
    this.#tokens = options.ratePerSecond > 0 ? this.#burst : 0;
    this.#last = this.#now();
  }

  /** Takes one token if available. O(1), allocation-free. */
  tryTake(): boolean {
    const now = this.#now();
    if (now > this.#last) {
      this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#last) * this.#ratePerMs);
      this.#last = now;
    }
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return true;
    }
    return false;
  }
}
