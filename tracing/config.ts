/**
 * The `tracing:` configuration block (ERD §6.5 and Appendix B), its defaults and validation, and the
 * standard `OTEL_*` environment overrides.
 *
 * ```yaml
 * tracing:
 *   enabled: true
 *   service_name: kraken-agent          # default kraken-<role>
 *   endpoint: http://127.0.0.1:4318     # OTLP/HTTP; /v1/traces is appended
 *   # collector_addr: jaeger:4318       # ERD spelling, host:port, same meaning
 *   sampling: { default_rate: 0.1, rules: [...] }
 *   export: { batch_timeout: 5s, max_batch_size: 512, max_queue_size: 2048,
 *             retry_enabled: true, retry_max_attempts: 3, timeout: 10s, blocking: false }
 *   safeguards: { circuit_breaker_enabled: true, load_threshold: 0.9, cooldown_duration: 30s }
 * ```
 *
 * Environment variables win over the file: `OTEL_SDK_DISABLED=true` turns tracing off,
 * `OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_ENDPOINT` (base URL) or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (full URL; either one also turns tracing on),
 * `OTEL_TRACES_SAMPLER` (`always_on`, `always_off`, `traceidratio`, `parentbased_always_on`,
 * `parentbased_always_off`, `parentbased_traceidratio`) with `OTEL_TRACES_SAMPLER_ARG`,
 * and `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf` or `http/json`) unless `export.protocol` is set.
 *
 * @module
 */

import { ConfigError, parseDuration } from "../common/config.ts";
import type { OtlpProtocol } from "./export.ts";
import {
  parseSafeguardsConfig,
  parseSamplingConfig,
  type SafeguardsConfig,
  type SamplingConfig,
} from "./sampling/config.ts";

export { ConfigError, parseDuration };

/** The export sub-block. */
export interface ExportConfig {
  /** Longest wait before a batch is sent, ms. */
  batchTimeoutMs: number;
  /** Spans per export request. */
  maxBatchSize: number;
  /** Spans held at most before dropping. */
  maxQueueSize: number;
  /** Whether failed exports are retried. */
  retryEnabled: boolean;
  /** Attempts per batch when retrying. */
  retryMaxAttempts: number;
  /** Per-request timeout, ms. */
  timeoutMs: number;
  /** OTLP encoding, `http/protobuf` (default) or `http/json`. */
  protocol: OtlpProtocol;
  /**
   * The ERD's "block when the queue is full". A request path never waits on the exporter here: with
   * `true`, a full queue starts an export at once; the span that did not fit is still dropped and
   * counted (see docs/tracing.md).
   */
  blocking: boolean;
}

/** The statsd self-metrics sub-block. */
export interface StatsdConfig {
  /** Send statsd packets. */
  enabled: boolean;
  /** `host:port` of the statsd/M3 aggregator. */
  addr: string;
  /** Metric name prefix. */
  prefix: string;
  /** Constant tags added to every metric (sent only with `tag_format: dogstatsd`). */
  tags: Record<string, string>;
  /**
   * `none` (plain statsd, as upstream Kraken's tally statsd reporter sends; tags folded into names)
   * or `dogstatsd` (`|#k:v` tags).
   */
  tagFormat: "none" | "dogstatsd";
  /** Flush interval, ms. */
  flushIntervalMs: number;
}

/** The whole validated `tracing:` block. */
export interface TracingConfig {
  /** Tracing on or off. Off unless configured. */
  enabled: boolean;
  /** `service.name` of the resource. */
  serviceName: string;
  /** Full OTLP/HTTP traces URL. */
  tracesUrl: string;
  /** Sampling rules and trust boundary. */
  sampling: SamplingConfig;
  /** Export batching and retries. */
  export: ExportConfig;
  /** Circuit breaker and load thresholds. */
  safeguards: SafeguardsConfig;
  /** statsd emission of the self-metrics. */
  statsd: StatsdConfig;
}

type Raw = Record<string, unknown>;

function isObject(v: unknown): v is Raw {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function checkKeys(obj: Raw, allowed: string[], path: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      throw new ConfigError(`${path}.${key}`, `unknown key (allowed: ${allowed.join(", ")})`);
    }
  }
}

function bool(obj: Raw, key: string, path: string, dflt: boolean): boolean {
  const v = obj[key];
  if (v === undefined) return dflt;
  if (typeof v !== "boolean") throw new ConfigError(`${path}.${key}`, "must be true or false");
  return v;
}

function int(obj: Raw, key: string, path: string, dflt: number, min = 1): number {
  const v = obj[key];
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
    throw new ConfigError(`${path}.${key}`, `must be an integer >= ${min}`);
  }
  return v;
}

function str(obj: Raw, key: string, path: string, dflt: string): string {
  const v = obj[key];
  if (v === undefined) return dflt;
  if (typeof v !== "string" || v === "") {
    throw new ConfigError(`${path}.${key}`, "must be a non-empty string");
  }
  return v;
}

function duration(obj: Raw, key: string, path: string, dflt: number): number {
  const v = obj[key];
  if (v === undefined) return dflt;
  try {
    return parseDuration(v as string | number);
  } catch (error) {
    throw new ConfigError(`${path}.${key}`, (error as Error).message);
  }
}

/** Normalises an OTLP endpoint: a base URL gets `/v1/traces`; `host:port` gets `http://`. */
export function tracesUrlFrom(endpoint: string, key: string, appendPath = true): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `http://${endpoint}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new ConfigError(key, `not a valid URL: ${endpoint}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(key, `must be an http(s) URL, got ${url.protocol}`);
  }
  if (appendPath && (url.pathname === "/" || url.pathname === "")) url.pathname = "/v1/traces";
  else if (appendPath && !url.pathname.endsWith("/v1/traces")) {
    url.pathname = url.pathname.replace(/\/$/, "") + "/v1/traces";
  }
  return url.toString();
}

/** Default OTLP/HTTP endpoint (a local Jaeger or collector). */
export const DEFAULT_ENDPOINT = "http://127.0.0.1:4318";

/**
 * Parses and validates the raw `tracing:` block of a role's YAML, then applies the `OTEL_*`
 * environment overrides. Throws {@linkcode ConfigError} naming the offending key.
 */
export function parseTracingConfig(
  raw: unknown,
  role: string,
  env: Record<string, string | undefined> = Deno.env.toObject(),
): TracingConfig {
  const path = "tracing";
  const obj: Raw = raw === undefined || raw === null ? {} : raw as Raw;
  if (!isObject(obj)) throw new ConfigError(path, "must be a mapping");
  checkKeys(obj, [
    "enabled",
    "service_name",
    "endpoint",
    "collector_addr",
    "sampling",
    "export",
    "safeguards",
    "statsd",
    // ERD §6.5's flat spellings, accepted for compatibility.
    "sampling_rate",
    "sampling_rules",
    "batch_timeout",
    "max_export_batch",
    "max_queue_size",
  ], path);
  if (obj.endpoint !== undefined && obj.collector_addr !== undefined) {
    throw new ConfigError(
      `${path}.collector_addr`,
      "set either endpoint or collector_addr, not both",
    );
  }
  let enabled = bool(obj, "enabled", path, false);
  let serviceName = str(obj, "service_name", path, `kraken-${role}`);
  const endpointKey = obj.collector_addr !== undefined ? "collector_addr" : "endpoint";
  let tracesUrl = tracesUrlFrom(
    str(obj, endpointKey, path, DEFAULT_ENDPOINT),
    `${path}.${endpointKey}`,
  );

  const samplingRaw = obj.sampling ?? flatSampling(obj);
  const sampling = parseSamplingConfig(samplingRaw, `${path}.sampling`);
  const exp: Raw = obj.export === undefined ? {} : obj.export as Raw;
  if (!isObject(exp)) throw new ConfigError(`${path}.export`, "must be a mapping");
  const ep = `${path}.export`;
  checkKeys(exp, [
    "batch_timeout",
    "max_batch_size",
    "max_queue_size",
    "retry_enabled",
    "retry_max_attempts",
    "timeout",
    "blocking",
    "protocol",
  ], ep);
  const exportConfig: ExportConfig = {
    batchTimeoutMs: duration(exp, "batch_timeout", ep, duration(obj, "batch_timeout", path, 5000)),
    maxBatchSize: int(exp, "max_batch_size", ep, int(obj, "max_export_batch", path, 512)),
    maxQueueSize: int(exp, "max_queue_size", ep, int(obj, "max_queue_size", path, 2048)),
    retryEnabled: bool(exp, "retry_enabled", ep, true),
    retryMaxAttempts: int(exp, "retry_max_attempts", ep, 3),
    timeoutMs: duration(exp, "timeout", ep, 10_000),
    blocking: bool(exp, "blocking", ep, false),
    protocol: protocol(exp.protocol ?? env.OTEL_EXPORTER_OTLP_PROTOCOL, `${ep}.protocol`),
  };
  if (exportConfig.maxBatchSize > exportConfig.maxQueueSize) {
    throw new ConfigError(`${ep}.max_batch_size`, "must not exceed max_queue_size");
  }
  const safeguards = parseSafeguardsConfig(obj.safeguards, `${path}.safeguards`);
  const statsd = parseStatsd(obj.statsd, `${path}.statsd`, serviceName);

  // Environment overrides (OpenTelemetry SDK conventions).
  if (env.OTEL_SERVICE_NAME) serviceName = env.OTEL_SERVICE_NAME;
  const tracesEndpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  const baseEndpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (tracesEndpoint) {
    tracesUrl = tracesUrlFrom(tracesEndpoint, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", false);
    enabled = true;
  } else if (baseEndpoint) {
    tracesUrl = tracesUrlFrom(baseEndpoint, "OTEL_EXPORTER_OTLP_ENDPOINT");
    enabled = true;
  }
  if (env.OTEL_TRACES_SAMPLER) applySamplerEnv(sampling, env);
  const disabled = env.OTEL_SDK_DISABLED?.trim().toLowerCase();
  if (disabled === "true") enabled = false;
  return { enabled, serviceName, tracesUrl, sampling, export: exportConfig, safeguards, statsd };
}

function protocol(value: unknown, key: string): OtlpProtocol {
  if (value === undefined || value === "") return "http/protobuf";
  if (value === "http/protobuf" || value === "http/json") return value;
  throw new ConfigError(key, `must be http/protobuf or http/json, got ${JSON.stringify(value)}`);
}

function flatSampling(obj: Raw): unknown {
  if (obj.sampling_rate === undefined && obj.sampling_rules === undefined) return undefined;
  const rules = Array.isArray(obj.sampling_rules)
    ? obj.sampling_rules.map((r: Raw) => ({ match: { path_prefix: r?.path }, rate: r?.rate }))
    : obj.sampling_rules;
  return { default_rate: obj.sampling_rate, rules };
}

function applySamplerEnv(sampling: SamplingConfig, env: Record<string, string | undefined>): void {
  const name = env.OTEL_TRACES_SAMPLER!.trim().toLowerCase();
  const argRaw = env.OTEL_TRACES_SAMPLER_ARG;
  let ratio = 1;
  if (argRaw !== undefined && argRaw !== "") {
    ratio = Number(argRaw);
    if (!Number.isFinite(ratio) || ratio < 0 || ratio > 1) {
      throw new ConfigError("OTEL_TRACES_SAMPLER_ARG", "must be a number between 0 and 1");
    }
  }
  switch (name) {
    case "always_on":
    case "parentbased_always_on":
      sampling.defaultRate = 1;
      break;
    case "always_off":
    case "parentbased_always_off":
      sampling.defaultRate = 0;
      break;
    case "traceidratio":
    case "parentbased_traceidratio":
      sampling.defaultRate = ratio;
      break;
    default:
      throw new ConfigError(
        "OTEL_TRACES_SAMPLER",
        `unsupported sampler ${name} (use always_on, always_off, traceidratio or their parentbased_ forms)`,
      );
  }
  sampling.parentBased = name.startsWith("parentbased_") || sampling.parentBased;
}

function parseStatsd(raw: unknown, path: string, serviceName: string): StatsdConfig {
  const obj: Raw = raw === undefined || raw === null ? {} : raw as Raw;
  if (!isObject(obj)) throw new ConfigError(path, "must be a mapping");
  checkKeys(obj, ["enabled", "addr", "prefix", "tags", "tag_format", "flush_interval"], path);
  const tagFormat = obj.tag_format ?? "none";
  if (tagFormat !== "none" && tagFormat !== "dogstatsd") {
    throw new ConfigError(`${path}.tag_format`, "must be none or dogstatsd");
  }
  const tags: Record<string, string> = {};
  if (obj.tags !== undefined) {
    if (!isObject(obj.tags)) throw new ConfigError(`${path}.tags`, "must be a mapping");
    for (const [k, v] of Object.entries(obj.tags)) tags[k] = String(v);
  }
  const addr = str(obj, "addr", path, "127.0.0.1:8125");
  if (!/^[^:\s]+:\d+$/.test(addr)) throw new ConfigError(`${path}.addr`, "must be host:port");
  return {
    enabled: bool(obj, "enabled", path, false),
    addr,
    prefix: str(obj, "prefix", path, serviceName.replace(/-/g, "_")),
    tags,
    tagFormat,
    flushIntervalMs: duration(obj, "flush_interval", path, 1000),
  };
}
