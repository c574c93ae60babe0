import assert from "node:assert/strict";
import { defaultStatsdName, MetricsRegistry } from "./registry.ts";

Deno.test("role metrics: counters and gauges render as Prometheus text, one header per family", () => {
  const registry = new MetricsRegistry();
  assert.equal(registry.render(), "");
  const a = registry.counter("kraken_x_errors_total", "Errors.", { kind: "a" });
  const b = registry.counter("kraken_x_errors_total", "Errors.", { kind: 'b"\n' });
  a.inc();
  a.inc(2);
  b.inc();
  let up = 1;
  registry.gauge("kraken_x_up", "Up.", () => up);
  up = 0;
  assert.equal(
    registry.render(),
    [
      "# HELP kraken_x_errors_total Errors.",
      "# TYPE kraken_x_errors_total counter",
      'kraken_x_errors_total{kind="a"} 3',
      'kraken_x_errors_total{kind="b\\"\\n"} 1',
      "# HELP kraken_x_up Up.",
      "# TYPE kraken_x_up gauge",
      "kraken_x_up 0",
      "",
    ].join("\n"),
  );
});

Deno.test("role metrics: registering a series again keeps one series", () => {
  const registry = new MetricsRegistry();
  registry.counter("kraken_y_total", "Y.").inc();
  const again = registry.counter("kraken_y_total", "Y.");
  assert.equal(again.value, 1);
  registry.gauge("kraken_y_up", "Up.", () => 1);
  registry.gauge("kraken_y_up", "Up.", () => 0);
  assert.match(registry.render(), /^kraken_y_up 0$/m);
  assert.equal(registry.render().match(/^kraken_y_up /gm)?.length, 1);
  assert.throws(() => registry.gauge("kraken_y_total", "Y.", () => 1), /is a counter/);
  assert.throws(() => registry.counter("bad name", "x"), /bad metric name/);
  assert.throws(() => again.inc(-1), /cannot move/);
});

Deno.test("role metrics: an observed counter reads its value at each scrape", () => {
  const registry = new MetricsRegistry();
  let n = 0;
  registry.observedCounter("kraken_z_timeouts_total", "Z.", () => n, { backend: "b" });
  n = 4;
  assert.match(registry.render(), /^# TYPE kraken_z_timeouts_total counter$/m);
  assert.match(registry.render(), /^kraken_z_timeouts_total\{backend="b"\} 4$/m);
});

Deno.test("histograms: cumulative buckets, sum and count; exemplars only in OpenMetrics", () => {
  const registry = new MetricsRegistry();
  const h = registry.histogram("kraken_x_duration_seconds", "Time.", {
    buckets: [0.1, 1],
    labels: { route: "/a" },
  });
  h.observe(0.05, "0af7651916cd43dd8448eb211c80319c");
  h.observe(0.5, null);
  h.observe(3, "4bf92f3577b34da6a3ce929d0e0e4736");
  assert.equal(
    registry.histogram("kraken_x_duration_seconds", "Time.", {
      buckets: [5],
      labels: { route: "/a" },
    }),
    h,
    "registering again returns the same histogram",
  );
  const plain = registry.render();
  assert.match(plain, /^kraken_x_duration_seconds_bucket\{route="\/a",le="0\.1"\} 1$/m);
  assert.match(plain, /^kraken_x_duration_seconds_bucket\{route="\/a",le="1"\} 2$/m);
  assert.match(plain, /^kraken_x_duration_seconds_bucket\{route="\/a",le="\+Inf"\} 3$/m);
  assert.match(plain, /^kraken_x_duration_seconds_sum\{route="\/a"\} 3\.55$/m);
  assert.match(plain, /^kraken_x_duration_seconds_count\{route="\/a"\} 3$/m);
  assert.doesNotMatch(plain, /trace_id/);
  const open = registry.render("openmetrics");
  assert.match(
    open,
    /^kraken_x_duration_seconds_bucket\{route="\/a",le="0\.1"\} 1 # \{trace_id="0af7651916cd43dd8448eb211c80319c"\} 0\.05 \d+\.\d{3}$/m,
  );
  assert.match(open, /^kraken_x_duration_seconds_bucket\{route="\/a",le="1"\} 2$/m);
  assert.match(
    open,
    /^kraken_x_duration_seconds_bucket\{route="\/a",le="\+Inf"\} 3 # \{trace_id="4bf92f3577b34da6a3ce929d0e0e4736"\} 3 /m,
  );
});

Deno.test("names: counters end in _total, le is reserved, kinds do not change", () => {
  const registry = new MetricsRegistry();
  assert.throws(() => registry.counter("kraken_x_errors", "E."), /_total/);
  assert.throws(() => registry.gauge("kraken_x_up", "U.", () => 1, { le: "1" }), /label/);
  registry.gauge("kraken_x_size_bytes", "S.", () => 1);
  assert.throws(() => registry.histogram("kraken_x_size_bytes", "S.", { buckets: [1] }), /gauge/);
});

Deno.test("statsd names: upstream's when given, else derived from the Prometheus name", () => {
  assert.equal(defaultStatsdName("kraken_http_requests_total", "counter"), "http.requests");
  assert.equal(
    defaultStatsdName("kraken_agent_download_duration_seconds", "histogram"),
    "agent.download_duration",
  );
  const registry = new MetricsRegistry();
  registry.counter("kraken_scheduler_downloads_started_total", "S.", {}, {
    statsd: "download_requests",
  });
  assert.deepEqual([...registry.series()].map((s) => s.statsd), ["download_requests"]);
});
