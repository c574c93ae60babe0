/**
 * Jaeger remote sampling: this service's strategy is fetched from Jaeger's HTTP sampling endpoint
 * (`GET <endpoint>?service=<service.name>`, the JSON form of `SamplingStrategyResponse`) every
 * refresh interval and decides root spans that no local rule matched:
 *
 * - `probabilisticSampling` — a share of traces, by trace id (so processes agree);
 * - `rateLimitingSampling` — at most `maxTracesPerSecond` new traces per second (this process);
 * - `operationSampling` — per operation (span name): its own probability or the default one, plus
 *   a lower bound of `defaultLowerBoundTracesPerSecond` per operation that is sampled even when
 *   the probability says no (Jaeger's guaranteed-throughput sampler).
 *
 * Whatever the strategy, the first `floorPerInterval` root spans of each operation in each
 * `floorIntervalMs` are sampled: the local guaranteed floor holds under any remote strategy.
 * Until a first strategy arrives, and when the endpoint is unreachable or answers garbage, the
 * last good strategy stays in force (or, before any, the local `fallback` sampler decides).
 *
 * Sampled decisions carry `sampler.type` and `sampler.param`, the attributes Jaeger's adaptive
 * sampling reads to compute per-operation probabilities from what it receives.
 *
 * @module
 */

import type { Attributes, Context, Link, SpanKind } from "@opentelemetry/api";
import type { Sampler, SamplingResult } from "@opentelemetry/sdk-trace";
import { ATTR } from "../names.ts";
import { traceIdSampled } from "./ratio.ts";
import { NOT_SAMPLED, sampledWith } from "./results.ts";
import { TokenBucket } from "./token_bucket.ts";

/** A strategy as kraken uses it, parsed from Jaeger's response. */
export type SamplingStrategy =
  | {
    /** A share of traces. */
    type: "probabilistic";
    /** Probability in [0, 1]. */
    rate: number;
  }
  | {
    /** A rate of new traces. */
    type: "ratelimiting";
    /** Traces per second. */
    perSecond: number;
  }
  | {
    /** Per operation. */
    type: "per_operation";
    /** Probability of operations without their own. */
    defaultRate: number;
    /** Traces per second per operation sampled whatever the probability. */
    lowerBoundPerSecond: number;
    /** Probability per operation (span name). */
    operations: Map<string, number>;
  };

/** Why a strategy response was refused. */
export class StrategyError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "StrategyError";
  }
}

function rateOf(value: unknown, what: string): number {
  const n = Number(value ?? 0);
  if (!Number.isFinite(n) || n < 0 || n > 1) {
    throw new StrategyError(`${what} ${value} not in [0, 1]`);
  }
  return n;
}

function perSecondOf(value: unknown, what: string): number {
  const n = Number(value ?? 0);
  if (!Number.isFinite(n) || n < 0) throw new StrategyError(`${what} ${value} is not a rate`);
  return n;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Parses Jaeger's `SamplingStrategyResponse` JSON (enum as number or name, as the proto JSON
 * mapping allows). `operationSampling`, when present, wins, as in Jaeger's own clients.
 * @throws {StrategyError} when the response is not one
 */
export function parseStrategy(body: unknown): SamplingStrategy {
  if (!isObject(body)) throw new StrategyError("response is not a JSON object");
  const op = body.operationSampling;
  if (isObject(op)) {
    const operations = new Map<string, number>();
    const list = op.perOperationStrategies ?? [];
    if (!Array.isArray(list)) throw new StrategyError("perOperationStrategies is not a list");
    for (const entry of list) {
      if (!isObject(entry) || typeof entry.operation !== "string") {
        throw new StrategyError("a per-operation strategy has no operation");
      }
      const p = isObject(entry.probabilisticSampling) ? entry.probabilisticSampling : {};
      operations.set(entry.operation, rateOf(p.samplingRate, `${entry.operation} samplingRate`));
    }
    return {
      type: "per_operation",
      defaultRate: rateOf(op.defaultSamplingProbability, "defaultSamplingProbability"),
      lowerBoundPerSecond: perSecondOf(
        op.defaultLowerBoundTracesPerSecond,
        "defaultLowerBoundTracesPerSecond",
      ),
      operations,
    };
  }
  const type = body.strategyType ?? 0;
  if (type === 1 || type === "RATE_LIMITING") {
    const r = isObject(body.rateLimitingSampling) ? body.rateLimitingSampling : {};
    return {
      type: "ratelimiting",
      perSecond: perSecondOf(r.maxTracesPerSecond, "maxTracesPerSecond"),
    };
  }
  if (type === 0 || type === "PROBABILISTIC") {
    const p = isObject(body.probabilisticSampling) ? body.probabilisticSampling : {};
    return { type: "probabilistic", rate: rateOf(p.samplingRate, "samplingRate") };
  }
  throw new StrategyError(`unknown strategyType ${JSON.stringify(type)}`);
}

/** Options of {@linkcode JaegerRemoteSampler}. */
export interface JaegerRemoteSamplerOptions {
  /** Jaeger's HTTP sampling endpoint, e.g. `http://jaeger:5778/sampling`. */
  endpoint: string;
  /** `service.name` whose strategy is asked for. */
  serviceName: string;
  /** How often the strategy is fetched, ms. */
  refreshIntervalMs: number;
  /** Decides until a first strategy arrives (the local default). */
  fallback: Sampler;
  /** Root spans per operation per interval always sampled. Default 1. */
  floorPerInterval?: number;
  /** The floor's interval, ms. Default 60 000. */
  floorIntervalMs?: number;
  /** Operations with their own lower bound and floor state at most. Default 2000. */
  maxOperations?: number;
  /** Time one fetch may take, ms. Default 5000. */
  fetchTimeoutMs?: number;
  /** The fetch to use (never the traced one). */
  fetch?: typeof fetch;
  /** Monotonic clock, ms. Default `performance.now`. */
  now?: () => number;
  /** Told about each failed refresh (the caller logs it, rate-limited). */
  onError?: (error: Error) => void;
  /** Told about each strategy taken into use. */
  onStrategy?: (strategy: SamplingStrategy) => void;
}

class OperationState {
  bucket: TokenBucket | undefined;
  seen = 0;
  intervalStart: number;
  constructor(now: number) {
    this.intervalStart = now;
  }
}

const FLOOR_TYPE = "lowerbound";

/** A sampler driven by the strategies Jaeger serves for this service. */
export class JaegerRemoteSampler implements Sampler {
  readonly #options: JaegerRemoteSamplerOptions;
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  readonly #floor: number;
  readonly #floorInterval: number;
  readonly #maxOperations: number;
  readonly #operations = new Map<string, OperationState>();
  #strategy: SamplingStrategy | undefined;
  #rateLimiter: TokenBucket | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #refreshing: Promise<void> | undefined;
  #results = new Map<string, SamplingResult>();

  /** Creates the sampler; call {@linkcode start} to begin polling. */
  constructor(options: JaegerRemoteSamplerOptions) {
    this.#options = options;
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#now = options.now ?? (() => performance.now());
    this.#floor = options.floorPerInterval ?? 1;
    this.#floorInterval = options.floorIntervalMs ?? 60_000;
    this.#maxOperations = options.maxOperations ?? 2000;
  }

  /** The strategy in force, if one has arrived. */
  get strategy(): SamplingStrategy | undefined {
    return this.#strategy;
  }

  /** Takes `strategy` into use (a refresh does this; tests may too). */
  setStrategy(strategy: SamplingStrategy): void {
    this.#strategy = strategy;
    this.#rateLimiter = strategy.type === "ratelimiting"
      ? new TokenBucket({ ratePerSecond: strategy.perSecond, now: this.#now })
      : undefined;
    // Lower-bound buckets follow the new strategy's rate; floor counts carry on.
    for (const state of this.#operations.values()) state.bucket = undefined;
    this.#results.clear();
    this.#options.onStrategy?.(strategy);
  }

  /** Fetches the strategy once; a failure keeps the one in force. Concurrent calls share one. */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#fetchStrategy().finally(() => this.#refreshing = undefined);
    return this.#refreshing;
  }

  async #fetchStrategy(): Promise<void> {
    const url = new URL(this.#options.endpoint);
    url.searchParams.set("service", this.#options.serviceName);
    try {
      const res = await this.#fetch(url, {
        signal: AbortSignal.timeout(this.#options.fetchTimeoutMs ?? 5000),
      });
      const text = await res.text();
      if (!res.ok) throw new StrategyError(`${url} answered ${res.status}: ${text.slice(0, 200)}`);
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        throw new StrategyError(`${url} answered non-JSON: ${text.slice(0, 200)}`);
      }
      this.setStrategy(parseStrategy(body));
    } catch (error) {
      this.#options.onError?.(error as Error);
    }
  }

  /** Fetches now, then every refresh interval (the timer never keeps the process alive). */
  start(): Promise<void> {
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.refresh(), this.#options.refreshIntervalMs);
      Deno.unrefTimer(this.#timer);
    }
    return this.refresh();
  }

  /** Stops polling. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #result(type: string, param: number): SamplingResult {
    const key = `${type}:${param}`;
    let result = this.#results.get(key);
    if (result === undefined) {
      result = sampledWith({ [ATTR.samplerType]: type, [ATTR.samplerParam]: param });
      if (this.#results.size < 64) this.#results.set(key, result);
    }
    return result;
  }

  #state(operation: string, now: number): OperationState | undefined {
    let state = this.#operations.get(operation);
    if (state === undefined && this.#operations.size < this.#maxOperations) {
      state = new OperationState(now);
      this.#operations.set(operation, state);
    }
    return state;
  }

  /** Decides a root span of operation `spanName` that no local rule matched. */
  shouldSample(
    context: Context,
    traceId: string,
    spanName: string,
    kind: SpanKind,
    attributes: Attributes,
    links: Link[],
  ): SamplingResult {
    const strategy = this.#strategy;
    if (strategy === undefined) {
      return this.#options.fallback.shouldSample(
        context,
        traceId,
        spanName,
        kind,
        attributes,
        links,
      );
    }
    const now = this.#now();
    const state = this.#state(spanName, now);
    if (state !== undefined) {
      if (now - state.intervalStart >= this.#floorInterval) {
        state.intervalStart = now;
        state.seen = 0;
      }
      state.seen++;
    }
    switch (strategy.type) {
      case "probabilistic":
        if (traceIdSampled(traceId, strategy.rate)) {
          return this.#result("probabilistic", strategy.rate);
        }
        break;
      case "ratelimiting":
        if (this.#rateLimiter!.tryTake()) return this.#result("ratelimiting", strategy.perSecond);
        break;
      case "per_operation": {
        const rate = strategy.operations.get(spanName) ?? strategy.defaultRate;
        if (traceIdSampled(traceId, rate)) return this.#result("probabilistic", rate);
        if (state !== undefined && strategy.lowerBoundPerSecond > 0) {
          state.bucket ??= new TokenBucket({
            ratePerSecond: strategy.lowerBoundPerSecond,
            burst: 1,
            now: this.#now,
          });
          if (state.bucket.tryTake()) return this.#result(FLOOR_TYPE, rate);
        }
        break;
      }
    }
    if (state !== undefined && state.seen <= this.#floor) return this.#result(FLOOR_TYPE, 0);
    return NOT_SAMPLED;
  }

  /** The probability the strategy gives `operation`, if it is a probability. */
  effectiveRate(operation: string): number | undefined {
    const s = this.#strategy;
    if (s?.type === "probabilistic") return s.rate;
    if (s?.type === "per_operation") return s.operations.get(operation) ?? s.defaultRate;
    return undefined;
  }

  /** Per-operation probabilities of the strategy (for the `sampling_rate` gauge). */
  *effectiveRates(): IterableIterator<[string, number]> {
    const s = this.#strategy;
    if (s?.type === "per_operation") yield* s.operations;
  }

  /** Describes the sampler. */
  toString(): string {
    return `JaegerRemoteSampler{${this.#options.endpoint}, ${
      this.#strategy?.type ?? "no strategy yet"
    }}`;
  }
}
