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
  list,
  object,
  oneOf,
  path,
  record,
  string,
} from "../common/schema.ts";
import {
  type OtelEnv,
  OTLP_COMPRESSIONS,
  OTLP_PROTOCOLS,
  type OtlpProtocol,
  PROPAGATORS,
  readOtelEnv,
} from "./otel_env.ts";
import { safeguardsSchema, samplingSchema } from "./sampling/config.ts";

export { ConfigError };

const protocolSchema = oneOf(OTLP_PROTOCOLS);

const tlsSchema = object({
  ca_file: path().optional().describe(
    "CA bundle (PEM) that verifies the collector (else `OTEL_EXPORTER_OTLP_CERTIFICATE`, which wins); " +
      "without it the system roots are used for `https://`.",
  ),
  cert_file: path().optional().describe(
    "Client certificate (PEM) for mTLS (`OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` wins).",
  ),
  key_file: path().optional().describe(
    "Client private key (PEM) for mTLS (`OTEL_EXPORTER_OTLP_CLIENT_KEY` wins).",
  ),
}, { rename: { ca_file: "caFile", cert_file: "certFile", key_file: "keyFile" } });

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
  protocol: protocolSchema.optional("`http/protobuf`; `grpc` with `collector_addr`").describe(
    "OTLP transport and encoding: `grpc`, `http/protobuf` or `http/json` " +
      "(`OTEL_EXPORTER_OTLP_PROTOCOL` wins).",
  ),
  headers: record(string()).default({}).describe(
    "Request headers (gRPC metadata) sent with every export, e.g. an auth token; " +
      "`OTEL_EXPORTER_OTLP_HEADERS` adds to and overrides them.",
  ),
  compression: oneOf(OTLP_COMPRESSIONS).default("none")
    .describe("`gzip` or `none` (`OTEL_EXPORTER_OTLP_COMPRESSION` wins)."),
  insecure: bool().default(true).describe(
    "gRPC only: an endpoint without a scheme is plaintext (`OTEL_EXPORTER_OTLP_INSECURE` wins); " +
      "`false` makes it TLS.",
  ),
  tls: tlsSchema,
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

const resourceSchema = object({
  deployment_environment: string().optional()
    .describe("`deployment.environment.name` of the resource (e.g. `production`)."),
  attributes: record(custom("scalar", (v) => String(v))).default({}).describe(
    "Extra resource attributes; `OTEL_RESOURCE_ATTRIBUTES` adds to and overrides them.",
  ),
}, { rename: { deployment_environment: "deploymentEnvironment" } });

const limitsSchema = object({
  attribute_count: int({ min: 0 }).default(64).describe(
    "Attributes per span (`OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`, else `OTEL_ATTRIBUTE_COUNT_LIMIT`).",
  ),
  attribute_value_length: int({ min: 0 }).default(1024).describe(
    "Longest string attribute value kept (`OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`, else " +
      "`OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`).",
  ),
  event_count: int({ min: 0 }).default(32).describe(
    "Events per span (`OTEL_SPAN_EVENT_COUNT_LIMIT`).",
  ),
  link_count: int({ min: 0 }).default(16).describe(
    "Links per span (`OTEL_SPAN_LINK_COUNT_LIMIT`).",
  ),
  event_attribute_count: int({ min: 0 }).default(32)
    .describe("Attributes per event (`OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT`)."),
  link_attribute_count: int({ min: 0 }).default(32)
    .describe("Attributes per link (`OTEL_LINK_ATTRIBUTE_COUNT_LIMIT`)."),
}, {
  rename: {
    attribute_count: "attributeCount",
    attribute_value_length: "attributeValueLength",
    event_count: "eventCount",
    link_count: "linkCount",
    event_attribute_count: "eventAttributeCount",
    link_attribute_count: "linkAttributeCount",
  },
});

/** The `tracing:` block as written in the file, before the `OTEL_*` environment overrides. */
export const tracingSchema = object({
  enabled: bool().default(false).describe("Record and export spans."),
  service_name: string().optional("`kraken-<role>`").describe("`service.name` of every span."),
  endpoint: string().optional("`http://127.0.0.1:4318` (`:4317` for `grpc`)").describe(
    "OTLP base URL; for OTLP/HTTP `/v1/traces` is appended, for gRPC `host:port` is used.",
  ),
  collector_addr: string().optional().describe(
    "The ERD's spelling: `host:port` of an OTLP/gRPC receiver such as `jaeger:4317` (protocol " +
      "`grpc` unless `export.protocol` says otherwise; set one of `endpoint` and this).",
  ),
  resource: resourceSchema,
  propagators: list(oneOf(PROPAGATORS), { of: "propagator names" }).optional(
    "W3C `traceparent` + `baggage`, `uber-trace-id` read",
  ).describe(
    "Header formats injected and extracted, in order: `tracecontext`, `baggage`, `jaeger`, `b3`, " +
      "`b3multi`, `none` (`OTEL_PROPAGATORS` wins).",
  ),
  limits: limitsSchema,
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

/** Default OTLP/gRPC endpoint (a local Jaeger or collector). */
export const DEFAULT_GRPC_ENDPOINT = "http://127.0.0.1:4317";

/**
 * Normalises an OTLP/gRPC endpoint to `http(s)://host:port`: `host:port` alone is plaintext unless
 * `insecure` is false (the specification's `OTEL_EXPORTER_OTLP_INSECURE`), a path is ignored.
 */
export function grpcUrlFrom(endpoint: string, key: string, insecure = true): string {
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint);
  const url = new URL(tracesUrlFrom(endpoint, key, false));
  if (!hasScheme && !insecure) url.protocol = "https:";
  if (url.port === "") url.port = url.protocol === "https:" ? "443" : "80";
  return `${url.protocol}//${url.host}`;
}

/**
 * Parses and validates the raw `tracing:` block of a role's YAML, then lays the OpenTelemetry
 * SDK variables over it (see {@linkcode readOtelEnv}; the table in docs/tracing.md). Throws
 * {@linkcode ConfigError} naming the offending key or variable.
 */
export function parseTracingConfig(
  raw: unknown,
  role: string,
  env: Record<string, string | undefined> = Deno.env.toObject(),
) {
  const file = tracingSchema.parse(raw, "tracing");
  const otel = readOtelEnv(env);
  if (file.endpoint !== undefined && file.collectorAddr !== undefined) {
    throw new ConfigError(
      "tracing.collector_addr",
      "set either endpoint or collector_addr, not both",
    );
  }
  let enabled = file.enabled;
  const serviceName = otel.serviceName ?? file.serviceName ?? `kraken-${role}`;
  // The ERD's collector_addr is an OTLP/gRPC address (its Go example uses otlptracegrpc).
  const protocol: OtlpProtocol = otel.protocol ?? file.export.protocol ??
    (file.collectorAddr !== undefined ? "grpc" : "http/protobuf");
  const grpc = protocol === "grpc";
  const insecure = otel.insecure ?? file.export.insecure;
  let tracesUrl: string;
  if (otel.tracesEndpoint !== undefined || otel.baseEndpoint !== undefined) {
    enabled = true;
    const [name, value] = otel.tracesEndpoint !== undefined
      ? ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", otel.tracesEndpoint]
      : ["OTEL_EXPORTER_OTLP_ENDPOINT", otel.baseEndpoint!];
    tracesUrl = grpc
      ? grpcUrlFrom(value, name, insecure)
      : tracesUrlFrom(value, name, otel.tracesEndpoint === undefined);
  } else {
    const [key, value] = file.collectorAddr !== undefined
      ? ["tracing.collector_addr", file.collectorAddr]
      : ["tracing.endpoint", file.endpoint ?? (grpc ? DEFAULT_GRPC_ENDPOINT : DEFAULT_ENDPOINT)];
    tracesUrl = grpc ? grpcUrlFrom(value, key, insecure) : tracesUrlFrom(value, key);
  }
  const statsd = { ...file.statsd, prefix: file.statsd.prefix ?? serviceName.replace(/-/g, "_") };
  const sampling = file.sampling;
  if (otel.sampler) applySamplerEnv(sampling, otel);
  if (otel.sdkDisabled === true) enabled = false;
  const tls = {
    caFile: otel.tls.certificate ?? file.export.tls.caFile,
    certFile: otel.tls.clientCertificate ?? file.export.tls.certFile,
    keyFile: otel.tls.clientKey ?? file.export.tls.keyFile,
  };
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    throw new ConfigError(
      tls.certFile === undefined
        ? "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE (or tracing.export.tls.cert_file)"
        : "OTEL_EXPORTER_OTLP_CLIENT_KEY (or tracing.export.tls.key_file)",
      "a client certificate and its key go together",
    );
  }
  const exportBlock = {
    ...file.export,
    protocol,
    batchTimeoutMs: otel.bspScheduleDelayMs ?? file.export.batchTimeoutMs,
    maxQueueSize: otel.bspMaxQueueSize ?? file.export.maxQueueSize,
    maxBatchSize: otel.bspMaxExportBatchSize ?? file.export.maxBatchSize,
    timeoutMs: otel.timeoutMs ?? otel.bspExportTimeoutMs ?? file.export.timeoutMs,
    headers: { ...file.export.headers, ...otel.headers },
    compression: otel.compression ?? file.export.compression,
    tls,
  };
  if (exportBlock.maxBatchSize > exportBlock.maxQueueSize) {
    throw new ConfigError(
      otel.bspMaxExportBatchSize !== undefined
        ? "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"
        : "OTEL_BSP_MAX_QUEUE_SIZE",
      `the batch size (${exportBlock.maxBatchSize}) must not exceed the queue size (${exportBlock.maxQueueSize})`,
    );
  }
  const resourceAttributes: Record<string, string> = { ...file.resource.attributes };
  if (file.resource.deploymentEnvironment !== undefined) {
    resourceAttributes["deployment.environment.name"] = file.resource.deploymentEnvironment;
  }
  Object.assign(resourceAttributes, otel.resourceAttributes);
  const limits = file.limits;
  const spanLimits = {
    attributeCount: otel.spanLimits.attributeCount ?? limits.attributeCount,
    attributeValueLength: otel.spanLimits.attributeValueLength ?? limits.attributeValueLength,
    eventCount: otel.spanLimits.eventCount ?? limits.eventCount,
    linkCount: otel.spanLimits.linkCount ?? limits.linkCount,
    eventAttributeCount: otel.spanLimits.eventAttributeCount ?? limits.eventAttributeCount,
    linkAttributeCount: otel.spanLimits.linkAttributeCount ?? limits.linkAttributeCount,
  };
  return {
    /** Tracing on or off. Off unless configured. */
    enabled,
    /** `service.name` of the resource. */
    serviceName,
    /** Extra resource attributes: the file's, `deployment.environment.name`, `OTEL_RESOURCE_ATTRIBUTES`. */
    resourceAttributes,
    /** Propagators named by `OTEL_PROPAGATORS` or `tracing.propagators`; absent: kraken's default. */
    propagators: otel.propagators ?? file.propagators,
    /** Level of the tracing module's own log lines (`OTEL_LOG_LEVEL`); absent: the role's. */
    logLevel: otel.logLevel,
    /** OTLP/HTTP: the full traces URL; OTLP/gRPC: `http(s)://host:port`. */
    tracesUrl,
    /** Sampling rules and trust boundary. */
    sampling,
    /** Export batching, retries, encoding, headers, compression and TLS. */
    export: exportBlock,
    /** Bounds on what one span holds. */
    spanLimits,
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

function applySamplerEnv(sampling: TracingFile["sampling"], otel: OtelEnv): void {
  const name = otel.sampler!;
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
      sampling.defaultRate = otel.samplerRatio ?? 1;
      break;
    case "jaeger_remote":
    case "parentbased_jaeger_remote": {
      const arg = otel.samplerJaegerRemote ?? {};
      sampling.remote = {
        ...sampling.remote,
        enabled: true,
        endpoint: arg.endpoint ?? sampling.remote.endpoint,
        refreshIntervalMs: arg.pollingIntervalMs ?? sampling.remote.refreshIntervalMs,
      };
      if (arg.initialSamplingRate !== undefined) sampling.defaultRate = arg.initialSamplingRate;
      break;
    }
  }
  // A trusted parent's flag stays honoured unless the file says `parent_based: false`: the edge
  // trust boundary already keeps untrusted clients from forcing samples.
  sampling.parentBased = name.startsWith("parentbased_") || sampling.parentBased;
}
