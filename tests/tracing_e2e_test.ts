/**
 * The foundation's end-to-end tracing tests: two processes that use `tracing/` as roles do call
 * each other over real HTTP and export to a real Jaeger; and with the collector down or hanging,
 * requests still succeed at once while the export queue stays bounded.
 */

import assert from "node:assert/strict";
import { startJaeger } from "./harness/jaeger.ts";
import { freePorts, ProcessGroup, waitForHttp } from "./harness/procs.ts";
import { waitFor } from "./harness/wait.ts";
import { assertTree, formatTree } from "./harness/trace_tree.ts";
import type { TracingStats } from "../tracing/mod.ts";

const FIXTURE = new URL("./fixtures/traced_service.ts", import.meta.url).pathname;

// Tests must not lose spans to a busy machine: the host's load (at most 1) never opens the breaker.
const SAFEGUARDS = { load_threshold: 1 };

function tracingJson(extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    enabled: true,
    sampling: { default_rate: 1 },
    export: { batch_timeout: "100ms" },
    safeguards: SAFEGUARDS,
    ...extra,
  });
}

Deno.test("tracing: one trace across two processes in real Jaeger", async () => {
  await using jaeger = await startJaeger();
  await using group = new ProcessGroup();
  const [portA, portB] = freePorts(2);
  const env = { OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpHttpEndpoint };
  const b = group.spawnDeno(
    FIXTURE,
    ["--name=b", `--port=${portB}`, `--tracing=${tracingJson()}`],
    {
      env,
    },
  );
  const a = group.spawnDeno(FIXTURE, [
    "--name=a",
    `--port=${portA}`,
    `--downstream=http://127.0.0.1:${portB}`,
    `--tracing=${tracingJson()}`,
  ], { env });
  await waitForHttp(`http://127.0.0.1:${portB}/stats`, { process: b });
  await waitForHttp(`http://127.0.0.1:${portA}/stats`, { process: a });

  // The caller starts the trace, so we know its id.
  const traceId = crypto.randomUUID().replaceAll("-", "");
  const callerSpan = "1122334455667788";
  const res = await fetch(`http://127.0.0.1:${portA}/hello/world`, {
    headers: { traceparent: `00-${traceId}-${callerSpan}-01` },
  });
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "hello via echo world");

  const tree = await jaeger.waitForTrace(traceId, { minSpans: 5, timeoutMs: 15_000 });
  assert.equal(tree.roots.length, 1, formatTree(tree));
  assert.equal(tree.roots[0].parentSpanId, callerSpan);
  assertTree(tree, {
    name: "GET /hello/{name}",
    service: "kraken-fixture-a",
    kind: "server",
    attrs: {
      "http.request.method": "GET",
      "http.route": "/hello/{name}",
      "url.path": "/hello/world",
      "http.response.status_code": 200,
    },
    children: [{
      name: "fixture.work",
      service: "kraken-fixture-a",
      attrs: { "fixture.name": "world" },
      children: [{
        name: "GET /echo/{name}",
        service: "kraken-fixture-a",
        kind: "client",
        attrs: { "server.port": portB, "http.response.status_code": 200 },
        children: [{
          name: "GET /echo/{name}",
          service: "kraken-fixture-b",
          kind: "server",
          attrs: { "http.route": "/echo/{name}" },
          children: [{ name: "fixture.echo", service: "kraken-fixture-b" }],
        }],
      }],
    }],
  });

  // Logs carry the ids of the span active when they were written; other headers pass untouched.
  const echoLine = b.log().split("\n").find((l) => l.includes('"msg":"echo"'));
  assert.ok(echoLine, b.log());
  const parsed = JSON.parse(echoLine);
  assert.equal(parsed.trace_id, traceId);
  assert.equal(parsed.custom, "keep-me");
  const echoSpan = tree.spans.find((s) => s.name === "fixture.echo");
  assert.equal(parsed.span_id, echoSpan?.spanId);

  // A server error becomes an ERROR span with the exception recorded.
  const errTrace = crypto.randomUUID().replaceAll("-", "");
  const fail = await fetch(`http://127.0.0.1:${portA}/fail`, {
    headers: { traceparent: `00-${errTrace}-${callerSpan}-01` },
  });
  assert.equal(fail.status, 500);
  assert.equal(await fail.text(), "deliberate failure");
  const errTree = await jaeger.waitForTrace(errTrace, { minSpans: 1 });
  assertTree(errTree, {
    name: "GET /fail",
    status: "error",
    attrs: { "http.response.status_code": 500, "error.type": "500" },
  });

  // A malformed traceparent starts a new root instead of failing the request.
  const bad = await fetch(`http://127.0.0.1:${portA}/hello/x`, {
    headers: { traceparent: "00-not-a-trace-01" },
  });
  assert.equal(bad.status, 200);
  await bad.body?.cancel();
});

/** The fixture's `/stats`: the tracing counters (and memory figures, unused here). */
async function stats(port: number): Promise<TracingStats> {
  const res = await fetch(`http://127.0.0.1:${port}/stats`);
  return await res.json();
}

Deno.test("tracing: collector down or hanging — requests never wait, queue stays bounded", async () => {
  await using group = new ProcessGroup();
  // A "collector" that accepts connections and never answers.
  const hanging = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of hanging) held.push(conn);
    } catch { /* listener closed */ }
  })();
  const [downPort, portDown, portHang] = freePorts(3);
  const maxQueue = 64, maxBatch = 16, rounds = 20, perRound = 25;
  const queue = {
    max_queue_size: maxQueue,
    max_batch_size: maxBatch,
    batch_timeout: "50ms",
    timeout: "30s",
  };
  const targets = [
    { name: "down", port: portDown, endpoint: `http://127.0.0.1:${downPort}` },
    { name: "hanging", port: portHang, endpoint: `http://127.0.0.1:${hanging.addr.port}` },
  ];
  try {
    for (const t of targets) {
      const p = group.spawnDeno(FIXTURE, [
        "--name=quiet",
        `--port=${t.port}`,
        `--tracing=${tracingJson({ endpoint: t.endpoint, export: queue })}`,
      ]);
      await waitForHttp(`http://127.0.0.1:${t.port}/stats`, { process: p });
    }
    for (const t of targets) {
      const started = performance.now();
      for (let round = 0; round < rounds; round++) {
        const batch = await Promise.all(
          Array.from({ length: perRound }, () => fetch(`http://127.0.0.1:${t.port}/hello/q`)),
        );
        for (const r of batch) {
          assert.equal(r.status, 200);
          await r.body?.cancel();
        }
      }
      const elapsed = performance.now() - started;
      // 500 requests produce 1000 spans; an export attempt would take up to 30 s (the timeout).
      assert.ok(elapsed < 20_000, `requests waited on the exporter: ${elapsed} ms`);
      const s = await stats(t.port);
      const at = `${t.name} collector: ${JSON.stringify(s)}`;
      // Whenever the breaker opened (host load cannot open it, but its export and queue rules
      // depend on how fast exports fail against how fast requests come), every span start is
      // recorded or shed, and counted.
      assert.ok(s.spansCreated >= 2 * rounds * perRound, at);
      assert.equal(s.spansCreated, s.spansSampled + s.droppedBreaker + s.droppedRateLimit, at);
      assert.ok(s.queueSize <= maxQueue, `queue exceeded its bound: ${at}`);
      assert.equal(s.exported, 0, at);
      // Every recorded span is still queued, in an export (the one running, or a failed one, which
      // exportErrors counts), or dropped and counted. Still ending: at most the last round's server
      // spans (their bodies may finish after the client has them) and this /stats request's.
      const inExports = maxBatch * (s.exportErrors + 1);
      assert.ok(
        s.spansSampled <= s.queueSize + inExports + s.droppedQueueFull + perRound + 1,
        `recorded spans unaccounted for: ${at}`,
      );
      if (t.name === "down") {
        // Every export fails (connection refused), and the queued spans keep the exporter going
        // until five in a row have failed, which opens the breaker.
        await waitFor("the breaker to open on a collector that is down", async () => {
          const now = await stats(t.port);
          return now.breaker === "open" ? now : undefined;
        }, { timeoutMs: 20_000, detail: () => at });
      } else {
        // Nothing leaves while the first export hangs for its 30 s: the queue must fill and drop.
        // (The breaker opens here only after polls that saw drops.)
        assert.ok(s.droppedQueueFull > 0, `no drops counted: ${at}`);
      }
    }
  } finally {
    await group.stopAll();
    hanging.close();
    await accepting;
    for (const c of held) c.close();
  }
});

Deno.test("tracing: SIGTERM on a role flushes spans still queued for export", async () => {
  await using jaeger = await startJaeger();
  await using group = new ProcessGroup();
  const dir = await Deno.makeTempDir({ prefix: "kraken-flush-" });
  try {
    const [port] = freePorts(1);
    const config = `${dir}/origin.yaml`;
    await Deno.writeTextFile(
      config,
      JSON.stringify({
        listen: { host: "127.0.0.1", port },
        storage: { root: "store" },
        peer: { host: "127.0.0.1", port: 0 },
        backends: [{ namespace: ".*", backend: { file: { root: "backend" } } }],
        tracing: {
          enabled: true,
          endpoint: jaeger.otlpHttpEndpoint,
          sampling: { default_rate: 1 },
          safeguards: SAFEGUARDS,
          // Nothing leaves before shutdown: only the flush on SIGTERM can export the span.
          export: { batch_timeout: "10m" },
        },
      }),
    );
    const origin = group.spawnDeno(
      new URL("../main.ts", import.meta.url).pathname,
      ["--role=origin", `--config=${config}`],
    );
    await waitForHttp(`http://127.0.0.1:${port}/health`, { process: origin });
    const traceId = crypto.randomUUID().replaceAll("-", "");
    const res = await fetch(`http://127.0.0.1:${port}/blobs/sha256:${"ab".repeat(32)}/locations`, {
      headers: { traceparent: `00-${traceId}-1122334455667788-01` },
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    // The span has ended and waits in the export queue, and nothing was exported: the process's
    // own counters say so (no sleep), and Jaeger agrees.
    const metric = (text: string, name: string) =>
      Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
    const metrics = await waitFor("the span in the export queue", async () => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return metric(text, "kraken_tracing_queue_size") >= 1 ? text : undefined;
    });
    assert.equal(metric(metrics, "kraken_tracing_spans_exported_total"), 0, metrics);
    assert.equal(await jaeger.getTrace(traceId), undefined, "exported before shutdown");
    origin.kill("SIGTERM");
    const status = await origin.stopped;
    assert.equal(status.code, 0);
    const tree = await jaeger.waitForTrace(traceId, { minSpans: 1 });
    assert.equal(tree.spans[0].name, "GET /blobs/{digest}/locations");
  } finally {
    await group.stopAll();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
