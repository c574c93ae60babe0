import assert from "node:assert/strict";
import { registerTracingMetrics, TracingMetrics } from "./metrics.ts";
import { acceptsOpenMetrics, metricsExposition } from "./prometheus.ts";
import { MetricsRegistry } from "./registry.ts";

function renderPrometheus(m: TracingMetrics): string {
  const registry = new MetricsRegistry();
  registerTracingMetrics(registry, m);
  return registry.render();
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A strict reader of the text format's line grammar; throws on any malformed line. */
function parse(text: string): { samples: Sample[]; types: Map<string, string> } {
  assert.ok(text.endsWith("\n"), "ends with a newline");
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const name = "[a-zA-Z_:][a-zA-Z0-9_:]*";
  const sampleRe = new RegExp(`^(${name})(?:\\{(.*)\\})? (\\S+)$`);
  const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
  for (const line of text.slice(0, -1).split("\n")) {
    let m: RegExpExecArray | null;
    if ((m = new RegExp(`^# HELP (${name}) (.+)$`).exec(line))) {
      assert.ok(!helps.has(m[1]), `one HELP per family: ${m[1]}`);
      helps.add(m[1]);
    } else if ((m = new RegExp(`^# TYPE (${name}) (counter|gauge|histogram)$`).exec(line))) {
      assert.ok(helps.has(m[1]), `HELP before TYPE: ${m[1]}`);
      types.set(m[1], m[2]);
    } else if ((m = sampleRe.exec(line))) {
      const labels: Record<string, string> = {};
      if (m[2] !== undefined) {
        labelRe.lastIndex = 0;
        while (labelRe.lastIndex < m[2].length) {
          const l = labelRe.exec(m[2]);
          assert.ok(l, `bad labels in: ${line}`);
          labels[l[1]] = l[2].replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
        }
      }
      const value = m[3] === "+Inf" ? Infinity : Number(m[3]);
      assert.ok(!Number.isNaN(value), `bad value in: ${line}`);
      const family = m[1].replace(/_(bucket|sum|count)$/, "");
      assert.ok(
        types.has(m[1]) || types.get(family) === "histogram",
        `sample before TYPE: ${line}`,
      );
      samples.push({ name: m[1], labels, value });
    } else {
      assert.fail(`malformed line: ${JSON.stringify(line)}`);
    }
  }
  return { samples, types };
}

function value(
  samples: Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  return samples.find((s) => s.name === name && JSON.stringify(s.labels) === JSON.stringify(labels))
    ?.value;
}

Deno.test("renders every series with HELP/TYPE and the current values", () => {
  const m = new TracingMetrics({
    queueSize: () => 42,
    breakerState: () => 1,
    samplingRates: () => [["GET /v2/{name}/blobs/{digest}", 0.25], ['we"ird\\op\n', 1], ["*", 0.1]],
  });
  m.spansCreated = 1000;
  m.spansSampled = 120;
  m.droppedQueueFull = 3;
  m.droppedBreaker = 4;
  m.droppedRateLimit = 5;
  m.onExport(100, true, 30);
  m.onExport(20, true, 2000);
  m.onExport(7, false, 20_000);

  const { samples, types } = parse(renderPrometheus(m));
  assert.equal(types.get("kraken_tracing_spans_created_total"), "counter");
  assert.equal(types.get("kraken_tracing_export_duration_seconds"), "histogram");
  assert.equal(types.get("kraken_tracing_breaker_state"), "gauge");
  assert.equal(value(samples, "kraken_tracing_spans_created_total"), 1000);
  assert.equal(value(samples, "kraken_tracing_spans_sampled_total"), 120);
  assert.equal(value(samples, "kraken_tracing_spans_dropped_total", { reason: "queue_full" }), 3);
  assert.equal(value(samples, "kraken_tracing_spans_dropped_total", { reason: "breaker" }), 4);
  assert.equal(value(samples, "kraken_tracing_spans_dropped_total", { reason: "rate_limit" }), 5);
  assert.equal(value(samples, "kraken_tracing_spans_exported_total"), 120);
  assert.equal(value(samples, "kraken_tracing_export_errors_total"), 1);
  assert.equal(value(samples, "kraken_tracing_export_duration_seconds_bucket", { le: "0.025" }), 0);
  assert.equal(value(samples, "kraken_tracing_export_duration_seconds_bucket", { le: "0.05" }), 1);
  assert.equal(value(samples, "kraken_tracing_export_duration_seconds_bucket", { le: "2.5" }), 2);
  assert.equal(value(samples, "kraken_tracing_export_duration_seconds_bucket", { le: "10" }), 2);
  assert.equal(value(samples, "kraken_tracing_export_duration_seconds_bucket", { le: "+Inf" }), 3);
  assert.equal(value(samples, "kraken_tracing_export_duration_seconds_sum"), 22.03);
  assert.equal(value(samples, "kraken_tracing_export_duration_seconds_count"), 3);
  assert.equal(value(samples, "kraken_tracing_queue_size"), 42);
  assert.equal(value(samples, "kraken_tracing_breaker_state"), 1);
  assert.equal(
    value(samples, "kraken_tracing_sampling_rate", { operation: "GET /v2/{name}/blobs/{digest}" }),
    0.25,
  );
  assert.equal(
    value(samples, "kraken_tracing_sampling_rate", { operation: 'we"ird\\op\n' }),
    1,
    "escaped label",
  );
  assert.equal(value(samples, "kraken_tracing_sampling_rate", { operation: "*" }), 0.1);
});

Deno.test("OpenMetrics when the scraper asks for it: counter families without _total, # EOF", async () => {
  const registry = new MetricsRegistry();
  registerTracingMetrics(registry, new TracingMetrics());
  const plain = metricsExposition([registry], "text/plain");
  assert.match(plain.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
  assert.match(await plain.text(), /^# TYPE kraken_tracing_spans_created_total counter$/m);
  const open = metricsExposition(
    [registry],
    "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4",
  );
  assert.match(
    open.headers.get("content-type")!,
    /^application\/openmetrics-text; version=1\.0\.0/,
  );
  const text = await open.text();
  assert.match(text, /^# TYPE kraken_tracing_spans_created counter$/m);
  assert.match(text, /^kraken_tracing_spans_created_total 0$/m);
  assert.ok(text.endsWith("\n# EOF\n"), "ends with # EOF");
});

Deno.test("Accept negotiation: q=0 refuses OpenMetrics", () => {
  assert.equal(acceptsOpenMetrics(undefined), false);
  assert.equal(acceptsOpenMetrics("*/*"), false);
  assert.equal(acceptsOpenMetrics("application/openmetrics-text"), true);
  assert.equal(acceptsOpenMetrics("application/openmetrics-text; q=0"), false);
});
