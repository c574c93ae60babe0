/**
 * The `tracing.sampling` and `tracing.safeguards` configuration blocks: types, defaults, parsing
 * and validation. Input is the plain object the YAML parser produced; output uses camelCase fields
 * and milliseconds. Every error is a {@linkcode ConfigError} naming the key, and unknown keys are
 * refused so a typo cannot silently fall back to a default.
 *
 * ```yaml
 * sampling:
 *   default_rate: 0.1            # ratio for root spans no rule matches
 *   rules:                       # first match wins; /health, /readiness, /metrics → 0 built in
 *     - match: { path_prefix: "/announce/*" }   # url.path starts with (glob)
 *       rate: 0.05
 *     - match: { path: "/v2/**" }                         # whole url.path (glob)
 *       rate: 0.5
 *     - match: { operation: "scheduler.download" }        # span name, exact
 *       rate: 0.5
 *   parent_based: true           # honour a trusted parent's sampled flag
 *   max_traces_per_second: 0     # cap on new sampled traces per process; 0 = unlimited
 *   trust:
 *     trusted_networks: []       # CIDRs whose traceparent is trusted on edge listeners
 *     client_sampled_rate_limit: 10   # client-forced traces per second from untrusted peers
 *   adaptive:
 *     enabled: false
 *     target_traces_per_second: 1     # per operation
 *     floor_per_interval: 1           # traces per operation per interval always sampled
 *     interval: 60s
 *     max_increase_factor: 2
 *     load_source: event_loop_delay   # or in_flight
 *     load_threshold: 0.7             # above it the target shrinks
 *     max_operations: 2000
 * safeguards:
 *   circuit_breaker_enabled: true
 *   load_threshold: 0.9
 *   cooldown_duration: 30s
 *   export_failure_threshold: 5
 *   queue_full_threshold: 3
 *   load_source: event_loop_delay
 *   load_poll_interval: 1s
 *   max_event_loop_delay: 100ms
 *   max_in_flight: 256
 * ```
 *
 * Globs: `*` matches any run of characters except `/`, `**` matches any run including `/`.
 *
 * @module
 */

import { ConfigError } from "../config_error.ts";
import { type Network, NetworkList, parseCidr } from "../../common/cidr.ts";
import { parseDuration } from "../../common/duration.ts";

export { parseDuration };

/** What a sampling rule matches on. */
export type RuleMatch =
  /** `url.path` starts with `pattern` (a glob: the prefix may contain `*` and `**`). */
  | { readonly kind: "path_prefix"; readonly pattern: string }
  /** The whole `url.path` matches the glob `pattern`. */
  | { readonly kind: "path"; readonly pattern: string }
  /** The span name equals `pattern`. */
  | { readonly kind: "operation"; readonly pattern: string };

/** One sampling rule: root spans it matches are sampled with probability `rate`. */
export interface SamplingRule {
  /** The match condition. */
  readonly match: RuleMatch;
  /** Probability in [0, 1], decided by trace id. */
  readonly rate: number;
}

/** Which signal measures process load. */
export type LoadSourceKind = "event_loop_delay" | "in_flight";

/** The `sampling.trust` block: how far an edge listener believes a client's trace context. */
export interface TrustConfig {
  /**
   * Networks whose `traceparent` is trusted on edge listeners. Default empty: every client of an
   * edge port is untrusted (tests run all processes on loopback, so trusting 127.0.0.0/8 by default
   * would make the boundary untestable); roles or operators add their internal ranges.
   */
  trustedNetworks: NetworkList;
  /** Traces per second an untrusted client may force with `sampled=1`. Default 10. */
  clientSampledRateLimit: number;
}

/** The `sampling.adaptive` block. */
export interface AdaptiveConfig {
  /** Adaptive sampling on for root spans no rule matches. Default false. */
  enabled: boolean;
  /** Sampled traces per second wanted per operation. Default 1. */
  targetTracesPerSecond: number;
  /** Traces per operation per interval sampled regardless of probability. Default 1. */
  floorPerInterval: number;
  /** Adjustment interval, ms. Default 60 000. */
  intervalMs: number;
  /** Largest factor a probability may grow by in one interval. Default 2. */
  maxIncreaseFactor: number;
  /** Load signal that shrinks the target. Default `event_loop_delay`. */
  loadSource: LoadSourceKind;
  /** Load in [0, 1] above which the target shrinks. Default 0.7. */
  loadThreshold: number;
  /** Operations tracked at most; the rest share one bucket. Default 2000. */
  maxOperations: number;
}

/** The validated `sampling` block. */
export interface SamplingConfig {
  /** Ratio for root spans no rule matches. Default 0.1. */
  defaultRate: number;
  /** Rules in match order, built-in rules first. */
  rules: SamplingRule[];
  /** Honour a trusted remote parent's sampled flag. Default true. */
  parentBased: boolean;
  /** Cap on new sampled traces per second per process; 0 = unlimited. Default 0. */
  maxTracesPerSecond: number;
  /** Trust boundary of edge listeners. */
  trust: TrustConfig;
  /** Adaptive sampling. */
  adaptive: AdaptiveConfig;
}

/** The validated `safeguards` block; field names match {@linkcode CircuitBreakerOptions}. */
export interface SafeguardsConfig {
  /** Circuit breaker on. Default true. */
  circuitBreakerEnabled: boolean;
  /** Load in [0, 1] above which the breaker opens. Default 0.9. */
  loadThreshold: number;
  /** Time the breaker stays open before probing, ms. Default 30 000. */
  cooldownMs: number;
  /** Consecutive failed exports that open the breaker. Default 5. */
  exportFailureThreshold: number;
  /** Consecutive load polls that saw the export queue full and open the breaker. Default 3. */
  queueFullThreshold: number;
  /** Load signal of the breaker. Default `event_loop_delay`. */
  loadSource: LoadSourceKind;
  /** How often the breaker polls load, ms. Default 1000. */
  loadPollIntervalMs: number;
  /** Mean event-loop delay that counts as load 1.0, ms (also for adaptive sampling). Default 100. */
  maxEventLoopDelayMs: number;
  /** In-flight requests that count as load 1.0 (also for adaptive sampling). Default 256. */
  maxInFlight: number;
}

/** Paths never worth a trace; prepended to the user's rules unless a user rule names the path. */
export const BUILTIN_RULES: readonly SamplingRule[] = Object.freeze(
  ["/health", "/readiness", "/metrics"].map((p) => ({
    match: { kind: "path_prefix" as const, pattern: p },
    rate: 0,
  })),
);

type Raw = Record<string, unknown>;

function mapping(raw: unknown, key: string, allowed: readonly string[]): Raw {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError(key, "must be a mapping");
  }
  const obj = raw as Raw;
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) {
      throw new ConfigError(`${key}.${k}`, `unknown key (allowed: ${allowed.join(", ")})`);
    }
  }
  return obj;
}

function rate(value: unknown, key: string, dflt: number): number {
  if (value === undefined) return dflt;
  if (typeof value !== "number" || !(value >= 0 && value <= 1)) {
    throw new ConfigError(key, "must be a number between 0 and 1");
  }
  return value;
}

function number(value: unknown, key: string, dflt: number, min: number, exclusive = false): number {
  if (value === undefined) return dflt;
  const ok = typeof value === "number" && Number.isFinite(value) &&
    (exclusive ? value > min : value >= min);
  if (!ok) throw new ConfigError(key, `must be a number ${exclusive ? ">" : ">="} ${min}`);
  return value as number;
}

function integer(value: unknown, key: string, dflt: number, min: number): number {
  if (value === undefined) return dflt;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
    throw new ConfigError(key, `must be an integer >= ${min}`);
  }
  return value;
}

function boolean(value: unknown, key: string, dflt: boolean): boolean {
  if (value === undefined) return dflt;
  if (typeof value !== "boolean") throw new ConfigError(key, "must be true or false");
  return value;
}

function positiveDuration(value: unknown, key: string, dflt: number): number {
  if (value === undefined) return dflt;
  let ms: number;
  try {
    ms = parseDuration(value as string | number);
  } catch (error) {
    throw new ConfigError(key, (error as Error).message);
  }
  if (ms <= 0) throw new ConfigError(key, "must be longer than 0");
  return ms;
}

function loadSourceKind(value: unknown, key: string): LoadSourceKind {
  if (value === undefined) return "event_loop_delay";
  if (value !== "event_loop_delay" && value !== "in_flight") {
    throw new ConfigError(key, "must be event_loop_delay or in_flight");
  }
  return value;
}

const MATCH_KINDS = ["path_prefix", "path", "operation"] as const;

function parseRule(raw: unknown, key: string): SamplingRule {
  const obj = mapping(raw, key, ["match", "rate"]);
  if (obj.match === undefined) throw new ConfigError(`${key}.match`, "is required");
  if (obj.rate === undefined) throw new ConfigError(`${key}.rate`, "is required");
  const match = mapping(obj.match, `${key}.match`, MATCH_KINDS);
  const kinds = MATCH_KINDS.filter((k) => match[k] !== undefined);
  if (kinds.length !== 1) {
    throw new ConfigError(`${key}.match`, "must have exactly one of path_prefix, path, operation");
  }
  const kind = kinds[0];
  const pattern = match[kind];
  if (typeof pattern !== "string" || pattern === "") {
    throw new ConfigError(`${key}.match.${kind}`, "must be a non-empty string");
  }
  if (kind !== "operation" && !pattern.startsWith("/") && !pattern.startsWith("*")) {
    throw new ConfigError(`${key}.match.${kind}`, "must start with / (it matches url.path)");
  }
  return { match: { kind, pattern }, rate: rate(obj.rate, `${key}.rate`, 0) };
}

function parseTrust(raw: unknown, key: string): TrustConfig {
  const obj = mapping(raw, key, ["trusted_networks", "client_sampled_rate_limit"]);
  const nets = obj.trusted_networks ?? [];
  if (!Array.isArray(nets)) {
    throw new ConfigError(`${key}.trusted_networks`, "must be a list of CIDR strings");
  }
  const networks: Network[] = nets.map((text, i) => {
    const network = typeof text === "string" ? parseCidr(text) : undefined;
    if (!network) {
      throw new ConfigError(`${key}.trusted_networks[${i}]`, "must be a CIDR such as 10.0.0.0/8");
    }
    return network;
  });
  return {
    trustedNetworks: new NetworkList(networks),
    clientSampledRateLimit: number(
      obj.client_sampled_rate_limit,
      `${key}.client_sampled_rate_limit`,
      10,
      0,
    ),
  };
}

function parseAdaptive(raw: unknown, key: string): AdaptiveConfig {
  const obj = mapping(raw, key, [
    "enabled",
    "target_traces_per_second",
    "floor_per_interval",
    "interval",
    "max_increase_factor",
    "load_source",
    "load_threshold",
    "max_operations",
  ]);
  return {
    enabled: boolean(obj.enabled, `${key}.enabled`, false),
    targetTracesPerSecond: number(
      obj.target_traces_per_second,
      `${key}.target_traces_per_second`,
      1,
      0,
      true,
    ),
    floorPerInterval: integer(obj.floor_per_interval, `${key}.floor_per_interval`, 1, 0),
    intervalMs: positiveDuration(obj.interval, `${key}.interval`, 60_000),
    maxIncreaseFactor: number(obj.max_increase_factor, `${key}.max_increase_factor`, 2, 1),
    loadSource: loadSourceKind(obj.load_source, `${key}.load_source`),
    loadThreshold: rate(obj.load_threshold, `${key}.load_threshold`, 0.7),
    maxOperations: integer(obj.max_operations, `${key}.max_operations`, 2000, 1),
  };
}

function sameMatch(a: RuleMatch, b: RuleMatch): boolean {
  return (a.kind === "path_prefix" || a.kind === "path") &&
    (b.kind === "path_prefix" || b.kind === "path") && a.pattern === b.pattern;
}

/**
 * Parses the `sampling` block (absent means all defaults). `key` is the block's own path, used in
 * error messages. Built-in rules for `/health`, `/readiness` and `/metrics` (rate 0) come first,
 * except one the user's rules name with the same `path_prefix` or `path`.
 */
export function parseSamplingConfig(raw: unknown, key = "tracing.sampling"): SamplingConfig {
  const obj = mapping(raw, key, [
    "default_rate",
    "rules",
    "parent_based",
    "max_traces_per_second",
    "trust",
    "adaptive",
  ]);
  const rawRules = obj.rules ?? [];
  if (!Array.isArray(rawRules)) throw new ConfigError(`${key}.rules`, "must be a list of rules");
  const userRules = rawRules.map((r, i) => parseRule(r, `${key}.rules[${i}]`));
  const builtins = BUILTIN_RULES.filter((b) => !userRules.some((u) => sameMatch(b.match, u.match)));
  return {
    defaultRate: rate(obj.default_rate, `${key}.default_rate`, 0.1),
    rules: [...builtins, ...userRules],
    parentBased: boolean(obj.parent_based, `${key}.parent_based`, true),
    maxTracesPerSecond: number(obj.max_traces_per_second, `${key}.max_traces_per_second`, 0, 0),
    trust: parseTrust(obj.trust, `${key}.trust`),
    adaptive: parseAdaptive(obj.adaptive, `${key}.adaptive`),
  };
}

/** Parses the `safeguards` block (absent means all defaults). */
export function parseSafeguardsConfig(raw: unknown, key = "tracing.safeguards"): SafeguardsConfig {
  const obj = mapping(raw, key, [
    "circuit_breaker_enabled",
    "load_threshold",
    "cooldown_duration",
    "export_failure_threshold",
    "queue_full_threshold",
    "load_source",
    "load_poll_interval",
    "max_event_loop_delay",
    "max_in_flight",
  ]);
  const loadThreshold = rate(obj.load_threshold, `${key}.load_threshold`, 0.9);
  if (loadThreshold === 0) {
    throw new ConfigError(
      `${key}.load_threshold`,
      "must be above 0 (0 would never let tracing run)",
    );
  }
  return {
    circuitBreakerEnabled: boolean(
      obj.circuit_breaker_enabled,
      `${key}.circuit_breaker_enabled`,
      true,
    ),
    loadThreshold,
    cooldownMs: positiveDuration(obj.cooldown_duration, `${key}.cooldown_duration`, 30_000),
    exportFailureThreshold: integer(
      obj.export_failure_threshold,
      `${key}.export_failure_threshold`,
      5,
      1,
    ),
    queueFullThreshold: integer(obj.queue_full_threshold, `${key}.queue_full_threshold`, 3, 1),
    loadSource: loadSourceKind(obj.load_source, `${key}.load_source`),
    loadPollIntervalMs: positiveDuration(obj.load_poll_interval, `${key}.load_poll_interval`, 1000),
    maxEventLoopDelayMs: positiveDuration(
      obj.max_event_loop_delay,
      `${key}.max_event_loop_delay`,
      100,
    ),
    maxInFlight: integer(obj.max_in_flight, `${key}.max_in_flight`, 256, 1),
  };
}
