import assert from "node:assert/strict";
import { ManualTimers } from "../common/timers.ts";
import { Router } from "../http/router.ts";
import { HttpMetrics } from "./http_metrics.ts";
import { MetricsRegistry } from "./metrics/registry.ts";
import { collectSpans } from "./_test_util.ts";

function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line === undefined ? undefined : Number(line.split(" ")[1]);
}

function redRouter(registry: MetricsRegistry, timers: ManualTimers) {
  const router = new Router().use(new HttpMetrics(registry, { timers }).middleware());
  router.get("/blobs/{digest}", () => {
    timers.advance(30);
    return new Response("blob");
  });
  router.get("/fail", () => {
    throw new Error("boom");
  });
  return router;
}

Deno.test("RED: requests by route template and status class, latency until the body is sent", async () => {
  const registry = new MetricsRegistry();
  const timers = new ManualTimers();
  const router = redRouter(registry, timers);
  const ok = await router.handle(new Request("http://h/blobs/sha256:abc"));
  const inFlight = 'kraken_http_requests_in_flight{method="GET",route="/blobs/{digest}"}';
  assert.equal(sample(registry.render(), inFlight), 1, "in flight while the body is unsent");
  timers.advance(470);
  assert.equal(await ok.text(), "blob");
  await (await router.handle(new Request("http://h/fail"))).text();
  await (await router.handle(new Request("http://h/nothing/here"))).text();
  await (await router.handle(new Request("http://h/blobs/x", { method: "DELETE" }))).text();
  const text = registry.render();
  assert.equal(sample(text, inFlight), 0);
  assert.equal(
    sample(
      text,
      'kraken_http_requests_total{method="GET",route="/blobs/{digest}",status_class="2xx"}',
    ),
    1,
  );
  assert.equal(
    sample(text, 'kraken_http_requests_total{method="GET",route="/fail",status_class="5xx"}'),
    1,
  );
  assert.equal(
    sample(text, 'kraken_http_requests_total{method="GET",route="unmatched",status_class="4xx"}'),
    1,
    "no raw path as a label",
  );
  assert.equal(
    sample(
      text,
      'kraken_http_requests_total{method="DELETE",route="unmatched",status_class="4xx"}',
    ),
    1,
    "405 counts as unmatched",
  );
  assert.doesNotMatch(text, /sha256:abc|nothing\/here/);
  const bucket = (le: string) =>
    sample(
      text,
      `kraken_http_request_duration_seconds_bucket{method="GET",route="/blobs/{digest}",le="${le}"}`,
    );
  assert.equal(bucket("0.25"), 0, "the body took 500 ms in all");
  assert.equal(bucket("0.5"), 1);
  assert.equal(
    sample(text, 'kraken_http_request_duration_seconds_sum{method="GET",route="/blobs/{digest}"}'),
    0.5,
  );
});

Deno.test("RED inside the server span: a sampled request's trace id is the bucket's exemplar", async () => {
  const { runtime } = collectSpans("test");
  try {
    const router = new Router().use(runtime.serverMiddleware());
    router.get("/health", () => new Response("OK"));
    router.get("/metrics", runtime.metricsHandler);
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const res = await router.handle(
      new Request("http://h/health", {
        headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
      }),
    );
    await res.text();
    const open = await (await router.handle(
      new Request("http://h/metrics", { headers: { accept: "application/openmetrics-text" } }),
    )).text();
    assert.match(
      open,
      new RegExp(
        `^kraken_http_request_duration_seconds_bucket\\{method="GET",route="/health",le="[^"]+"\\} 1 # \\{trace_id="${traceId}"\\} `,
        "m",
      ),
    );
    const plain = await (await router.handle(new Request("http://h/metrics"))).text();
    assert.doesNotMatch(plain, /trace_id/);
    assert.match(
      plain,
      /^kraken_http_requests_total\{method="GET",route="\/health",status_class="2xx"\} 1$/m,
    );
  } finally {
    await runtime.shutdown();
  }
});
