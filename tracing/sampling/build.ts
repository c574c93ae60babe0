/**
 * Composes the samplers from a validated {@linkcode SamplingConfig}:
 *
 * ```
 * KrakenSampler
 * └─ ParentBasedSampler
 *    ├─ local parent  → inherit its flag (cheap path, every child span)
 *    ├─ no parent     → root chain
 *    └─ remote parent → TrustBoundarySampler (parent_based: true)
 *                         ├─ untrusted edge client → client flag up to the limit, else root chain
 *                         └─ otherwise             → parent's flag
 *                       root chain (parent_based: false)
 * root chain = RateLimitingSampler (max_traces_per_second > 0)
 *              └─ RuleSampler (first matching rule's rate)
 *                 └─ fallback: AdaptiveSampler (adaptive.enabled) or RatioSampler(default_rate)
 * ```
 *
 * With `parent_based: false` a remote parent's flag is ignored and every span arriving over the
 * network is decided by the root chain; children of local spans still inherit, or traces would
 * fall apart inside one process. Rule decisions go by trace id, so processes with the same rules
 * agree; the floor of the adaptive sampler and the rate limits are per process by nature and only
 * ever apply where a trace enters (root or edge), the rest of the trace follows that decision.
 *
 * @module
 */

import type { Sampler } from "@opentelemetry/sdk-trace";
import { AdaptiveSampler } from "./adaptive_sampler.ts";
import type { SamplingConfig } from "./config.ts";
import { ParentBasedSampler, ParentFlagSampler } from "./parent_based_sampler.ts";
import { RateLimitingSampler } from "./rate_limiting_sampler.ts";
import { RatioSampler } from "./ratio.ts";
import type { ShouldSample } from "./results.ts";
import { RuleSampler } from "./rule_sampler.ts";
import { TrustBoundarySampler } from "./trust_boundary_sampler.ts";
import { ATTR } from "../names.ts";
import { JaegerRemoteSampler } from "./jaeger_remote_sampler.ts";
import { sampledWith } from "./results.ts";
import { TokenBucket } from "./token_bucket.ts";

/** Operation label under which the rate for operations without their own rate is reported. */
export const DEFAULT_OPERATION = "*";

/** What {@linkcode buildSampler} needs from outside. */
export interface SamplerDeps {
  /** Monotonic clock in milliseconds (rate limits, adaptive intervals). Default `performance.now`. */
  now?: () => number;
  /** Load in [0, 1] for adaptive sampling (see `tracing/safeguards/load.ts`). Default: always 0. */
  loadSource?: () => number;
  /**
   * Counter bumped when `max_traces_per_second` turns a sampled root down, or the edge's
   * `client_sampled_rate_limit` refuses a client-forced sample that is then not sampled.
   */
  counters?: { droppedRateLimit: number };
  /** `service.name`, whose strategy the Jaeger remote sampler asks for. */
  serviceName?: string;
  /** The fetch the remote sampler uses (tests). */
  fetch?: typeof fetch;
  /** Told about each failed strategy refresh (logged, rate-limited). */
  onRemoteError?: (error: Error) => void;
}

/**
 * A root decision a client asked for with `jaeger-debug-id`: sampled while the edge's
 * `client_sampled_rate_limit` bucket (shared with client-forced `traceparent` flags) has a token,
 * else decided by `root` as any other span.
 */
export class DebugIdSampler implements Sampler {
  readonly #root: Sampler;
  readonly #bucket: TokenBucket;

  /** Creates the sampler. */
  constructor(root: Sampler, bucket: TokenBucket) {
    this.#root = root;
    this.#bucket = bucket;
  }

  /** Samples a span carrying a debug id within the limit; otherwise asks `root`. */
  readonly shouldSample: ShouldSample = (context, traceId, spanName, kind, attributes, links) => {
    if (attributes[ATTR.samplingDebugId] !== undefined && this.#bucket.tryTake()) {
      return DEBUG_FORCED;
    }
    return this.#root.shouldSample(context, traceId, spanName, kind, attributes, links);
  };

  /** Describes the sampler. */
  toString(): string {
    return `DebugIdSampler{${this.#root.toString()}}`;
  }
}

const DEBUG_FORCED = sampledWith({ [ATTR.samplingClientForced]: true });

/** The composed sampler, with the effective rates the self-metrics report. */
export class KrakenSampler implements Sampler {
  readonly #delegate: Sampler;
  readonly #rules: RuleSampler;
  readonly #adaptive: AdaptiveSampler | undefined;
  readonly #defaultRate: number;
  /** The Jaeger remote sampler, when `sampling.remote.enabled` (start it, stop it). */
  readonly remote: JaegerRemoteSampler | undefined;

  /** Use {@linkcode buildSampler}. */
  constructor(
    delegate: Sampler,
    rules: RuleSampler,
    adaptive: AdaptiveSampler | undefined,
    defaultRate: number,
    remote?: JaegerRemoteSampler,
  ) {
    this.#delegate = delegate;
    this.#rules = rules;
    this.#adaptive = adaptive;
    this.#defaultRate = defaultRate;
    this.remote = remote;
  }

  /** Decides a span start (called for every span, root and child). */
  readonly shouldSample: ShouldSample = (context, traceId, spanName, kind, attributes, links) =>
    this.#delegate.shouldSample(context, traceId, spanName, kind, attributes, links);

  /**
   * The probability a root span of `operation` gets when no path rule matches it: the operation
   * rule's rate, else the adaptive probability, else `default_rate`.
   */
  effectiveRate(operation: string): number {
    const rule = this.#rules.operationRules().find((r) => r.match.pattern === operation);
    return rule?.rate ?? this.remote?.effectiveRate(operation) ??
      this.#adaptive?.effectiveRate(operation) ?? this.#defaultRate;
  }

  /**
   * Rates for the `sampling_rate{operation}` gauge: each operation rule, each operation the
   * adaptive sampler tracks (bounded), and {@linkcode DEFAULT_OPERATION} for everything else.
   */
  *effectiveRates(): IterableIterator<[string, number]> {
    const seen = new Set<string>();
    for (const rule of this.#rules.operationRules()) {
      if (seen.has(rule.match.pattern)) continue;
      seen.add(rule.match.pattern);
      yield [rule.match.pattern, rule.rate];
    }
    for (const entry of this.remote?.effectiveRates() ?? []) {
      if (seen.has(entry[0])) continue;
      seen.add(entry[0]);
      yield entry;
    }
    if (this.#adaptive && this.remote?.strategy === undefined) {
      for (const entry of this.#adaptive.effectiveRates()) if (!seen.has(entry[0])) yield entry;
    }
    yield [DEFAULT_OPERATION, this.remote?.effectiveRate(DEFAULT_OPERATION) ?? this.#defaultRate];
  }

  /** Describes the composition. */
  toString(): string {
    return this.#delegate.toString();
  }
}

/** Builds the sampler for a role from its validated `sampling` configuration. */
export function buildSampler(cfg: SamplingConfig, deps: SamplerDeps = {}): KrakenSampler {
  const adaptive = cfg.adaptive.enabled
    ? new AdaptiveSampler({
      initialRate: cfg.defaultRate,
      targetTracesPerSecond: cfg.adaptive.targetTracesPerSecond,
      floorPerInterval: cfg.adaptive.floorPerInterval,
      intervalMs: cfg.adaptive.intervalMs,
      maxIncreaseFactor: cfg.adaptive.maxIncreaseFactor,
      loadSource: deps.loadSource,
      loadThreshold: cfg.adaptive.loadThreshold,
      maxOperations: cfg.adaptive.maxOperations,
      now: deps.now,
    })
    : undefined;
  const local = adaptive ?? new RatioSampler(cfg.defaultRate);
  const remote = cfg.remote.enabled
    ? new JaegerRemoteSampler({
      endpoint: cfg.remote.endpoint,
      serviceName: deps.serviceName ?? "unknown_service",
      refreshIntervalMs: cfg.remote.refreshIntervalMs,
      maxOperations: cfg.remote.maxOperations,
      fallback: local,
      floorPerInterval: cfg.adaptive.floorPerInterval,
      floorIntervalMs: cfg.adaptive.intervalMs,
      now: deps.now,
      fetch: deps.fetch,
      onError: deps.onRemoteError,
    })
    : undefined;
  const rules = new RuleSampler({ rules: cfg.rules, fallback: remote ?? local });
  const counters = deps.counters;
  const clientBucket = new TokenBucket({
    ratePerSecond: cfg.trust.clientSampledRateLimit,
    now: deps.now,
  });
  const limited: Sampler = cfg.maxTracesPerSecond > 0
    ? new RateLimitingSampler({
      delegate: rules,
      maxPerSecond: cfg.maxTracesPerSecond,
      now: deps.now,
      onDrop: counters ? () => counters.droppedRateLimit++ : undefined,
    })
    : rules;
  const root = new DebugIdSampler(limited, clientBucket);
  const remoteParent = cfg.parentBased
    ? new TrustBoundarySampler({
      root,
      trusted: new ParentFlagSampler(),
      trustedNetworks: cfg.trust.trustedNetworks,
      clientSampledRateLimit: cfg.trust.clientSampledRateLimit,
      bucket: clientBucket,
      now: deps.now,
      onDrop: counters ? () => counters.droppedRateLimit++ : undefined,
    })
    : root;
  return new KrakenSampler(
    new ParentBasedSampler({ root, remoteParent }),
    rules,
    adaptive,
    cfg.defaultRate,
    remote,
  );
}
