/**
 * The OpenTelemetry SDK environment variables that apply to traces, parsed and validated into
 * {@linkcode OtelEnv}. `tracing/config.ts` lays them over the `tracing:` block (a variable wins over
 * the file); this module only reads and checks them. Unset or empty variables are absent. A value
 * that is present but invalid throws a {@linkcode ConfigError} naming the variable, so start-up
 * fails (exit 2) instead of silently exporting somewhere else.
 *
 * A `OTEL_EXPORTER_OTLP_TRACES_*` variable wins over its `OTEL_EXPORTER_OTLP_*` form, as the
 * specification says; the two endpoint forms differ in meaning (the signal form is the full URL),
 * so both are kept and `config.ts` resolves them.
 *
 * @module
 */

import { ConfigError } from "../common/config.ts";

/** The environment as a plain record (tests pass their own). */
export type Env = Record<string, string | undefined>;

/** `OTEL_EXPORTER_OTLP_PROTOCOL` values. */
export const OTLP_PROTOCOLS = ["grpc", "http/protobuf", "http/json"] as const;
/** One of {@linkcode OTLP_PROTOCOLS}. */
export type OtlpProtocol = typeof OTLP_PROTOCOLS[number];

/** `OTEL_EXPORTER_OTLP_COMPRESSION` values. */
export const OTLP_COMPRESSIONS = ["none", "gzip"] as const;
/** One of {@linkcode OTLP_COMPRESSIONS}. */
export type OtlpCompression = typeof OTLP_COMPRESSIONS[number];

/** `OTEL_PROPAGATORS` values supported. */
export const PROPAGATORS = ["tracecontext", "baggage", "jaeger", "b3", "b3multi", "none"] as const;
/** One of {@linkcode PROPAGATORS}. */
export type PropagatorName = typeof PROPAGATORS[number];

/** `OTEL_TRACES_SAMPLER` values supported (every one the specification defines except `xray`). */
export const SAMPLERS = [
  "always_on",
  "always_off",
  "traceidratio",
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio",
  "jaeger_remote",
  "parentbased_jaeger_remote",
] as const;
/** One of {@linkcode SAMPLERS}. */
export type SamplerName = typeof SAMPLERS[number];

/** `OTEL_LOG_LEVEL` values and the kraken log level each maps to. */
export const OTEL_LOG_LEVELS = {
  none: "none",
  error: "error",
  warn: "warn",
  info: "info",
  debug: "debug",
  verbose: "debug",
  all: "debug",
} as const;
/** A kraken log level, or `none` for silence. */
export type TracingLogLevel = typeof OTEL_LOG_LEVELS[keyof typeof OTEL_LOG_LEVELS];

/** `OTEL_TRACES_SAMPLER_ARG` of the `jaeger_remote` samplers. */
export interface JaegerRemoteArg {
  /** Sampling endpoint URL (`endpoint=`). */
  endpoint?: string;
  /** Refresh interval in ms (`pollingIntervalMs=`). */
  pollingIntervalMs?: number;
  /** Rate until the first strategy arrives (`initialSamplingRate=`). */
  initialSamplingRate?: number;
}

/** TLS files for the exporter, as paths. */
export interface OtlpTlsEnv {
  /** CA bundle (PEM) that verifies the collector. */
  certificate?: string;
  /** Client private key (PEM) for mTLS. */
  clientKey?: string;
  /** Client certificate chain (PEM) for mTLS. */
  clientCertificate?: string;
}

/** The span limits variables. */
export interface SpanLimitsEnv {
  /** Attributes per span. */
  attributeCount?: number;
  /** Longest attribute value (strings and string array members). */
  attributeValueLength?: number;
  /** Events per span. */
  eventCount?: number;
  /** Links per span. */
  linkCount?: number;
  /** Attributes per event. */
  eventAttributeCount?: number;
  /** Attributes per link. */
  linkAttributeCount?: number;
}

/** Every trace-related `OTEL_*` variable, parsed. Absent fields were not set. */
export interface OtelEnv {
  /** `OTEL_SDK_DISABLED`. */
  sdkDisabled?: boolean;
  /** `OTEL_LOG_LEVEL`, mapped onto kraken's levels. */
  logLevel?: TracingLogLevel;
  /** `OTEL_SERVICE_NAME`. */
  serviceName?: string;
  /** `OTEL_RESOURCE_ATTRIBUTES`, decoded. */
  resourceAttributes?: Record<string, string>;
  /** `OTEL_PROPAGATORS`, in order, duplicates removed. */
  propagators?: PropagatorName[];
  /** `OTEL_TRACES_SAMPLER`. */
  sampler?: SamplerName;
  /** `OTEL_TRACES_SAMPLER_ARG` for the ratio samplers. */
  samplerRatio?: number;
  /** `OTEL_TRACES_SAMPLER_ARG` for the Jaeger remote samplers. */
  samplerJaegerRemote?: JaegerRemoteArg;
  /** `OTEL_BSP_SCHEDULE_DELAY`, ms. */
  bspScheduleDelayMs?: number;
  /** `OTEL_BSP_EXPORT_TIMEOUT`, ms. */
  bspExportTimeoutMs?: number;
  /** `OTEL_BSP_MAX_QUEUE_SIZE`. */
  bspMaxQueueSize?: number;
  /** `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`. */
  bspMaxExportBatchSize?: number;
  /** `OTEL_SPAN_*_LIMIT`, `OTEL_EVENT_/LINK_ATTRIBUTE_COUNT_LIMIT`, `OTEL_ATTRIBUTE_*_LIMIT`. */
  spanLimits: SpanLimitsEnv;
  /** `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: the full URL, used as is. */
  tracesEndpoint?: string;
  /** `OTEL_EXPORTER_OTLP_ENDPOINT`: the base URL (`/v1/traces` is appended for OTLP/HTTP). */
  baseEndpoint?: string;
  /** `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`. */
  protocol?: OtlpProtocol;
  /** `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`, decoded; the signal form replaces the general one. */
  headers?: Record<string, string>;
  /** `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT`, ms. */
  timeoutMs?: number;
  /** `OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION`. */
  compression?: OtlpCompression;
  /** `OTEL_EXPORTER_OTLP_[TRACES_]INSECURE` (gRPC without a scheme: plaintext when true). */
  insecure?: boolean;
  /** `OTEL_EXPORTER_OTLP_[TRACES_]{CERTIFICATE,CLIENT_KEY,CLIENT_CERTIFICATE}`. */
  tls: OtlpTlsEnv;
}

/** The value of `name`, trimmed; undefined when unset or empty. */
function get(env: Env, name: string): string | undefined {
  const v = env[name]?.trim();
  return v === undefined || v === "" ? undefined : v;
}

/** The traces form of an OTLP exporter variable if set, else the general form; with its name. */
function otlp(env: Env, suffix: string): [string, string] | undefined {
  for (const name of [`OTEL_EXPORTER_OTLP_TRACES_${suffix}`, `OTEL_EXPORTER_OTLP_${suffix}`]) {
    const v = get(env, name);
    if (v !== undefined) return [name, v];
  }
  return undefined;
}

/** Parses `true`/`false` (any case). */
export function parseBoolean(name: string, value: string): boolean {
  const v = value.toLowerCase();
  if (v === "true") return true;
  if (v === "false") return false;
  throw new ConfigError(name, `must be true or false, got ${value}`);
}

/** Parses a whole number `>= min`. */
export function parseWholeNumber(name: string, value: string, min: number, unit = ""): number {
  if (!/^\d+$/.test(value) || Number(value) < min || !Number.isSafeInteger(Number(value))) {
    const what = min > 0 ? "a positive whole number" : "a whole number";
    throw new ConfigError(name, `must be ${what}${unit}, got ${value}`);
  }
  return Number(value);
}

/** Parses a ratio in [0, 1]. */
export function parseRatio(name: string, value: string): number {
  const n = Number(value);
  if (value === "" || !Number.isFinite(n) || n < 0 || n > 1) {
    throw new ConfigError(name, `must be a number between 0 and 1, got ${value}`);
  }
  return n;
}

function oneOfValues<T extends string>(name: string, value: string, allowed: readonly T[]): T {
  const v = value.toLowerCase();
  if ((allowed as readonly string[]).includes(v)) return v as T;
  throw new ConfigError(name, `unsupported value ${value} (use ${allowed.join(", ")})`);
}

function percentDecode(name: string, value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new ConfigError(name, `bad percent-encoding in ${value}`);
  }
}

/**
 * Parses the W3C-baggage-like `key=value,key=value` list of `OTEL_RESOURCE_ATTRIBUTES` and
 * `OTEL_EXPORTER_OTLP_HEADERS`: keys and values percent-decoded and trimmed, a member without `=`
 * or with an empty key refused.
 */
export function parseKeyValueList(name: string, value: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const member of value.split(",")) {
    if (member.trim() === "") continue;
    const eq = member.indexOf("=");
    if (eq <= 0) throw new ConfigError(name, `each member must be key=value, got ${member.trim()}`);
    const key = percentDecode(name, member.slice(0, eq).trim());
    if (key === "") throw new ConfigError(name, `empty key in ${member.trim()}`);
    out[key] = percentDecode(name, member.slice(eq + 1).trim());
  }
  return out;
}

/** Parses `OTEL_TRACES_SAMPLER_ARG` of `jaeger_remote`: `endpoint=…,pollingIntervalMs=…,…`. */
export function parseJaegerRemoteArg(name: string, value: string): JaegerRemoteArg {
  const out: JaegerRemoteArg = {};
  for (const [key, v] of Object.entries(parseKeyValueList(name, value))) {
    switch (key) {
      case "endpoint":
        try {
          new URL(v);
        } catch {
          throw new ConfigError(name, `endpoint must be a URL, got ${v}`);
        }
        out.endpoint = v;
        break;
      case "pollingIntervalMs":
        out.pollingIntervalMs = parseWholeNumber(`${name} pollingIntervalMs`, v, 1, " of ms");
        break;
      case "initialSamplingRate":
        out.initialSamplingRate = parseRatio(`${name} initialSamplingRate`, v);
        break;
      default:
        throw new ConfigError(
          name,
          `unknown key ${key} (use endpoint, pollingIntervalMs, initialSamplingRate)`,
        );
    }
  }
  return out;
}

function parsePropagators(name: string, value: string): PropagatorName[] {
  const names = value.split(",").map((p) => p.trim()).filter((p) => p !== "");
  const out: PropagatorName[] = [];
  for (const p of names) {
    const v = oneOfValues(name, p, PROPAGATORS);
    if (!out.includes(v)) out.push(v);
  }
  if (out.includes("none") && out.length > 1) {
    throw new ConfigError(name, "none cannot be combined with other propagators");
  }
  return out;
}

function parseEndpoint(name: string, value: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new ConfigError(name, `not a valid URL: ${value}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(name, `must be an http(s) URL, got ${url.protocol}`);
  }
  return value;
}

const LIMITS: [keyof SpanLimitsEnv, string[]][] = [
  ["attributeCount", ["OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT"]],
  [
    "attributeValueLength",
    ["OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"],
  ],
  ["eventCount", ["OTEL_SPAN_EVENT_COUNT_LIMIT"]],
  ["linkCount", ["OTEL_SPAN_LINK_COUNT_LIMIT"]],
  ["eventAttributeCount", ["OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT"]],
  ["linkAttributeCount", ["OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT"]],
];

/** Reads and validates every trace-related `OTEL_*` variable of `env`. */
export function readOtelEnv(env: Env): OtelEnv {
  const out: OtelEnv = { spanLimits: {}, tls: {} };
  let v: string | undefined;
  if ((v = get(env, "OTEL_SDK_DISABLED")) !== undefined) {
    out.sdkDisabled = parseBoolean("OTEL_SDK_DISABLED", v);
  }
  if ((v = get(env, "OTEL_LOG_LEVEL")) !== undefined) {
    const level = oneOfValues(
      "OTEL_LOG_LEVEL",
      v,
      Object.keys(OTEL_LOG_LEVELS) as (keyof typeof OTEL_LOG_LEVELS)[],
    );
    out.logLevel = OTEL_LOG_LEVELS[level];
  }
  if ((v = get(env, "OTEL_SERVICE_NAME")) !== undefined) out.serviceName = v;
  if ((v = get(env, "OTEL_RESOURCE_ATTRIBUTES")) !== undefined) {
    out.resourceAttributes = parseKeyValueList("OTEL_RESOURCE_ATTRIBUTES", v);
  }
  if ((v = get(env, "OTEL_PROPAGATORS")) !== undefined) {
    out.propagators = parsePropagators("OTEL_PROPAGATORS", v);
  }
  if ((v = get(env, "OTEL_TRACES_SAMPLER")) !== undefined) {
    out.sampler = oneOfValues("OTEL_TRACES_SAMPLER", v, SAMPLERS);
    const arg = get(env, "OTEL_TRACES_SAMPLER_ARG");
    if (arg !== undefined) {
      if (out.sampler.endsWith("traceidratio")) {
        out.samplerRatio = parseRatio("OTEL_TRACES_SAMPLER_ARG", arg);
      } else if (out.sampler.endsWith("jaeger_remote")) {
        out.samplerJaegerRemote = parseJaegerRemoteArg("OTEL_TRACES_SAMPLER_ARG", arg);
      }
    }
  }
  const ms = (name: string, min: number) => {
    const value = get(env, name);
    return value === undefined ? undefined : parseWholeNumber(name, value, min, " of ms");
  };
  const count = (name: string, min: number) => {
    const value = get(env, name);
    return value === undefined ? undefined : parseWholeNumber(name, value, min);
  };
  const bsp = {
    bspScheduleDelayMs: ms("OTEL_BSP_SCHEDULE_DELAY", 1),
    bspExportTimeoutMs: ms("OTEL_BSP_EXPORT_TIMEOUT", 1),
    bspMaxQueueSize: count("OTEL_BSP_MAX_QUEUE_SIZE", 1),
    bspMaxExportBatchSize: count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 1),
  };
  for (const [key, value] of Object.entries(bsp)) {
    if (value !== undefined) out[key as keyof typeof bsp] = value;
  }
  for (const [field, names] of LIMITS) {
    for (const name of names) {
      const n = count(name, 0);
      if (n === undefined) continue;
      out.spanLimits[field] = n;
      break;
    }
  }

  if ((v = get(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) !== undefined) {
    out.tracesEndpoint = parseEndpoint("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", v);
  }
  if ((v = get(env, "OTEL_EXPORTER_OTLP_ENDPOINT")) !== undefined) {
    out.baseEndpoint = parseEndpoint("OTEL_EXPORTER_OTLP_ENDPOINT", v);
  }
  let found = otlp(env, "PROTOCOL");
  if (found) out.protocol = oneOfValues(found[0], found[1], OTLP_PROTOCOLS);
  if ((found = otlp(env, "HEADERS"))) out.headers = parseKeyValueList(found[0], found[1]);
  if ((found = otlp(env, "TIMEOUT"))) {
    out.timeoutMs = parseWholeNumber(found[0], found[1], 1, " of milliseconds");
  }
  if ((found = otlp(env, "COMPRESSION"))) {
    out.compression = oneOfValues(found[0], found[1], OTLP_COMPRESSIONS);
  }
  if ((found = otlp(env, "INSECURE"))) out.insecure = parseBoolean(found[0], found[1]);
  if ((found = otlp(env, "CERTIFICATE"))) out.tls.certificate = found[1];
  if ((found = otlp(env, "CLIENT_KEY"))) out.tls.clientKey = found[1];
  if ((found = otlp(env, "CLIENT_CERTIFICATE"))) out.tls.clientCertificate = found[1];
  return out;
}
