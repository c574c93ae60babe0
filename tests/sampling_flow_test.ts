/**
 * Sampling, trust boundary, circuit breaker and self-metrics across real processes: a service that
 * uses `tracing/` as roles do, a real Jaeger counting what arrives, a UDP socket reading statsd.
 */

import assert from "node:assert/strict";
import dgram from "node:dgram";
import { startDownloadCluster } from "./harness/cluster.ts";
import { startJaeger } from "./harness/jaeger.ts";
import { freePorts, ProcessGroup, waitForHttp } from "./harness/procs.ts";
import { waitFor } from "./harness/wait.ts";
import { ATTR } from "../tracing/names.ts";

const FIXTURE = new URL("./fixtures/traced_service.ts", import.meta.url).pathname;
const MAIN = new URL("../main.ts", import.meta.url).pathname;

function start(
  group: ProcessGroup,
  port: number,
  tracing: Record<string, unknown>,
  extra: string[] = [],
) {
  const p = group.spawnDeno(FIXTURE, [
    "--name=sampling",
    `--port=${port}`,
    `--tracing=${JSON.stringify(tracing)}`,
    ...extra,
  ]);
  return waitForHttp(`http://127.0.0.1:${port}/stats`, { process: p }).then(() => p);
}

async function get(url: string, headers?: HeadersInit): Promise<number> {
  const res = await fetch(url, { headers });
  await res.body?.cancel();
  return res.status;
}

async function stats(port: number): Promise<Record<string, number | string>> {
  return await (await fetch(`http://127.0.0.1:${port}/stats`)).json();
}

function traceId(i: number): string {
  return (0x1000 + i).toString(16).padStart(8, "0") + crypto.randomUUID().replaceAll("-", "")
    .slice(8);
}

async function countTraces(
  jaeger: Awaited<ReturnType<typeof startJaeger>>,
  operation: string,
): Promise<number> {
  const traces = await jaeger.findTraces({
    service: "kraken-fixture-sampling",
    operation,
    limit: 5000,
  });
  return traces.length;
}

async function settledCount(
  jaeger: Awaited<ReturnType<typeof startJaeger>>,
  operation: string,
): Promise<number> {
  let last = -1;
  let n = await countTraces(jaeger, operation);
  for (let i = 0; i < 30 && n !== last; i++) {
    await new Promise((r) => setTimeout(r, 300));
    last = n;
    n = await countTraces(jaeger, operation);
  }
  return n;
}

Deno.test("sampling: 10% default and a 100% path rule, counted in Jaeger", async () => {
  await using jaeger = await startJaeger();
  await using group = new ProcessGroup();
  const [port] = freePorts(1);
  await start(group, port, {
    enabled: true,
    endpoint: jaeger.otlpHttpEndpoint,
    export: { batch_timeout: "100ms" },
    sampling: { default_rate: 0.1, rules: [{ match: { path_prefix: "/echo/*" }, rate: 1 }] },
    safeguards: { load_threshold: 1 },
  });
  const N = 600;
  for (let i = 0; i < N; i += 50) {
    await Promise.all(
      Array.from({ length: 50 }, (_, j) => get(`http://127.0.0.1:${port}/hello/h${i + j}`)),
    );
  }
  for (let i = 0; i < 40; i++) assert.equal(await get(`http://127.0.0.1:${port}/echo/e${i}`), 200);
  const echo = await settledCount(jaeger, "GET /echo/{name}");
  const hello = await settledCount(jaeger, "GET /hello/{name}");
  assert.equal(echo, 40, "the 100% rule must sample every /echo request");
  // Binomial(600, 0.1): mean 60, sd ≈ 7.3; ±4.5 sd.
  assert.ok(hello >= 27 && hello <= 93, `10% of ${N} should be about 60, got ${hello}`);
});

Deno.test("sampling: /health is never traced on any role; a control request in the same window is", async () => {
  await using jaeger = await startJaeger();
  await using group = new ProcessGroup();
  const dir = await Deno.makeTempDir({ prefix: "kraken-health-" });
  try {
    // Every role samples 100% of what no built-in rule excludes.
    const cluster = await startDownloadCluster({
      dir,
      group,
      otlpEndpoint: jaeger.otlpHttpEndpoint,
      origins: 1,
      agents: 1,
    });
    const roles: [string, string][] = [
      ["kraken-origin", cluster.origins[0].addr],
      ["kraken-build-index", cluster.buildIndex.addr],
      ["kraken-proxy", cluster.proxy.addr],
      ["kraken-tracker", cluster.tracker.addr],
      ["kraken-agent", cluster.agents[0].addr],
    ];
    for (const [service, addr] of roles) {
      for (let i = 0; i < 5; i++) assert.equal(await get(`http://${addr}/health`), 200);
      // Sent after the health checks (and their spans, had there been any, ended), so its span is
      // exported in the same batch as theirs or a later one: once it is in Jaeger, theirs would be.
      const control = `/control/${crypto.randomUUID()}`;
      await get(`http://${addr}${control}`);
      const spans = await waitFor(`${service}'s span of GET ${control}`, async () => {
        const all = (await jaeger.findTraces({ service, limit: 1000 })).flatMap((t) => t.spans);
        return all.some((s) => s.attributes["url.path"] === control) ? all : undefined;
      }, { timeoutMs: 20_000, intervalMs: 200 });
      const health = spans.filter((s) =>
        s.attributes["url.path"] === "/health" || s.name.includes("/health")
      );
      assert.deepEqual(health.map((s) => s.name), [], `${service} traced /health`);
    }
  } finally {
    await group.stopAll();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sampling: a flood of client-forced samples at the edge stays under the cap", async () => {
  await using jaeger = await startJaeger();
  await using group = new ProcessGroup();
  const [port] = freePorts(1);
  await start(group, port, {
    enabled: true,
    endpoint: jaeger.otlpHttpEndpoint,
    export: { batch_timeout: "100ms" },
    sampling: { default_rate: 0, trust: { client_sampled_rate_limit: 5 } },
    safeguards: { load_threshold: 1 },
  }, ["--edge=true"]);
  const started = performance.now();
  const ids: string[] = [];
  for (let i = 0; i < 400; i += 50) {
    await Promise.all(Array.from({ length: 50 }, (_, j) => {
      const id = traceId(i + j);
      ids.push(id);
      return get(`http://127.0.0.1:${port}/hello/f`, {
        traceparent: `00-${id}-00f067aa0ba902b7-01`,
      });
    }));
  }
  const seconds = (performance.now() - started) / 1000;
  const sampled = await settledCount(jaeger, "GET /hello/{name}");
  // Token bucket: a burst of 5, then 5 per second.
  const cap = 5 + Math.ceil(5 * seconds) + 1;
  assert.ok(sampled >= 1, "some client-forced traces must pass (the caller can correlate)");
  assert.ok(
    sampled <= cap,
    `${sampled} client-forced traces in ${seconds.toFixed(1)} s; cap ${cap}`,
  );
  // What was sampled kept the client's trace id.
  const traces = await jaeger.findTraces({ service: "kraken-fixture-sampling", limit: 100 });
  for (const t of traces) assert.ok(ids.includes(t.traceId), `unexpected trace id ${t.traceId}`);
  const forced = traces.flatMap((t) => t.spans).filter((s) =>
    s.attributes[ATTR.samplingClientForced] === true
  );
  assert.equal(forced.length, traces.length);
});

Deno.test("safeguards: Jaeger down opens the breaker, requests keep flowing; Jaeger back closes it", async () => {
  await using jaeger = await startJaeger();
  await using group = new ProcessGroup();
  const [port] = freePorts(1);
  const service = await start(group, port, {
    enabled: true,
    endpoint: jaeger.otlpHttpEndpoint,
    export: { batch_timeout: "50ms", retry_enabled: false, timeout: "2s" },
    sampling: { default_rate: 1 },
    safeguards: {
      load_threshold: 1,
      export_failure_threshold: 2,
      cooldown_duration: "1s",
      load_poll_interval: "100ms",
    },
  });
  const base = `http://127.0.0.1:${port}`;
  assert.equal(await get(`${base}/hello/before`), 200);
  await jaeger.stop();
  let opened = false;
  const slowest = { ms: 0 };
  for (let i = 0; i < 100 && !opened; i++) {
    const t0 = performance.now();
    assert.equal(await get(`${base}/hello/down${i}`), 200);
    slowest.ms = Math.max(slowest.ms, performance.now() - t0);
    opened = (await stats(port)).breaker === "open";
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(opened, `breaker never opened: ${JSON.stringify(await stats(port))}`);
  // Requests do not wait on the exporter (its timeout is 2 s).
  assert.ok(slowest.ms < 1500, `a request took ${slowest.ms} ms while the collector was down`);
  const whileOpen = await stats(port);
  for (let i = 0; i < 20; i++) assert.equal(await get(`${base}/hello/open${i}`), 200);
  assert.ok(
    Number((await stats(port)).droppedBreaker) > Number(whileOpen.droppedBreaker),
    "spans were not shed while the breaker was open",
  );
  // Context still passes through an open breaker: the handler runs in the caller's trace, as its
  // log line shows.
  const through = traceId(3);
  assert.equal(
    await get(`${base}/hello/through`, { traceparent: `00-${through}-00f067aa0ba902b7-01` }),
    200,
  );
  const line = service.log().split("\n").find((l) => l.includes('"name":"through"'));
  assert.ok(line, service.log());
  assert.equal(JSON.parse(line).trace_id, through);
  await jaeger.restart();
  let closed = false;
  for (let i = 0; i < 100 && !closed; i++) {
    assert.equal(await get(`${base}/hello/back${i}`), 200);
    closed = (await stats(port)).breaker === "closed";
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(closed, `breaker never closed: ${JSON.stringify(await stats(port))}`);
  const id = traceId(7);
  assert.equal(
    await get(`${base}/hello/after`, { traceparent: `00-${id}-00f067aa0ba902b7-01` }),
    200,
  );
  const tree = await jaeger.waitForTrace(id, { minSpans: 2, timeoutMs: 10_000 });
  assert.equal(tree.roots[0].name, "GET /hello/{name}");
});

// Times the main thread of `pid` went to sleep and was woken (its voluntary context switches).
async function mainThreadWakeups(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/task/${pid}/status`);
  const m = /^voluntary_ctxt_switches:\s+(\d+)$/m.exec(status);
  assert.ok(m, status);
  return Number(m[1]);
}

Deno.test("safeguards: an idle traced tracker is woken no more often than an untraced one", async () => {
  await using group = new ProcessGroup();
  const dir = await Deno.makeTempDir({ prefix: "kraken-idle-" });
  const [offPort, onPort, sinkPort, originPort] = freePorts(4);
  const trackers = [];
  for (
    const [name, port, tracing] of [
      ["off", offPort, { enabled: false }],
      // Default safeguards: the breaker reads the event-loop delay monitor. Nothing is exported
      // while idle, so the endpoint is never called.
      ["traced", onPort, { enabled: true, endpoint: `http://127.0.0.1:${sinkPort}` }],
    ] as const
  ) {
    const config = `${dir}/tracker-${name}.yaml`;
    await Deno.writeTextFile(
      config,
      JSON.stringify({
        listen: { host: "127.0.0.1", port },
        // Never asked while idle (no announce comes).
        origins: { hosts: [`127.0.0.1:${originPort}`] },
        peerstore: { type: "memory" },
        tracing,
      }),
    );
    const p = group.spawnDeno(MAIN, ["--role=tracker", `--config=${config}`], {
      name: `tracker-${name}`,
    });
    await waitForHttp(`http://127.0.0.1:${port}/health`, { process: p });
    trackers.push(p);
  }
  // Let start-up settle (the monitor sleeps after its first sample period without a span).
  await new Promise((r) => setTimeout(r, 1000));
  const before = await Promise.all(trackers.map((p) => mainThreadWakeups(p.pid)));
  await new Promise((r) => setTimeout(r, 3000));
  const after = await Promise.all(trackers.map((p) => mainThreadWakeups(p.pid)));
  const [off, traced] = after.map((n, i) => n - before[i]);
  // A 100 ms monitor that never sleeps wakes the traced tracker 30 more times in 3 s; what may
  // remain is the breaker's 1 s load poll and the export timer.
  assert.ok(traced <= off + 8, `idle wake-ups in 3 s: untraced ${off}, traced ${traced}`);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("safeguards: a loop blocked under requests opens the breaker for load, and it closes once they stop", async () => {
  await using group = new ProcessGroup();
  const [port, sinkPort] = freePorts(2);
  await start(group, port, {
    enabled: true,
    // Nothing is exported within the test (fewer spans than a batch, a long batch timeout): only
    // load moves the breaker.
    endpoint: `http://127.0.0.1:${sinkPort}`,
    export: { batch_timeout: "60s" },
    sampling: { default_rate: 1 },
    safeguards: {
      max_event_loop_delay: "50ms",
      cooldown_duration: "1s",
      load_poll_interval: "200ms",
    },
  });
  const base = `http://127.0.0.1:${port}`;
  // Idle first: the monitor is asleep and its reading is an idle loop's.
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await stats(port)).breaker, "closed");
  let opened = false;
  for (let i = 0; i < 40 && !opened; i++) {
    assert.equal(await get(`${base}/block/200`), 200);
    opened = (await stats(port)).breaker === "open";
  }
  assert.ok(opened, `breaker never opened for load: ${JSON.stringify(await stats(port))}`);
  let closed = false;
  for (let i = 0; i < 50 && !closed; i++) {
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await get(`${base}/hello/calm${i}`), 200);
    closed = (await stats(port)).breaker === "closed";
  }
  assert.ok(
    closed,
    `breaker never closed once the load stopped: ${JSON.stringify(await stats(port))}`,
  );
});

Deno.test("self-metrics: statsd packets and /metrics move with the traffic", async () => {
  await using jaeger = await startJaeger();
  await using group = new ProcessGroup();
  const socket = dgram.createSocket("udp4");
  const packets: string[] = [];
  socket.on("message", (msg: Uint8Array) => packets.push(new TextDecoder().decode(msg)));
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
  const udpPort = (socket.address() as { port: number }).port;
  try {
    const [port] = freePorts(1);
    await start(group, port, {
      enabled: true,
      endpoint: jaeger.otlpHttpEndpoint,
      export: { batch_timeout: "50ms" },
      sampling: { default_rate: 1 },
      safeguards: { load_threshold: 1 },
      statsd: {
        enabled: true,
        addr: `127.0.0.1:${udpPort}`,
        prefix: "kr",
        flush_interval: "100ms",
      },
    });
    const base = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 30; i++) assert.equal(await get(`${base}/hello/m${i}`), 200);
    let lines: string[] = [];
    const sum = (name: string) =>
      lines.filter((l) => l.startsWith(`kr.tracing.${name}:`))
        .reduce((acc, l) => acc + Number(l.split(":")[1].split("|")[0]), 0);
    for (let i = 0; i < 50; i++) {
      lines = packets.flatMap((p) => p.split("\n")).filter((l) => l !== "");
      if (sum("spans_created") >= 60 && sum("spans_exported") >= 60) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(sum("spans_created") >= 60, lines.join("\n"));
    assert.ok(sum("spans_sampled") >= 60, lines.join("\n"));
    assert.ok(sum("spans_exported") >= 60, lines.join("\n"));
    assert.ok(lines.some((l) => /^kr\.tracing\.breaker_state:0\|g$/.test(l)), lines.join("\n"));
    assert.ok(lines.some((l) => /^kr\.tracing\.queue_size:\d+\|g$/.test(l)), lines.join("\n"));

    const text = await (await fetch(`${base}/metrics`)).text();
    const value = (series: string) => {
      const line = text.split("\n").find((l) => l.startsWith(series + " "));
      assert.ok(line, `${series} missing from /metrics:\n${text}`);
      return Number(line.split(" ")[1]);
    };
    assert.ok(value("kraken_tracing_spans_created_total") >= 60);
    assert.ok(value("kraken_tracing_spans_exported_total") >= 60);
    assert.equal(value("kraken_tracing_breaker_state"), 0);
    assert.equal(value(`kraken_tracing_spans_dropped_total{reason="queue_full"}`), 0);
    assert.match(text, /# TYPE kraken_tracing_spans_created_total counter/);
  } finally {
    await group.stopAll();
    socket.close();
  }
});

/**
 * Starts a proxy process whose origin and build-index ports are closed, with `tracing` as its
 * `tracing:` block: an edge with nothing behind it, for tests of the tracing path alone.
 */
async function startLoneProxy(
  group: ProcessGroup,
  dir: string,
  tracing: Record<string, unknown>,
  env?: Record<string, string>,
) {
  const [port, deadOrigin, deadIndex] = freePorts(3);
  const configPath = `${dir}/proxy.yaml`;
  await Deno.writeTextFile(
    configPath,
    JSON.stringify({
      listen: { host: "127.0.0.1", port },
      storage: { root: `${dir}/store` },
      origin: { hosts: [`127.0.0.1:${deadOrigin}`] },
      build_index: { hosts: [`127.0.0.1:${deadIndex}`] },
      tracing,
    }),
  );
  const proxy = group.spawnDeno(MAIN, ["--role=proxy", `--config=${configPath}`], {
    name: "proxy",
    env,
  });
  const base = `http://127.0.0.1:${port}`;
  await waitForHttp(`${base}/health`, { process: proxy });
  return { proxy, base };
}

/** Reads `base`'s /metrics once; the result gives a series' value and fails when it is missing. */
async function readMetrics(base: string): Promise<(series: string) => number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return (series: string) => {
    const line = text.split("\n").find((l) => l.startsWith(series + " "));
    assert.ok(line, `${series} missing from /metrics:\n${text}`);
    return Number(line.split(" ")[1]);
  };
}

Deno.test("sampling: client-forced samples the edge limit refuses show as rate_limit drops on a proxy's /metrics", async () => {
  // The collector is not under test here: a sink that accepts every export keeps the breaker shut.
  const sink = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    await req.body?.cancel();
    return new Response("{}");
  });
  const dir = await Deno.makeTempDir({ prefix: "kraken-rate-limit-" });
  await using group = new ProcessGroup();
  try {
    const { base } = await startLoneProxy(group, dir, {
      enabled: true,
      endpoint: `http://127.0.0.1:${sink.addr.port}`,
      export: { batch_timeout: "100ms" },
      sampling: { default_rate: 0, trust: { client_sampled_rate_limit: 5 } },
      safeguards: { load_threshold: 1 },
    });
    const N = 400;
    const started = performance.now();
    for (let i = 0; i < N; i += 50) {
      await Promise.all(
        Array.from(
          { length: 50 },
          (_, j) => get(`${base}/v2/`, { traceparent: `00-${traceId(i + j)}-00f067aa0ba902b7-01` }),
        ),
      );
    }
    const seconds = (performance.now() - started) / 1000;
    const dropped = (await readMetrics(base))(
      `kraken_tracing_spans_dropped_total{reason="rate_limit"}`,
    );
    // default_rate 0: every request either took one of the limit's tokens or was dropped.
    const cap = 5 + Math.ceil(5 * seconds) + 1;
    assert.ok(dropped >= N - cap && dropped < N, `${dropped} of ${N} dropped, cap ${cap}`);
  } finally {
    await group.stopAll();
    await sink.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("safeguards: a collector that accepts and never answers opens a proxy's breaker within ~3 export timeouts; queue-full drops are logged at a bounded rate", async () => {
  // Accepts every connection and never answers.
  const hung = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of hung) held.push(conn);
    } catch {
      // closed at the end
    }
  })();
  const dir = await Deno.makeTempDir({ prefix: "kraken-hung-collector-" });
  await using group = new ProcessGroup();
  try {
    const TIMEOUT_MS = 1000;
    const { proxy, base } = await startLoneProxy(group, dir, {
      enabled: true,
      endpoint: `http://127.0.0.1:${(hung.addr as Deno.NetAddr).port}`,
      // The environment's OTEL_EXPORTER_OTLP_TRACES_TIMEOUT wins over this.
      export: { batch_timeout: "100ms", max_batch_size: 10, max_queue_size: 50, timeout: "60s" },
      sampling: { default_rate: 1 },
      // Only export timeouts may open it here: not load, not the full queue.
      safeguards: { load_threshold: 1, queue_full_threshold: 1000, cooldown_duration: "1m" },
    }, { OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: String(TIMEOUT_MS) });
    const metrics = () => readMetrics(base);
    const started = performance.now();
    let openedAfterMs: number | undefined;
    while (openedAfterMs === undefined && performance.now() - started < 30_000) {
      await Promise.all(Array.from({ length: 10 }, () => get(`${base}/v2/`)));
      if ((await metrics())("kraken_tracing_breaker_state") === 2) {
        openedAfterMs = performance.now() - started;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(openedAfterMs !== undefined, `breaker never opened:\n${proxy.log()}`);
    // Three timed-out exports, one after the other, plus the first batch interval and slack for a
    // busy machine; retries no longer multiply the timeout, and 5 failures are not needed.
    assert.ok(openedAfterMs < 3 * TIMEOUT_MS + 2500, `opened after ${openedAfterMs.toFixed(0)} ms`);
    const m = await metrics();
    assert.ok(m("kraken_tracing_export_timeouts_total") >= 3);
    assert.ok(m("kraken_tracing_export_errors_total") >= m("kraken_tracing_export_timeouts_total"));
    const dropped = m(`kraken_tracing_spans_dropped_total{reason="queue_full"}`);
    assert.ok(dropped > 0, "the queue of 50 filled while exports hung");

    const lines = proxy.log().split("\n").filter((l) => l.startsWith("{")).map((l) =>
      JSON.parse(l)
    );
    const opened = lines.filter((l) => l.msg.startsWith("tracing circuit breaker opened"));
    assert.equal(opened.length, 1);
    assert.equal(opened[0].reason, "export_timeouts");
    const failed = lines.filter((l) => l.msg === "span export failed");
    assert.ok(failed.length >= 1 && failed.length <= 2, JSON.stringify(failed));
    assert.equal(failed[0].timed_out, true);
    // Drops are logged at once, then at most every 30 s, each line with the running total.
    const full = lines.filter((l) => l.msg === "span export queue full: spans dropped");
    const seconds = (performance.now() - started) / 1000;
    assert.ok(full.length >= 1 && full.length <= 1 + Math.ceil(seconds / 30), JSON.stringify(full));
    assert.equal(full[0].max_queue_size, 50);
    assert.ok(full[0].dropped_total >= 1 && full.at(-1).dropped_total <= dropped);
    assert.ok(dropped > full.length, `${dropped} drops in ${full.length} lines`);
  } finally {
    await group.stopAll();
    hung.close();
    for (const c of held) c.close();
    await accepting;
    await Deno.remove(dir, { recursive: true });
  }
});
