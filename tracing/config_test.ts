import assert from "node:assert/strict";
import { ConfigError, parseTracingConfig, tracesUrlFrom } from "./config.ts";

Deno.test("tracing config: defaults — off, kraken-<role>, local OTLP endpoint, ERD batch settings", () => {
  const c = parseTracingConfig(undefined, "origin", {});
  assert.equal(c.enabled, false);
  assert.equal(c.serviceName, "kraken-origin");
  assert.equal(c.tracesUrl, "http://127.0.0.1:4318/v1/traces");
  assert.equal(c.sampling.defaultRate, 0.1);
  assert.deepEqual(
    [c.export.batchTimeoutMs, c.export.maxBatchSize, c.export.maxQueueSize],
    [5000, 512, 2048],
  );
  assert.equal(c.export.protocol, "http/protobuf");
  assert.equal(c.safeguards.circuitBreakerEnabled, true);
});

Deno.test("tracing config: the ERD Appendix B example parses", () => {
  const c = parseTracingConfig(
    {
      enabled: true,
      service_name: "kraken-agent",
      collector_addr: "jaeger-collector:4317",
      sampling: {
        default_rate: 0.1,
        rules: [
          { match: { path_prefix: "/health" }, rate: 0.0 },
          { match: { path_prefix: "/namespace/*/blobs/*" }, rate: 0.2 },
          { match: { operation: "scheduler.download" }, rate: 0.5 },
        ],
      },
      export: {
        batch_timeout: "5s",
        max_batch_size: 512,
        max_queue_size: 2048,
        retry_enabled: true,
        retry_max_attempts: 3,
      },
      safeguards: { circuit_breaker_enabled: true, load_threshold: 0.9, cooldown_duration: "30s" },
    },
    "agent",
    {},
  );
  assert.equal(c.enabled, true);
  // The ERD's collector_addr is an OTLP/gRPC address, as its Go example's otlptracegrpc.
  assert.equal(c.export.protocol, "grpc");
  assert.equal(c.tracesUrl, "http://jaeger-collector:4317");
  assert.equal(c.export.retryMaxAttempts, 3);
  assert.equal(c.safeguards.cooldownMs, 30_000);
});

Deno.test("tracing config: the ERD §6.5 flat spelling is accepted", () => {
  const c = parseTracingConfig(
    {
      enabled: true,
      sampling_rate: 0.3,
      sampling_rules: [{ path: "/health", rate: 0 }],
      batch_timeout: "2s",
      max_export_batch: 100,
      max_queue_size: 1000,
    },
    "tracker",
    {},
  );
  assert.equal(c.sampling.defaultRate, 0.3);
  assert.equal(c.export.batchTimeoutMs, 2000);
  assert.equal(c.export.maxBatchSize, 100);
  assert.equal(c.export.maxQueueSize, 1000);
});

Deno.test("tracing config: invalid values name the key", () => {
  const cases: [unknown, string][] = [
    [{ enabled: "yes" }, "tracing.enabled"],
    [{ endpoint: "ftp://x" }, "tracing.endpoint"],
    [{ endpoint: "http://a:1", collector_addr: "b:2" }, "tracing.collector_addr"],
    [{ export: { max_batch_size: 0 } }, "tracing.export.max_batch_size"],
    [{ export: { max_batch_size: 4096 } }, "tracing.export.max_batch_size"],
    [{ export: { batch_timeout: "soon" } }, "tracing.export.batch_timeout"],
    [{ export: { protocol: "spdy" } }, "tracing.export.protocol"],
    [{ export: { compression: "br" } }, "tracing.export.compression"],
    [{ export: { headers: { a: 1 } } }, "tracing.export.headers.a"],
    [{ propagators: ["xray"] }, "tracing.propagators[0]"],
    [{ limits: { attribute_count: -1 } }, "tracing.limits.attribute_count"],
    [{ sampling: { remote: { endpoint: "jaeger" } } }, "tracing.sampling.remote.endpoint"],
    [{ colector: {} }, "tracing.colector"],
    [{ sampling: { default_rate: 1.5 } }, "tracing.sampling.default_rate"],
    [{ statsd: { addr: "nohost" } }, "tracing.statsd.addr"],
    ["text", "tracing"],
  ];
  for (const [raw, key] of cases) {
    assert.throws(() => parseTracingConfig(raw, "origin", {}), (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.equal(e.key, key, e.message);
      assert.ok(e.message.startsWith(`${key}: `), e.message);
      return true;
    });
  }
});

Deno.test("tracing config: OTEL_* environment variables override the file", () => {
  const file = { enabled: true, service_name: "from-file", endpoint: "http://file:4318" };
  const c = parseTracingConfig(file, "proxy", {
    OTEL_SERVICE_NAME: "from-env",
    OTEL_EXPORTER_OTLP_ENDPOINT: "http://env:4318/",
    OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
    OTEL_TRACES_SAMPLER_ARG: "0.25",
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
  });
  assert.equal(c.serviceName, "from-env");
  assert.equal(c.tracesUrl, "http://env:4318/v1/traces");
  assert.equal(c.sampling.defaultRate, 0.25);
  assert.equal(c.sampling.parentBased, true);
  assert.equal(c.export.protocol, "http/json");
  // An endpoint in the environment turns tracing on; OTEL_SDK_DISABLED turns it off again.
  assert.equal(
    parseTracingConfig({}, "agent", { OTEL_EXPORTER_OTLP_ENDPOINT: "http://x:1" }).enabled,
    true,
  );
  assert.equal(parseTracingConfig(file, "agent", { OTEL_SDK_DISABLED: "true" }).enabled, false);
  assert.equal(
    parseTracingConfig({}, "agent", { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://t:9/custom" })
      .tracesUrl,
    "http://t:9/custom",
  );
  assert.throws(
    () => parseTracingConfig({}, "agent", { OTEL_TRACES_SAMPLER: "xray" }),
    /OTEL_TRACES_SAMPLER: unsupported value xray/,
  );
  assert.throws(
    () =>
      parseTracingConfig({}, "agent", {
        OTEL_TRACES_SAMPLER: "traceidratio",
        OTEL_TRACES_SAMPLER_ARG: "2",
      }),
    /OTEL_TRACES_SAMPLER_ARG/,
  );
});

Deno.test("tracing config: the export timeout is 10 s, export.timeout, or OTEL_*_TIMEOUT in ms", () => {
  assert.equal(parseTracingConfig({}, "agent", {}).export.timeoutMs, 10_000);
  const file = { export: { timeout: "30s" } };
  assert.equal(parseTracingConfig(file, "agent", {}).export.timeoutMs, 30_000);
  assert.equal(
    parseTracingConfig(file, "agent", { OTEL_EXPORTER_OTLP_TIMEOUT: "2500" }).export.timeoutMs,
    2500,
  );
  // The traces-specific variable wins over the generic one.
  assert.equal(
    parseTracingConfig(file, "agent", {
      OTEL_EXPORTER_OTLP_TIMEOUT: "2500",
      OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: "700",
    }).export.timeoutMs,
    700,
  );
  for (const bad of ["0", "-1", "1.5", "10s"]) {
    assert.throws(
      () => parseTracingConfig({}, "agent", { OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: bad }),
      /OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: must be a positive whole number of milliseconds/,
    );
  }
});

Deno.test("tracing config: endpoint normalisation", () => {
  assert.equal(tracesUrlFrom("collector:4318", "k"), "http://collector:4318/v1/traces");
  assert.equal(tracesUrlFrom("https://c/otlp", "k"), "https://c/otlp/v1/traces");
  assert.equal(tracesUrlFrom("http://c:4318/v1/traces", "k"), "http://c:4318/v1/traces");
});
