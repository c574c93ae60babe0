import assert from "node:assert/strict";
import { ExportResultCode } from "@opentelemetry/core";
import { InMemorySpanExporter, type SpanExporter } from "@opentelemetry/sdk-trace";
import { createLogger } from "../common/log.ts";
import { Router } from "../http/router.ts";
import { withSpan } from "./api.ts";
import { parseTracingConfig } from "./config.ts";
import { initTracing } from "./setup.ts";
import { testTracingConfig } from "./_test_util.ts";

const logger = createLogger({ role: "test", write: () => {} });

function spansCreated(text: string): number {
  const line = text.split("\n").find((l) => l.startsWith("kraken_tracing_spans_created_total"));
  assert.ok(line, text);
  return Number(line.split(" ").at(-1));
}

Deno.test("initTracing: each runtime serves its own /metrics; a later one does not take over", async () => {
  const enabled = initTracing(
    testTracingConfig("a"),
    { role: "a", logger, exporter: new InMemorySpanExporter() },
  );
  try {
    await withSpan("test.work", {}, () => Promise.resolve());
    const disabled = initTracing(parseTracingConfig({ enabled: false }, "b", {}), {
      role: "b",
      logger,
    });
    const routerA = new Router().use(enabled.serverMiddleware());
    routerA.get("/metrics", enabled.metricsHandler);
    const routerB = new Router().use(disabled.serverMiddleware());
    routerB.get("/metrics", disabled.metricsHandler);
    const a = await (await routerA.handle(new Request("http://h/metrics"))).text();
    const b = await (await routerB.handle(new Request("http://h/metrics"))).text();
    assert.ok(spansCreated(a) >= 1, a);
    assert.equal(spansCreated(b), 0);
    await disabled.shutdown();
  } finally {
    await enabled.shutdown();
  }
});

Deno.test("initTracing: OTEL_LOG_LEVEL filters the tracing module's own lines", async () => {
  const failing: SpanExporter = {
    export: (_spans, done) => done({ code: ExportResultCode.FAILED, error: new Error("down") }),
    shutdown: () => Promise.resolve(),
  };
  const linesAt = async (env: Record<string, string>) => {
    const lines: string[] = [];
    const config = parseTracingConfig(
      { enabled: true, sampling: { default_rate: 1 }, safeguards: { load_threshold: 1 } },
      "log",
      env,
    );
    const runtime = initTracing(config, {
      role: "log",
      logger: createLogger({ role: "log", level: "debug", write: (l) => lines.push(l) }),
      exporter: failing,
    });
    try {
      await withSpan("test.work", {}, () => Promise.resolve());
      await runtime.forceFlush();
    } finally {
      await runtime.shutdown();
    }
    return lines.filter((l) => l.includes("span export failed")).length;
  };
  assert.equal(await linesAt({}), 1, "a failed export is a warn line by default");
  assert.equal(await linesAt({ OTEL_LOG_LEVEL: "warn" }), 1);
  assert.equal(await linesAt({ OTEL_LOG_LEVEL: "error" }), 0);
  assert.equal(await linesAt({ OTEL_LOG_LEVEL: "none" }), 0);
});
