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
 * `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf` or `http/json`) unless `export.protocol` is set,
 * and `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` or else `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds, as the
 * OpenTelemetry specification says) for `export.timeout`.
 *
 * @module
 */

import { ConfigError, isMap } from "../common/config.ts";
import {
  bool,
  custom,
  duration,
  hostPort,
  type Infer,
  int,
  object,
  oneOf,
  record,
  string,
} from "../common/schema.ts";
import type { OtlpProtocol } from "./export.ts";
import { safeguardsSchema, samplingSchema } from "./sampling/config.ts";

export { ConfigError };

const protocolSchema = oneOf(["http/protobuf", "http/json"]);

const exportSchema = object({
  batch_timeout: duration().default("5s").describe("Longest wait before a batch is sent."),
  max_batch_size: int({ min: 1 }).default(512).describe("Spans per export request."),
  max_queue_size: int({ min: 1 }).default(2048)
    .describe("Spans held at most; more are dropped and counted."),
  retry_enabled: bool().default(true).describe("Retry network errors and 429/502/503/504."),
  retry_max_attempts: int({ min: 1 }).default(3).describe("Attempts per batch."),
  timeout: duration({ positive: true }).default("10s").describe(
    "Time one export may take, its retries included (OTLP's exporter timeout; else " +
      "`OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` or `OTEL_EXPORTER_OTLP_TIMEOUT` in ms, which win). " +
      "A timed-out export counts as a failure.",
  ),
  blocking: bool().default(false).describe(
    'The ERD\'s "block when the queue is full": a full queue starts an export at once; a request ' +
      "never waits (see [tracing.md](tracing.md)).",
  ),
  protocol: protocolSchema.optional("`http/protobuf`")
    .describe(
      "OTLP encoding, `http/protobuf` or `http/json` (else `OTEL_EXPORTER_OTLP_PROTOCOL`).",
    ),
}, {
  rename: {
    batch_timeout: "batchTimeoutMs",
    max_batch_size: "maxBatchSize",
    max_queue_size: "maxQueueSize",
    retry_enabled: "retryEnabled",
    retry_max_attempts: "retryMaxAttempts",
    timeout: "timeoutMs",
  },
}).map((c, key) => {
  if (c.maxBatchSize > c.maxQueueSize) {
    throw new ConfigError(`${key}.max_batch_size`, "must not exceed max_queue_size");
  }
  return c;
});

const statsdSchema = object({
  enabled: bool().default(false).describe(
    "Send the metrics (tracing self-metrics and role metrics) as statsd, tracing on or off.",
  ),
  addr: hostPort().default("127.0.0.1:8125").describe("`host:port` of the statsd/M3 aggregator."),
  prefix: string().optional("service name with `_`").describe("Metric name prefix."),
  tags: record(custom("scalar", (v) => String(v))).default({}).describe(
    "Constant tags added to every metric (sent with `tag_format: dogstatsd`).",
  ),
  tag_format: oneOf(["none", "dogstatsd"]).default("none").describe(
    "`none`: plain statsd as upstream's tally reporter sends, tags folded into names; " +
      "`dogstatsd`: `|#k:v` tags.",
  ),
  flush_interval: duration().default("1s").describe("How often packets are sent."),
}, { rename: { tag_format: "tagFormat", flush_interval: "flushIntervalMs" } });

/** ERD §6.5's flat spellings under `tracing:`, rewritten into the nested keys they stand for. */
function nestErdSpelling(raw: unknown): unknown {
  if (!isMap(raw)) return raw;
  const {
    sampling_rate,
    sampling_rules,
    batch_timeout,
    max_export_batch,
    max_queue_size,
    ...rest
  } = raw;
  const out: Record<string, unknown> = rest;
  if (
    rest.sampling === undefined && (sampling_rate !== undefined || sampling_rules !== undefined)
  ) {
    const rules = Array.isArray(sampling_rules)
      ? sampling_rules.map((r) => ({ match: { path_prefix: r?.path }, rate: r?.rate }))
      : sampling_rules;
    out.sampling = { default_rate: sampling_rate, rules };
  }
  const flatExport = { batch_timeout, max_batch_size: max_export_batch, max_queue_size };
  if (Object.values(flatExport).some((v) => v !== undefined)) {
    if (rest.export === undefined || rest.export === null) out.export = flatExport;
    else if (isMap(rest.export)) {
      const merged: Record<string, unknown> = { ...rest.export };
      for (const [k, v] of Object.entries(flatExport)) if (merged[k] === undefined) merged[k] = v;
      out.export = merged;
    }
  }
  return out;
}

/** The `tracing:` block as written in the file, before the `OTEL_*` environment overrides. */
export const tracingSchema = object({
  enabled: bool().default(false).describe("Record and export spans."),
  service_name: string().optional("`kraken-<role>`").describe("`service.name` of every span."),
  endpoint: string().optional("`http://127.0.0.1:4318`")
    .describe("OTLP/HTTP base URL; `/v1/traces` is appended."),
  collector_addr: string().optional().describe(
    "The ERD's spelling: `host:port` of an OTLP/HTTP receiver (set one of `endpoint` and this).",
  ),
  sampling: samplingSchema,
  export: exportSchema,
  safeguards: safeguardsSchema,
  statsd: statsdSchema,
}, { rename: { service_name: "serviceName", collector_addr: "collectorAddr" } })
  .before(nestErdSpelling);

type TracingFile = Infer<typeof tracingSchema>;

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
) {
  const file = tracingSchema.parse(raw, "tracing");
  if (file.endpoint !== undefined && file.collectorAddr !== undefined) {
    throw new ConfigError(
      "tracing.collector_addr",
      "set either endpoint or collector_addr, not both",
    );
  }
  let { enabled, serviceName = `kraken-${role}` } = file;
  let tracesUrl = file.collectorAddr !== undefined
    ? tracesUrlFrom(file.collectorAddr, "tracing.collector_addr")
    : tracesUrlFrom(file.endpoint ?? DEFAULT_ENDPOINT, "tracing.endpoint");
  const protocol: OtlpProtocol = file.export.protocol ??
    protocolSchema.default("http/protobuf").parse(
      env.OTEL_EXPORTER_OTLP_PROTOCOL || undefined,
      "OTEL_EXPORTER_OTLP_PROTOCOL",
    );
  const statsd = { ...file.statsd, prefix: file.statsd.prefix ?? serviceName.replace(/-/g, "_") };
  const sampling = file.sampling;

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
  let timeoutMs = file.export.timeoutMs;
  for (const name of ["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"]) {
    const value = env[name]?.trim();
    if (value === undefined || value === "") continue;
    if (!/^\d+$/.test(value) || Number(value) < 1) {
      throw new ConfigError(name, `must be a positive whole number of milliseconds, got ${value}`);
    }
    timeoutMs = Number(value);
    break;
  }
  if (env.OTEL_TRACES_SAMPLER) applySamplerEnv(sampling, env);
  const disabled = env.OTEL_SDK_DISABLED?.trim().toLowerCase();
  if (disabled === "true") enabled = false;
  return {
    /** Tracing on or off. Off unless configured. */
    enabled,
    /** `service.name` of the resource. */
    serviceName,
    /** Full OTLP/HTTP traces URL. */
    tracesUrl,
    /** Sampling rules and trust boundary. */
    sampling,
    /** Export batching and retries. */
    export: { ...file.export, protocol, timeoutMs },
    /** Circuit breaker and load thresholds. */
    safeguards: file.safeguards,
    /** statsd emission of the self-metrics. */
    statsd,
  };
}

/** The whole validated `tracing:` block, environment overrides applied. */
export type TracingConfig = ReturnType<typeof parseTracingConfig>;

/** The export sub-block. */
export type ExportConfig = TracingConfig["export"];

/** The statsd self-metrics sub-block. */
export type StatsdConfig = TracingConfig["statsd"];

function applySamplerEnv(
  sampling: TracingFile["sampling"],
  env: Record<string, string | undefined>,
): void {
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
