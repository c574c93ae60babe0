import assert from "node:assert/strict";
import { ConfigError } from "../common/config.ts";
import { parseTracingConfig } from "./config.ts";
import { parseKeyValueList, readOtelEnv } from "./otel_env.ts";

/** Asserts that `env` fails start-up with a ConfigError naming `name`. */
function rejects(env: Record<string, string>, name: string, message?: RegExp): void {
  assert.throws(() => parseTracingConfig({}, "agent", env), (e: unknown) => {
    assert.ok(e instanceof ConfigError, String(e));
    assert.equal(e.key, name, e.message);
    if (message) assert.match(e.message, message);
    return true;
  }, `${JSON.stringify(env)} should be refused`);
}

Deno.test("otel env: unset and empty variables are absent", () => {
  const env = readOtelEnv({ OTEL_SERVICE_NAME: "", OTEL_EXPORTER_OTLP_HEADERS: "  " });
  assert.deepEqual(env, { spanLimits: {}, tls: {} });
});

Deno.test("otel env: every variable parses", () => {
  const env = readOtelEnv({
    OTEL_SDK_DISABLED: "FALSE",
    OTEL_LOG_LEVEL: "verbose",
    OTEL_SERVICE_NAME: "svc",
    OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=prod, team=a%20b,,k=v=w",
    OTEL_PROPAGATORS: "b3multi,tracecontext,b3multi",
    OTEL_TRACES_SAMPLER: "ParentBased_TraceIdRatio",
    OTEL_TRACES_SAMPLER_ARG: "0.5",
    OTEL_BSP_SCHEDULE_DELAY: "250",
    OTEL_BSP_EXPORT_TIMEOUT: "3000",
    OTEL_BSP_MAX_QUEUE_SIZE: "100",
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "10",
    OTEL_ATTRIBUTE_COUNT_LIMIT: "20",
    OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT: "30",
    OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT: "40",
    OTEL_SPAN_EVENT_COUNT_LIMIT: "5",
    OTEL_SPAN_LINK_COUNT_LIMIT: "0",
    OTEL_LINK_ATTRIBUTE_COUNT_LIMIT: "7",
    OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4317",
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://c/v1/traces",
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "grpc",
    OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer%20x",
    OTEL_EXPORTER_OTLP_TRACES_HEADERS: "x-tenant=t1",
    OTEL_EXPORTER_OTLP_TIMEOUT: "900",
    OTEL_EXPORTER_OTLP_COMPRESSION: "gzip",
    OTEL_EXPORTER_OTLP_INSECURE: "true",
    OTEL_EXPORTER_OTLP_CERTIFICATE: "/ca.pem",
    OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY: "/key.pem",
    OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: "/cert.pem",
  });
  assert.deepEqual(env, {
    sdkDisabled: false,
    logLevel: "debug",
    serviceName: "svc",
    resourceAttributes: { "deployment.environment.name": "prod", team: "a b", k: "v=w" },
    propagators: ["b3multi", "tracecontext"],
    sampler: "parentbased_traceidratio",
    samplerRatio: 0.5,
    bspScheduleDelayMs: 250,
    bspExportTimeoutMs: 3000,
    bspMaxQueueSize: 100,
    bspMaxExportBatchSize: 10,
    spanLimits: {
      attributeCount: 30, // the span form wins over the general one
      attributeValueLength: 40,
      eventCount: 5,
      linkCount: 0,
      eventAttributeCount: 20,
      linkAttributeCount: 7,
    },
    tracesEndpoint: "https://c/v1/traces",
    baseEndpoint: "collector:4317",
    protocol: "grpc", // the traces form wins
    headers: { "x-tenant": "t1" }, // the traces form replaces the general one
    timeoutMs: 900,
    compression: "gzip",
    insecure: true,
    tls: { certificate: "/ca.pem", clientKey: "/key.pem", clientCertificate: "/cert.pem" },
  });
});

Deno.test("otel env: jaeger_remote's argument is a key=value list", () => {
  const env = readOtelEnv({
    OTEL_TRACES_SAMPLER: "parentbased_jaeger_remote",
    OTEL_TRACES_SAMPLER_ARG:
      "endpoint=http://jaeger:5778/sampling,pollingIntervalMs=5000,initialSamplingRate=0.25",
  });
  assert.deepEqual(env.samplerJaegerRemote, {
    endpoint: "http://jaeger:5778/sampling",
    pollingIntervalMs: 5000,
    initialSamplingRate: 0.25,
  });
  const c = parseTracingConfig({}, "agent", {
    OTEL_TRACES_SAMPLER: "jaeger_remote",
    OTEL_TRACES_SAMPLER_ARG: "endpoint=http://j:5778/sampling,pollingIntervalMs=700",
  });
  assert.equal(c.sampling.remote.enabled, true);
  assert.equal(c.sampling.remote.endpoint, "http://j:5778/sampling");
  assert.equal(c.sampling.remote.refreshIntervalMs, 700);
});

Deno.test("otel env: an invalid value fails start-up naming the variable", () => {
  const cases: [Record<string, string>, string, RegExp?][] = [
    [{ OTEL_SDK_DISABLED: "yes" }, "OTEL_SDK_DISABLED", /true or false/],
    [{ OTEL_LOG_LEVEL: "loud" }, "OTEL_LOG_LEVEL", /unsupported value loud/],
    [{ OTEL_RESOURCE_ATTRIBUTES: "novalue" }, "OTEL_RESOURCE_ATTRIBUTES", /key=value/],
    [{ OTEL_RESOURCE_ATTRIBUTES: "=v" }, "OTEL_RESOURCE_ATTRIBUTES"],
    [{ OTEL_RESOURCE_ATTRIBUTES: "k=%zz" }, "OTEL_RESOURCE_ATTRIBUTES", /percent/],
    [{ OTEL_PROPAGATORS: "tracecontext,xray" }, "OTEL_PROPAGATORS", /unsupported value xray/],
    [{ OTEL_PROPAGATORS: "none,b3" }, "OTEL_PROPAGATORS", /none cannot be combined/],
    [{ OTEL_TRACES_SAMPLER: "sometimes" }, "OTEL_TRACES_SAMPLER"],
    [
      { OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "-0.1" },
      "OTEL_TRACES_SAMPLER_ARG",
    ],
    [
      { OTEL_TRACES_SAMPLER: "jaeger_remote", OTEL_TRACES_SAMPLER_ARG: "endpoint=nope" },
      "OTEL_TRACES_SAMPLER_ARG",
      /endpoint must be a URL/,
    ],
    [
      { OTEL_TRACES_SAMPLER: "jaeger_remote", OTEL_TRACES_SAMPLER_ARG: "pollingIntervalMs=0" },
      "OTEL_TRACES_SAMPLER_ARG pollingIntervalMs",
    ],
    [
      { OTEL_TRACES_SAMPLER: "jaeger_remote", OTEL_TRACES_SAMPLER_ARG: "refresh=1" },
      "OTEL_TRACES_SAMPLER_ARG",
      /unknown key refresh/,
    ],
    [{ OTEL_BSP_SCHEDULE_DELAY: "1s" }, "OTEL_BSP_SCHEDULE_DELAY", /ms/],
    [{ OTEL_BSP_EXPORT_TIMEOUT: "0" }, "OTEL_BSP_EXPORT_TIMEOUT"],
    [{ OTEL_BSP_MAX_QUEUE_SIZE: "-5" }, "OTEL_BSP_MAX_QUEUE_SIZE"],
    [{ OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "1.5" }, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"],
    [{ OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "5000" }, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", /queue size/],
    [{ OTEL_BSP_MAX_QUEUE_SIZE: "10" }, "OTEL_BSP_MAX_QUEUE_SIZE", /queue size/],
    [{ OTEL_ATTRIBUTE_COUNT_LIMIT: "many" }, "OTEL_ATTRIBUTE_COUNT_LIMIT"],
    [{ OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT: "x" }, "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT"],
    [{ OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT: "-1" }, "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"],
    [{ OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT: "x" }, "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT"],
    [{ OTEL_SPAN_EVENT_COUNT_LIMIT: "x" }, "OTEL_SPAN_EVENT_COUNT_LIMIT"],
    [{ OTEL_SPAN_LINK_COUNT_LIMIT: "x" }, "OTEL_SPAN_LINK_COUNT_LIMIT"],
    [{ OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT: "x" }, "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT"],
    [{ OTEL_LINK_ATTRIBUTE_COUNT_LIMIT: "x" }, "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT"],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "ftp://c" }, "OTEL_EXPORTER_OTLP_ENDPOINT", /http\(s\)/],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://[" }, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"],
    [{ OTEL_EXPORTER_OTLP_PROTOCOL: "thrift" }, "OTEL_EXPORTER_OTLP_PROTOCOL"],
    [{ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http" }, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"],
    [{ OTEL_EXPORTER_OTLP_HEADERS: "a" }, "OTEL_EXPORTER_OTLP_HEADERS"],
    [{ OTEL_EXPORTER_OTLP_TRACES_HEADERS: "a=1,b" }, "OTEL_EXPORTER_OTLP_TRACES_HEADERS"],
    [{ OTEL_EXPORTER_OTLP_TIMEOUT: "10s" }, "OTEL_EXPORTER_OTLP_TIMEOUT", /milliseconds/],
    [{ OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: "0" }, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"],
    [{ OTEL_EXPORTER_OTLP_COMPRESSION: "zstd" }, "OTEL_EXPORTER_OTLP_COMPRESSION"],
    [{ OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: "br" }, "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"],
    [{ OTEL_EXPORTER_OTLP_INSECURE: "1" }, "OTEL_EXPORTER_OTLP_INSECURE"],
  ];
  for (const [env, name, message] of cases) rejects(env, name, message);
  // A client certificate without its key (or the other way round) is refused.
  assert.throws(
    () => parseTracingConfig({}, "agent", { OTEL_EXPORTER_OTLP_CLIENT_KEY: "/k.pem" }),
    /OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE.*go together/,
  );
});

Deno.test("otel env: a variable wins over the file, the file over the default", () => {
  const file = {
    enabled: true,
    service_name: "file-svc",
    endpoint: "http://file:4318",
    resource: { deployment_environment: "staging", attributes: { team: "file", zone: "z1" } },
    propagators: ["tracecontext"],
    limits: { attribute_count: 10, event_count: 3 },
    export: {
      protocol: "http/protobuf",
      headers: { authorization: "file", "x-a": "1" },
      compression: "none",
      timeout: "4s",
      batch_timeout: "2s",
      max_queue_size: 100,
      max_batch_size: 50,
      tls: { ca_file: "/file-ca.pem" },
    },
  };
  const fromFile = parseTracingConfig(file, "agent", {});
  assert.equal(fromFile.serviceName, "file-svc");
  assert.equal(fromFile.tracesUrl, "http://file:4318/v1/traces");
  assert.deepEqual(fromFile.resourceAttributes, {
    team: "file",
    zone: "z1",
    "deployment.environment.name": "staging",
  });
  assert.deepEqual(fromFile.propagators, ["tracecontext"]);
  assert.equal(fromFile.spanLimits.attributeCount, 10);
  assert.equal(fromFile.spanLimits.eventCount, 3);
  assert.equal(fromFile.spanLimits.linkCount, 16);
  assert.deepEqual(fromFile.export.headers, { authorization: "file", "x-a": "1" });
  assert.equal(fromFile.export.timeoutMs, 4000);
  assert.equal(fromFile.export.tls.caFile, "/file-ca.pem");

  const c = parseTracingConfig(file, "agent", {
    OTEL_SERVICE_NAME: "env-svc",
    OTEL_EXPORTER_OTLP_ENDPOINT: "http://env:4317",
    OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
    OTEL_RESOURCE_ATTRIBUTES: "team=env,deployment.environment.name=prod",
    OTEL_PROPAGATORS: "b3",
    OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT: "5",
    OTEL_EXPORTER_OTLP_HEADERS: "authorization=env",
    OTEL_EXPORTER_OTLP_COMPRESSION: "gzip",
    OTEL_BSP_EXPORT_TIMEOUT: "1500",
    OTEL_BSP_SCHEDULE_DELAY: "100",
    OTEL_BSP_MAX_QUEUE_SIZE: "60",
    OTEL_EXPORTER_OTLP_CERTIFICATE: "/env-ca.pem",
  });
  assert.equal(c.serviceName, "env-svc");
  assert.equal(c.export.protocol, "grpc");
  assert.equal(c.tracesUrl, "http://env:4317", "gRPC uses the base endpoint as it is");
  assert.deepEqual(c.resourceAttributes, {
    team: "env",
    zone: "z1",
    "deployment.environment.name": "prod",
  });
  assert.deepEqual(c.propagators, ["b3"]);
  assert.equal(c.spanLimits.attributeCount, 5);
  assert.equal(c.spanLimits.eventCount, 3);
  assert.deepEqual(c.export.headers, { authorization: "env", "x-a": "1" });
  assert.equal(c.export.compression, "gzip");
  assert.equal(c.export.timeoutMs, 1500, "OTEL_BSP_EXPORT_TIMEOUT when no OTLP timeout is set");
  assert.equal(
    parseTracingConfig(file, "agent", {
      OTEL_BSP_EXPORT_TIMEOUT: "1500",
      OTEL_EXPORTER_OTLP_TIMEOUT: "800",
    }).export.timeoutMs,
    800,
  );
  assert.equal(c.export.batchTimeoutMs, 100);
  assert.equal(c.export.maxQueueSize, 60);
  assert.equal(c.export.tls.caFile, "/env-ca.pem");
});

Deno.test("otel env: gRPC endpoints default to 4317 and keep http/https as the TLS switch", () => {
  assert.equal(
    parseTracingConfig({ export: { protocol: "grpc" } }, "agent", {}).tracesUrl,
    "http://127.0.0.1:4317",
  );
  assert.equal(
    parseTracingConfig({ collector_addr: "jaeger:4317" }, "agent", {}).tracesUrl,
    "http://jaeger:4317",
  );
  assert.equal(
    parseTracingConfig({ collector_addr: "jaeger:4317", export: { insecure: false } }, "a", {})
      .tracesUrl,
    "https://jaeger:4317",
  );
  assert.equal(
    parseTracingConfig({}, "agent", {
      OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://c:4317",
    }).tracesUrl,
    "https://c:4317",
  );
  // collector_addr with an explicit HTTP protocol stays OTLP/HTTP.
  assert.equal(
    parseTracingConfig(
      { collector_addr: "c:4318", export: { protocol: "http/protobuf" } },
      "agent",
      {},
    ).tracesUrl,
    "http://c:4318/v1/traces",
  );
});

Deno.test("otel env: key=value lists decode percent-escapes and skip empty members", () => {
  assert.deepEqual(parseKeyValueList("X", " a = 1 ,b=%2C%3D , "), { a: "1", b: ",=" });
});
