import assert from "node:assert/strict";
import { MetricsRegistry } from "./registry.ts";

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
