/**
 * OTLP export the way OpenTelemetry users configure it, against a real Jaeger: the three protocols
 * (`grpc`, `http/protobuf`, `http/json`) deliver one trace, configured only with the standard
 * `OTEL_*` variables (gzip, headers, resource attributes included), and the ERD's
 * `collector_addr: host:4317` reaches Jaeger's gRPC receiver.
 */

import assert from "node:assert/strict";
import { startJaeger } from "./harness/jaeger.ts";
import { freePorts, ProcessGroup, waitForHttp } from "./harness/procs.ts";
import { formatTree } from "./harness/trace_tree.ts";

const FIXTURE = new URL("./fixtures/traced_service.ts", import.meta.url).pathname;

function tracingJson(extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    enabled: true,
    sampling: { default_rate: 1 },
    export: { batch_timeout: "100ms" },
    safeguards: { load_threshold: 1 },
    ...extra,
  });
}

Deno.test("OTLP: grpc, http/protobuf and http/json (gzip, headers, resource) deliver one trace", async () => {
  await using jaeger = await startJaeger();
  await using group = new ProcessGroup();
  const [portG, portP, portJ] = freePorts(3);
  const common = {
    OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=ci,team=registry%20ops",
    OTEL_EXPORTER_OTLP_HEADERS: "x-kraken-test=1",
  };
  const p = group.spawnDeno(
    FIXTURE,
    ["--name=p", `--port=${portP}`, `--tracing=${tracingJson()}`],
    {
      env: {
        ...common,
        OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpHttpEndpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
        OTEL_EXPORTER_OTLP_COMPRESSION: "gzip",
      },
    },
  );
  const downstream = `--downstream=http://127.0.0.1:${portP}`;
  const g = group.spawnDeno(
    FIXTURE,
    ["--name=g", `--port=${portG}`, downstream, `--tracing=${tracingJson()}`],
    {
      env: {
        ...common,
        // Plain host:port, as gRPC users write it.
        OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpGrpcEndpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
        OTEL_EXPORTER_OTLP_COMPRESSION: "gzip",
      },
    },
  );
  const j = group.spawnDeno(
    FIXTURE,
    ["--name=j", `--port=${portJ}`, downstream, `--tracing=${tracingJson()}`],
    {
      env: {
        ...common,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${jaeger.otlpHttpEndpoint}/v1/traces`,
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/json",
      },
    },
  );
  for (const [port, proc] of [[portP, p], [portG, g], [portJ, j]] as const) {
    await waitForHttp(`http://127.0.0.1:${port}/stats`, { process: proc });
  }

  const traceId = crypto.randomUUID().replaceAll("-", "");
  const caller = "a1b2c3d4e5f60718";
  for (const [port, who] of [[portG, "grpc"], [portJ, "json"]] as const) {
    const res = await fetch(`http://127.0.0.1:${port}/hello/${who}`, {
      headers: { traceparent: `00-${traceId}-${caller}-01` },
    });
    assert.equal(await res.text(), `hello via echo ${who}`);
  }
  // g: server, work, client; j: the same; p: server and echo for each call.
  const tree = await jaeger.waitForTrace(traceId, { minSpans: 10, timeoutMs: 20_000 });
  const byService = new Map<string, string[]>();
  for (const span of tree.spans) {
    byService.set(span.service, [...(byService.get(span.service) ?? []), span.name].sort());
  }
  assert.deepEqual(Object.fromEntries(byService), {
    "kraken-fixture-g": ["GET /echo/{name}", "GET /hello/{name}", "fixture.work"],
    "kraken-fixture-j": ["GET /echo/{name}", "GET /hello/{name}", "fixture.work"],
    "kraken-fixture-p": ["GET /echo/{name}", "GET /echo/{name}", "fixture.echo", "fixture.echo"],
  }, formatTree(tree));
  // The same span, exported by gRPC and by OTLP/JSON, arrives with the same shape.
  const work = (service: string) =>
    tree.spans.find((s) => s.service === service && s.name === "fixture.work")!;
  assert.equal(work("kraken-fixture-g").attributes["fixture.name"], "grpc");
  assert.equal(work("kraken-fixture-j").attributes["fixture.name"], "json");
  for (const span of tree.spans) {
    assert.equal(span.resource["deployment.environment.name"], "ci", span.service);
    assert.equal(span.resource["team"], "registry ops", span.service);
    assert.match(String(span.resource["service.instance.id"]), /^[0-9a-f-]{36}$/, span.service);
    assert.equal(typeof span.resource["process.pid"], "number", span.service);
  }
  const instanceIds = new Set(
    tree.spans.map((s) => `${s.service} ${s.resource["service.instance.id"]}`),
  );
  assert.equal(instanceIds.size, 3, "one stable service.instance.id per process");
});

Deno.test("OTLP: the ERD's collector_addr: host:4317 exports over gRPC", async () => {
  await using jaeger = await startJaeger();
  await using group = new ProcessGroup();
  const [port] = freePorts(1);
  const proc = group.spawnDeno(FIXTURE, [
    "--name=erd",
    `--port=${port}`,
    `--tracing=${tracingJson({ collector_addr: jaeger.otlpGrpcEndpoint })}`,
  ]);
  await waitForHttp(`http://127.0.0.1:${port}/stats`, { process: proc });
  const traceId = crypto.randomUUID().replaceAll("-", "");
  const res = await fetch(`http://127.0.0.1:${port}/hello/erd`, {
    headers: { traceparent: `00-${traceId}-a1b2c3d4e5f60718-01` },
  });
  assert.equal(await res.text(), "hello erd");
  const tree = await jaeger.waitForTrace(traceId, { minSpans: 2, timeoutMs: 20_000 });
  assert.deepEqual(tree.spans.map((s) => s.name).sort(), ["GET /hello/{name}", "fixture.work"]);
});
