/**
 * Stock OpenTelemetry SDK pieces plugged in beside the built-in exporter: the Zipkin exporter
 * sends to Jaeger's Zipkin receiver, and a stock `SimpleSpanProcessor` with the in-memory exporter
 * gets complete `ReadableSpan`s (resource, scope, events, links, status) while the built-in OTLP
 * export keeps going to the same Jaeger.
 */

import assert from "node:assert/strict";
import { context, SpanStatusCode, trace } from "@opentelemetry/api";
import { ZipkinExporter } from "@opentelemetry/exporter-zipkin";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace";
import { createLogger } from "../common/log.ts";
import { initTracing, parseTracingConfig } from "../tracing/mod.ts";
import { startJaeger } from "./harness/jaeger.ts";

Deno.test("stock pieces: the Zipkin exporter and a SimpleSpanProcessor run beside OTLP", async () => {
  // Two Jaegers: one span id arriving twice in one Jaeger would be merged by its query service.
  await using jaeger = await startJaeger();
  await using zipkinJaeger = await startJaeger({ zipkin: true });
  const memory = new InMemorySpanExporter();
  const config = parseTracingConfig(
    {
      enabled: true,
      service_name: "kraken-stock",
      sampling: { default_rate: 1 },
      export: { batch_timeout: "100ms" },
      safeguards: { load_threshold: 1 },
    },
    "stock",
    { OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpHttpEndpoint },
  );
  const runtime = initTracing(config, {
    role: "stock",
    logger: createLogger({ role: "stock", write: () => {} }),
    spanExporters: [new ZipkinExporter({ url: zipkinJaeger.zipkinUrl! })],
    spanProcessors: [new SimpleSpanProcessor({ exporter: memory })],
  });
  try {
    const tracer = trace.getTracer("stock-test", "1.2.3");
    const linked = { traceId: "ab".repeat(16), spanId: "cd".repeat(8), traceFlags: 1 };
    const parent = tracer.startSpan("stock.parent", { links: [{ context: linked }] });
    const traceId = parent.spanContext().traceId;
    const child = tracer.startSpan(
      "stock.child",
      { attributes: { "stock.key": "v" } },
      trace.setSpan(context.active(), parent),
    );
    child.addEvent("stock.event", { n: 1 });
    child.setStatus({ code: SpanStatusCode.ERROR, message: "bad" });
    child.end();
    parent.end();
    await runtime.forceFlush();

    // The stock processor saw complete spans.
    const spans = memory.getFinishedSpans();
    assert.deepEqual(spans.map((s) => s.name), ["stock.child", "stock.parent"]);
    const [c, p] = spans;
    assert.equal(c.resource.attributes["service.name"], "kraken-stock");
    assert.match(String(c.resource.attributes["service.instance.id"]), /^[0-9a-f-]{36}$/);
    assert.deepEqual(c.instrumentationScope, {
      name: "stock-test",
      version: "1.2.3",
      schemaUrl: undefined,
    });
    assert.equal(c.parentSpanContext?.spanId, p.spanContext().spanId);
    assert.equal(c.events[0].name, "stock.event");
    assert.deepEqual(c.status, { code: SpanStatusCode.ERROR, message: "bad" });
    assert.equal(c.attributes["stock.key"], "v");
    assert.deepEqual(p.links.map((l) => l.context.spanId), [linked.spanId]);
    assert.ok(c.ended && c.duration[0] >= 0);

    // The Zipkin exporter's copy arrives, with the attribute, event and status; the built-in
    // OTLP export delivers the same spans to the other Jaeger.
    const zipkin = (await zipkinJaeger.waitForTrace(traceId, { minSpans: 2, timeoutMs: 20_000 }))
      .spans;
    const otlp = (await jaeger.waitForTrace(traceId, { minSpans: 2, timeoutMs: 20_000 })).spans;
    // The exporter names the service from the resource it is handed.
    assert.deepEqual(new Set(zipkin.map((s) => s.service)), new Set(["kraken-stock"]));
    assert.deepEqual(new Set(otlp.map((s) => s.service)), new Set(["kraken-stock"]));
    assert.deepEqual(zipkin.map((s) => s.name).sort(), ["stock.child", "stock.parent"]);
    assert.deepEqual(otlp.map((s) => s.name).sort(), ["stock.child", "stock.parent"]);
    const zChild = zipkin.find((s) => s.name === "stock.child")!;
    assert.equal(zChild.attributes["stock.key"], "v");
    assert.ok(zChild.events.some((e) => e.name === "stock.event"), JSON.stringify(zChild.events));
    assert.equal(zChild.status, "error");
  } finally {
    await runtime.shutdown();
  }
});
