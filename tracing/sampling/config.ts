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
 *     baggage_allowed_keys: []   # client baggage keys passed on from untrusted peers (none)
 *     baggage_max_bytes: 1024    # size cap of the client baggage passed on
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
 *   export_timeout_threshold: 3     # timed-out exports in a row (a collector that never answers)
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

import { NetworkList, parseCidr } from "../../common/cidr.ts";
import {
  bool,
  custom,
  duration,
  type Infer,
  int,
  list,
  number,
  object,
  oneOf,
  rate,
  string,
  variant,
} from "../../common/schema.ts";

/** Which signal measures process load. */
export const LOAD_SOURCES = ["event_loop_delay", "in_flight"] as const;

/** One of {@linkcode LOAD_SOURCES}. */
export type LoadSourceKind = typeof LOAD_SOURCES[number];

function loadSource(): ReturnType<typeof oneOf<LoadSourceKind>> {
  return oneOf(LOAD_SOURCES).default("event_loop_delay");
}

const urlPath = string().check((p) =>
  p.startsWith("/") || p.startsWith("*") ? undefined : "must start with / (it matches url.path)"
);

/** One `rules` entry; its `match` becomes `{kind, pattern}`. */
const ruleSchema = object({
  match: variant({
    path_prefix: urlPath.describe("`url.path` starts with this glob."),
    path: urlPath.describe("The whole `url.path` matches this glob."),
    operation: string().describe("The span name equals this."),
  }).map(({ kind, value }) => ({ kind, pattern: value })),
  rate: rate().describe("Probability in [0, 1], decided by trace id."),
});

/** One sampling rule: root spans it matches are sampled with probability `rate`. */
export type SamplingRule = Infer<typeof ruleSchema>;

/** What a sampling rule matches on: `path_prefix`, `path` (globs on `url.path`) or `operation`. */
export type RuleMatch = SamplingRule["match"];

/** Paths never worth a trace; prepended to the user's rules unless a user rule names the path. */
export const BUILTIN_RULES: readonly SamplingRule[] = Object.freeze(
  ["/health", "/readiness", "/metrics"].map((p) => ({
    match: { kind: "path_prefix" as const, pattern: p },
    rate: 0,
  })),
);

const cidr = custom("CIDR", (raw) => {
  const network = typeof raw === "string" ? parseCidr(raw) : undefined;
  if (!network) throw new Error("must be a CIDR such as 10.0.0.0/8");
  return network;
});

const trustSchema = object({
  trusted_networks: list(cidr, { of: "CIDR strings" }).default([])
    .map((networks) => new NetworkList(networks))
    .describe(
      "CIDRs whose `traceparent` is trusted on edge listeners. Empty by default: every client of " +
        "an edge port is untrusted.",
    ),
  client_sampled_rate_limit: number({ min: 0 }).default(10)
    .describe("Traces per second an untrusted client may force with `sampled=1`."),
  baggage_allowed_keys: list(string(), { of: "baggage keys" }).default([]).describe(
    "Keys of a client's W3C `baggage` an edge listener passes on from an untrusted client. Empty " +
      "by default: client baggage is dropped (`kraken_tracing_baggage_dropped_total" +
      '{reason="not_allowed"}`).',
  ),
  baggage_max_bytes: int({ min: 0 }).default(1024).describe(
    "Largest size of the allowed members kept from an untrusted client (`key=value` serialized); " +
      'members beyond it are dropped (`kraken_tracing_baggage_dropped_total{reason="too_large"}`).',
  ),
}, {
  rename: {
    trusted_networks: "trustedNetworks",
    client_sampled_rate_limit: "clientSampledRateLimit",
    baggage_allowed_keys: "baggageAllowedKeys",
    baggage_max_bytes: "baggageMaxBytes",
  },
});

/** The `sampling.trust` block: how far an edge listener believes a client's trace context. */
export type TrustConfig = Infer<typeof trustSchema>;

const adaptiveSchema = object({
  enabled: bool().default(false).describe("Steer each operation's probability toward a target."),
  target_traces_per_second: number({ above: 0 }).default(1)
    .describe("Sampled traces per second wanted per operation."),
  floor_per_interval: int({ min: 0 }).default(1)
    .describe("Traces per operation per interval always kept."),
  interval: duration({ positive: true }).default("60s").describe("Adjustment period."),
  max_increase_factor: number({ min: 1 }).default(2)
    .describe("Largest factor a probability may grow by in one interval."),
  load_source: loadSource().describe("Load signal that shrinks the target."),
  load_threshold: rate().default(0.7).describe("Load (0–1) above which the target shrinks."),
  max_operations: int({ min: 1 }).default(2000)
    .describe("Operations tracked at most; the rest share one bucket."),
}, {
  rename: {
    target_traces_per_second: "targetTracesPerSecond",
    floor_per_interval: "floorPerInterval",
    interval: "intervalMs",
    max_increase_factor: "maxIncreaseFactor",
    load_source: "loadSource",
    load_threshold: "loadThreshold",
    max_operations: "maxOperations",
  },
});

const remoteSchema = object({
  enabled: bool().default(false).describe(
    "Poll Jaeger's sampling endpoint for this service's strategies (`OTEL_TRACES_SAMPLER=" +
      "jaeger_remote` or `parentbased_jaeger_remote` turns this on).",
  ),
  endpoint: string().check((v) => {
    try {
      const url = new URL(v);
      return url.protocol === "http:" || url.protocol === "https:"
        ? undefined
        : "must be an http(s) URL";
    } catch {
      return "must be a URL such as http://jaeger:5778/sampling";
    }
  }).default("http://127.0.0.1:5778/sampling").describe(
    "Jaeger's HTTP sampling endpoint; `?service=<service.name>` is added " +
      "(`OTEL_TRACES_SAMPLER_ARG` `endpoint=` wins).",
  ),
  refresh_interval: duration({ positive: true }).default("60s").describe(
    "How often strategies are fetched (`OTEL_TRACES_SAMPLER_ARG` `pollingIntervalMs=` wins).",
  ),
  max_operations: int({ min: 1 }).default(2000).describe(
    "Per-operation strategies kept at most; further operations use the default strategy.",
  ),
}, { rename: { refresh_interval: "refreshIntervalMs", max_operations: "maxOperations" } });

/** The `sampling.remote` block (Jaeger remote sampling). */
export type RemoteSamplingConfig = Infer<typeof remoteSchema>;

/** The `sampling.adaptive` block. */
export type AdaptiveConfig = Infer<typeof adaptiveSchema>;

function sameMatch(a: RuleMatch, b: RuleMatch): boolean {
  return (a.kind === "path_prefix" || a.kind === "path") &&
    (b.kind === "path_prefix" || b.kind === "path") && a.pattern === b.pattern;
}

/**
 * The `sampling` block. Built-in rules for `/health`, `/readiness` and `/metrics` (rate 0) come
 * first, except one the user's rules name with the same `path_prefix` or `path`.
 */
export const samplingSchema = object({
  default_rate: rate().default(0.1).describe("Probability for root spans no rule matches."),
  rules: list(ruleSchema, { of: "rules" })
    .default([], "`/health`, `/readiness`, `/metrics` → 0")
    .describe(
      "`[{match: {path_prefix | path | operation}, rate}]`, first match wins. Globs: `*` is any " +
        "run of characters but `/`, `**` any run.",
    ),
  parent_based: bool().default(true).describe("Honour a trusted parent's sampled flag."),
  max_traces_per_second: number({ min: 0 }).default(0)
    .describe("Cap on new sampled traces per second per process; 0 = unlimited."),
  trust: trustSchema,
  adaptive: adaptiveSchema,
  remote: remoteSchema,
}, {
  rename: {
    default_rate: "defaultRate",
    parent_based: "parentBased",
    max_traces_per_second: "maxTracesPerSecond",
  },
}).map((c) => ({
  ...c,
  rules: [
    ...BUILTIN_RULES.filter((b) => !c.rules.some((u) => sameMatch(b.match, u.match))),
    ...c.rules,
  ],
}));

/** The validated `sampling` block. */
export type SamplingConfig = Infer<typeof samplingSchema>;

/** The `safeguards` block; field names match {@linkcode CircuitBreakerOptions}. */
export const safeguardsSchema = object({
  circuit_breaker_enabled: bool().default(true)
    .describe("Shed tracing under load or exporter failure."),
  load_threshold: rate().default(0.9)
    .check((v) => v === 0 ? "must be above 0 (0 would never let tracing run)" : undefined)
    .describe("Load (0–1) above which the breaker opens."),
  cooldown_duration: duration({ positive: true }).default("30s")
    .describe("Time the breaker stays open before probing."),
  export_failure_threshold: int({ min: 1 }).default(5)
    .describe("Failed exports in a row that open the breaker."),
  export_timeout_threshold: int({ min: 1 }).default(3).describe(
    "Timed-out exports within such a run that open the breaker: a collector that accepts and " +
      "never answers opens it within about three export timeouts.",
  ),
  queue_full_threshold: int({ min: 1 }).default(3)
    .describe("Load polls in a row that saw the export queue full and open the breaker."),
  load_source: loadSource().describe("Load signal of the breaker."),
  load_poll_interval: duration({ positive: true }).default("1s")
    .describe(
      "How often the breaker reads load; while closed, it stops after a poll without a span start until the next one.",
    ),
  max_event_loop_delay: duration({ positive: true }).default("100ms")
    .describe("Mean event-loop delay that counts as load 1 (also for adaptive sampling)."),
  max_in_flight: int({ min: 1 }).default(256)
    .describe("Requests in flight that count as load 1 (also for adaptive sampling)."),
}, {
  rename: {
    circuit_breaker_enabled: "circuitBreakerEnabled",
    load_threshold: "loadThreshold",
    cooldown_duration: "cooldownMs",
    export_failure_threshold: "exportFailureThreshold",
    export_timeout_threshold: "exportTimeoutThreshold",
    queue_full_threshold: "queueFullThreshold",
    load_source: "loadSource",
    load_poll_interval: "loadPollIntervalMs",
    max_event_loop_delay: "maxEventLoopDelayMs",
    max_in_flight: "maxInFlight",
  },
});

/** The validated `safeguards` block. */
export type SafeguardsConfig = Infer<typeof safeguardsSchema>;

/**
 * Parses the `sampling` block (absent means all defaults). `key` is the block's own path, used in
 * error messages.
 * @throws {ConfigError} naming the first offending key
 */
export function parseSamplingConfig(raw: unknown, key = "tracing.sampling"): SamplingConfig {
  return samplingSchema.parse(raw, key);
}

/**
 * Parses the `safeguards` block (absent means all defaults).
 * @throws {ConfigError} naming the first offending key
 */
export function parseSafeguardsConfig(raw: unknown, key = "tracing.safeguards"): SafeguardsConfig {
  return safeguardsSchema.parse(raw, key);
}
