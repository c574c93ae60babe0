import assert from "node:assert/strict";
import dgram from "node:dgram";
import { registerTracingMetrics, TracingMetrics } from "./metrics.ts";
import { MetricsRegistry } from "./registry.ts";
import { StatsdEmitter } from "./statsd.ts";
import { ManualTimers } from "../../common/timers.ts";

/** A registry holding the tracing self-metrics `m`. */
function tracingRegistry(m: TracingMetrics): MetricsRegistry {
  const registry = new MetricsRegistry();
  registerTracingMetrics(registry, m);
  return registry;
}

/** A UDP socket that collects statsd lines. */
async function receiver(): Promise<
  { port: number; sizes: number[]; next(n: number): Promise<string[]>; close(): Promise<void> }
> {
  const socket = dgram.createSocket("udp4");
  const lines: string[] = [];
  const sizes: number[] = [];
  let waiter: { n: number; resolve: () => void } | undefined;
  socket.on("message", (msg: Uint8Array) => {
    sizes.push(msg.length);
    lines.push(...new TextDecoder().decode(msg).split("\n"));
    if (waiter && lines.length >= waiter.n) waiter.resolve();
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
  return {
    port: socket.address().port,
    sizes,
    next(n: number) {
      if (lines.length >= n) return Promise.resolve(lines.splice(0));
      return new Promise<string[]>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`timed out with ${lines.length} of ${n} lines`)),
          2000,
        );
        waiter = {
          n,
          resolve: () => {
            clearTimeout(timer);
            waiter = undefined;
            resolve(lines.splice(0));
          },
        };
      });
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

Deno.test("plain statsd: counter deltas, gauges and timers arrive over UDP", async () => {
  const rx = await receiver();
  const m = new TracingMetrics({
    queueSize: () => 12,
    breakerState: () => 2,
    samplingRates: () => [["GET /v2/{name}/blobs/{digest}", 0.05]],
  });
  const emitter = new StatsdEmitter([tracingRegistry(m)], {
    addr: `127.0.0.1:${rx.port}`,
    prefix: "kraken_agent",
  });
  try {
    m.spansCreated = 10;
    m.spansSampled = 2;
    m.droppedQueueFull = 1;
    m.onExport(2, true, 41.5);
    await emitter.flush();
    const first = await rx.next(8);
    assert.deepEqual(first.sort(), [
      "kraken_agent.tracing.breaker_state:2|g",
      "kraken_agent.tracing.export_latency:41.5|ms",
      "kraken_agent.tracing.queue_size:12|g",
      "kraken_agent.tracing.sampling_rate.GET__v2__name__blobs__digest_:0.05|g",
      "kraken_agent.tracing.spans_created:10|c",
      "kraken_agent.tracing.spans_dropped.queue_full:1|c",
      "kraken_agent.tracing.spans_exported:2|c",
      "kraken_agent.tracing.spans_sampled:2|c",
    ]);
    m.spansCreated += 5;
    await emitter.flush();
    const second = await rx.next(4);
    assert.ok(second.includes("kraken_agent.tracing.spans_created:5|c"), "counters are deltas");
    assert.ok(!second.some((l) => l.includes("spans_sampled")), "unchanged counters are skipped");
  } finally {
    await emitter.close();
    await rx.close();
  }
});

Deno.test("role metrics go out with the tracing ones: upstream names, folded labels, timers in ms", async () => {
  const rx = await receiver();
  const role = new MetricsRegistry();
  const emitter = new StatsdEmitter([tracingRegistry(new TracingMetrics()), role], {
    addr: `127.0.0.1:${rx.port}`,
    prefix: "kraken_agent",
  });
  try {
    role.counter("kraken_scheduler_downloads_started_total", "Started.", {}, {
      statsd: "download_requests",
    }).inc(2);
    role.counter("kraken_http_requests_total", "Requests.", {
      method: "GET",
      route: "/tags/{tag}",
      status_class: "2xx",
    }).inc();
    role.histogram("kraken_http_request_duration_seconds", "Latency.", {
      buckets: [0.1, 1],
      labels: { method: "GET", route: "/health" },
      statsd: "latency",
    }).observe(0.25, null);
    role.histogram("kraken_storage_blob_size_bytes", "Sizes.", { buckets: [1024] }).observe(
      4096,
      null,
    );
    await emitter.flush();
    const lines = await rx.next(6);
    for (
      const want of [
        "kraken_agent.download_requests:2|c",
        "kraken_agent.http.requests.GET._tags__tag_.2xx:1|c",
        "kraken_agent.latency.GET._health:250|ms",
        "kraken_agent.storage.blob_size:4096|h",
      ]
    ) {
      assert.ok(lines.includes(want), `${want} in ${lines.join(" ")}`);
    }
    await emitter.flush();
    const again = await rx.next(2);
    assert.ok(!again.some((l) => l.includes("latency")), "histogram samples are sent once");
  } finally {
    await emitter.close();
    await rx.close();
  }
});

Deno.test("dogstatsd tags and packet packing", async () => {
  const rx = await receiver();
  const timers = new ManualTimers();
  const m = new TracingMetrics({
    samplingRates: () => Array.from({ length: 30 }, (_, i) => [`op|${i}`, 0.5] as const),
  });
  const emitter = new StatsdEmitter([tracingRegistry(m)], {
    addr: `127.0.0.1:${rx.port}`,
    tagFormat: "dogstatsd",
    tags: { service: "kraken-agent" },
    maxPacketBytes: 200,
    flushIntervalMs: 1000,
    timers,
  });
  try {
    m.droppedRateLimit = 3;
    emitter.start();
    timers.advance(1000);
    const lines = await rx.next(33);
    assert.ok(
      lines.includes("kraken.tracing.spans_dropped:3|c|#reason:rate_limit,service:kraken-agent"),
    );
    assert.ok(lines.includes("kraken.tracing.queue_size:0|g|#service:kraken-agent"));
    assert.ok(
      lines.includes("kraken.tracing.sampling_rate:0.5|g|#operation:op_7,service:kraken-agent"),
    );
    assert.equal(lines.length, 33, "3 fixed lines + 30 rates");
    assert.ok(rx.sizes.length > 1 && rx.sizes.every((n) => n <= 200), `datagrams ${rx.sizes}`);
  } finally {
    await emitter.close();
    assert.equal(timers.pending, 0);
    await rx.close();
  }
});

Deno.test("a bad address is refused up front; send errors are logged at a bounded rate", async () => {
  assert.throws(() => new StatsdEmitter([], { addr: "localhost" }), /host:port/);
  const warnings: string[] = [];
  const emitter = new StatsdEmitter([tracingRegistry(new TracingMetrics())], {
    addr: "statsd.invalid:8125",
    logger: { warn: (msg) => warnings.push(msg) },
    timers: new ManualTimers(),
  });
  await emitter.flush();
  await emitter.flush();
  await emitter.close();
  assert.deepEqual(warnings, ["statsd send failed"], "logged once, not per packet");
});
