/**
 * Adaptive sampling per operation (span name): each operation's probability moves toward a target
 * number of sampled traces per second, so busy operations are sampled thinly and rare ones fully.
 *
 * Every `intervalMs` (checked lazily on the next decision, so no timer runs) each operation seen in
 * the interval gets a new probability from what it produced:
 *
 * ```
 * observed = sampled traces of the operation / seconds elapsed in the interval
 * target   = targetTracesPerSecond × scale
 * scale    = 1                                          when load ≤ loadThreshold
 *          = max(0.1, (1 − load) / (1 − loadThreshold))  when load > loadThreshold
 * p'       = p × target / observed   (p × maxIncreaseFactor when nothing was sampled)
 * ```
 *
 * A decrease applies at once; an increase is capped at `maxIncreaseFactor` per interval so a burst
 * after a quiet spell cannot flood the exporter. `p'` stays within [1e-6, 1]: never 0, so an
 * operation can always recover. The load signal (sampled once per interval) shrinks the target
 * linearly from 1× at the threshold to 0.1× at full load.
 *
 * The first `floorPerInterval` traces of each operation in each interval are sampled whatever the
 * probability, so a rare operation stays visible. Operations with no traffic in an interval are
 * forgotten (they restart at the initial rate), and at most `maxOperations` are tracked: further
 * operations share one overflow bucket, which keeps memory bounded whatever the span names.
 *
 * @module
 */

import type { Context } from "@opentelemetry/api";
import type { Sampler, SamplingResult } from "@opentelemetry/sdk-trace";
import { traceIdSampled } from "./ratio.ts";
import { NOT_SAMPLED, SAMPLED } from "./results.ts";

/** Lowest probability an operation can reach. */
export const MIN_PROBABILITY = 1e-6;
/** Smallest share of the target kept under full load. */
export const MIN_LOAD_SCALE = 0.1;
/** Name under which operations beyond `maxOperations` are reported. */
export const OVERFLOW_OPERATION = "_other";

/** Options of {@linkcode AdaptiveSampler}. */
export interface AdaptiveSamplerOptions {
  /** Probability of an operation before its first adjustment (the default rate). */
  initialRate: number;
  /** Sampled traces per second wanted per operation. Default 1. */
  targetTracesPerSecond?: number;
  /** Traces per operation per interval always sampled. Default 1. */
  floorPerInterval?: number;
  /** Adjustment interval, ms. Default 60 000. */
  intervalMs?: number;
  /** Largest growth factor per interval. Default 2. */
  maxIncreaseFactor?: number;
  /** Process load in [0, 1], read once per interval. Default: always 0. */
  loadSource?: () => number;
  /** Load above which the target shrinks. Default 0.7. */
  loadThreshold?: number;
  /** Operations tracked at most. Default 2000. */
  maxOperations?: number;
  /** Monotonic clock in milliseconds. Default `performance.now`. */
  now?: () => number;
}

class Operation {
  probability: number;
  seen = 0;
  sampled = 0;
  constructor(probability: number) {
    this.probability = probability;
  }
}

/** A per-operation adaptive probability sampler. */
export class AdaptiveSampler implements Sampler {
  readonly #initial: number;
  readonly #target: number;
  readonly #floor: number;
  readonly #interval: number;
  readonly #maxIncrease: number;
  readonly #load: () => number;
  readonly #loadThreshold: number;
  readonly #maxOperations: number;
  readonly #now: () => number;
  readonly #operations = new Map<string, Operation>();
  #overflow: Operation;
  #intervalStart: number;
  #lastScale = 1;

  /** Creates the sampler; the first interval starts now. */
  constructor(options: AdaptiveSamplerOptions) {
    this.#initial = clamp(options.initialRate);
    this.#target = options.targetTracesPerSecond ?? 1;
    this.#floor = options.floorPerInterval ?? 1;
    this.#interval = options.intervalMs ?? 60_000;
    this.#maxIncrease = options.maxIncreaseFactor ?? 2;
    this.#load = options.loadSource ?? (() => 0);
    this.#loadThreshold = options.loadThreshold ?? 0.7;
    this.#maxOperations = options.maxOperations ?? 2000;
    this.#now = options.now ?? (() => performance.now());
    this.#overflow = new Operation(this.#initial);
    this.#intervalStart = this.#now();
  }

  /** Decides a root span of operation `spanName`. */
  shouldSample(_context: Context, traceId: string, spanName: string): SamplingResult {
    const now = this.#now();
    if (now - this.#intervalStart >= this.#interval) this.#adjust(now);
    let op = this.#operations.get(spanName);
    if (op === undefined) {
      if (this.#operations.size < this.#maxOperations) {
        op = new Operation(this.#initial);
        this.#operations.set(spanName, op);
      } else {
        op = this.#overflow;
      }
    }
    op.seen++;
    if (op.seen <= this.#floor || traceIdSampled(traceId, op.probability)) {
      op.sampled++;
      return SAMPLED;
    }
    return NOT_SAMPLED;
  }

  #adjust(now: number): void {
    const seconds = (now - this.#intervalStart) / 1000;
    this.#intervalStart = now;
    const load = this.#load();
    this.#lastScale = load > this.#loadThreshold
      ? Math.max(MIN_LOAD_SCALE, (1 - load) / (1 - this.#loadThreshold))
      : 1;
    const target = this.#target * this.#lastScale;
    for (const [name, op] of this.#operations) {
      if (op.seen === 0) this.#operations.delete(name);
      else this.#adjustOne(op, target, seconds);
    }
    if (this.#overflow.seen > 0) this.#adjustOne(this.#overflow, target, seconds);
    else this.#overflow.probability = this.#initial;
  }

  #adjustOne(op: Operation, target: number, seconds: number): void {
    const observed = op.sampled / seconds;
    const p = op.probability;
    let next = observed > 0 ? p * target / observed : Infinity;
    if (next > p) next = Math.min(next, p * this.#maxIncrease);
    op.probability = Math.min(1, Math.max(MIN_PROBABILITY, next));
    op.seen = 0;
    op.sampled = 0;
  }

  /** Current probability for `operation` (the initial rate when it is not tracked). */
  effectiveRate(operation: string): number {
    return this.#operations.get(operation)?.probability ?? this.#initial;
  }

  /** Current probability of every tracked operation, plus the overflow bucket when in use. */
  *effectiveRates(): IterableIterator<[string, number]> {
    for (const [name, op] of this.#operations) yield [name, op.probability];
    if (this.#operations.size >= this.#maxOperations) {
      yield [OVERFLOW_OPERATION, this.#overflow.probability];
    }
  }

  /** Number of operations tracked (bounded by `maxOperations`). */
  get operationCount(): number {
    return this.#operations.size;
  }

  /** The load scale applied to the target at the last adjustment (1 = no load shedding). */
  get loadScale(): number {
    return this.#lastScale;
  }

  /** Describes the sampler. */
  toString(): string {
    return `AdaptiveSampler{target=${this.#target}/s, floor=${this.#floor}, interval=${this.#interval}ms}`;
  }
}

function clamp(rate: number): number {
  return rate >= 1 ? 1 : rate > 0 ? rate : MIN_PROBABILITY;
}
