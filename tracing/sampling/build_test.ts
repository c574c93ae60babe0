import assert from "node:assert/strict";
import { type Context, ROOT_CONTEXT, SpanKind, trace, TraceFlags } from "@opentelemetry/api";
import { type Sampler, type SamplingResult, TracerProvider } from "@opentelemetry/sdk-trace";
import { buildSampler, DEFAULT_OPERATION } from "./build.ts";
import { parseSamplingConfig } from "./config.ts";
import { isSampled } from "./results.ts";
import { ATTR } from "../names.ts";

function randomTraceId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function withParent(traceId: string, sampled: boolean, isRemote: boolean): Context {
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId,
    spanId: "00f067aa0ba902b7",
    traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
    isRemote,
  });
}

const EDGE = { "kraken.edge": true, "network.peer.address": "127.0.0.1", "url.path": "/v2/" };

/** An edge request of a new trace whose client sent `sampled=1`. */
function clientSampledEdge(sampler: Sampler): SamplingResult {
  const id = randomTraceId();
  return sampler.shouldSample(withParent(id, true, true), id, "GET", SpanKind.SERVER, EDGE, []);
}

Deno.test("built-in rules drop health checks; children inherit", () => {
  const sampler = buildSampler(parseSamplingConfig({ default_rate: 1 }));
  const id = randomTraceId();
  const root = (path: string) =>
    isSampled(
      sampler.shouldSample(ROOT_CONTEXT, id, "GET", SpanKind.SERVER, { "url.path": path }, []),
    );
  assert.equal(root("/health"), false);
  assert.equal(root("/readiness"), false);
  assert.equal(root("/metrics"), false);
  assert.equal(root("/v2/"), true);
  const child = (sampled: boolean) =>
    isSampled(
      sampler.shouldSample(
        withParent(id, sampled, false),
        id,
        "agent.cache_lookup",
        SpanKind.INTERNAL,
        {},
        [],
      ),
    );
  assert.equal(child(true), true);
  assert.equal(child(false), false);
});

Deno.test("two processes with the same rules agree on every trace", () => {
  const cfg = {
    default_rate: 0.2,
    rules: [{ match: { path_prefix: "/namespace/*/blobs/*" }, rate: 0.5 }],
  };
  const a = buildSampler(parseSamplingConfig(cfg));
  const b = buildSampler(parseSamplingConfig(cfg));
  let sampled = 0;
  for (let i = 0; i < 1000; i++) {
    const id = randomTraceId();
    const attrs = { "url.path": i % 2 ? "/namespace/ns/blobs/sha256:1" : "/other" };
    const da = isSampled(a.shouldSample(ROOT_CONTEXT, id, "GET", SpanKind.SERVER, attrs, []));
    assert.equal(
      da,
      isSampled(b.shouldSample(ROOT_CONTEXT, id, "GET", SpanKind.SERVER, attrs, [])),
    );
    if (da) sampled++;
  }
  assert.ok(sampled > 250 && sampled < 450, `${sampled} of 1000 at 0.5 and 0.2`);
});

Deno.test("trusted remote parents are honoured; parent_based: false ignores them", () => {
  const honour = buildSampler(parseSamplingConfig({ default_rate: 0 }));
  const ignore = buildSampler(parseSamplingConfig({ default_rate: 0, parent_based: false }));
  const id = randomTraceId();
  const internal = { "kraken.edge": false, "url.path": "/blobs/x" };
  const d = (s: typeof honour, sampled: boolean) =>
    isSampled(
      s.shouldSample(withParent(id, sampled, true), id, "GET", SpanKind.SERVER, internal, []),
    );
  assert.equal(d(honour, true), true);
  assert.equal(d(honour, false), false);
  assert.equal(d(ignore, true), false, "decided by default_rate 0");
});

Deno.test("edge listeners on loopback are untrusted by default; trusting loopback opts in", () => {
  let now = 0;
  const cfg = { default_rate: 0, trust: { client_sampled_rate_limit: 2 } };
  const edge = buildSampler(parseSamplingConfig(cfg), { now: () => now });
  let forced = 0;
  for (let i = 0; i < 100; i++) if (isSampled(clientSampledEdge(edge))) forced++;
  assert.equal(forced, 2, "burst of the client limit, nothing refilled at the same instant");
  now = 1000;
  assert.deepEqual(clientSampledEdge(edge).attributes, { "kraken.sampling.client_forced": true });

  const trusting = buildSampler(parseSamplingConfig({
    ...cfg,
    trust: { trusted_networks: ["127.0.0.0/8"] },
  }));
  for (let i = 0; i < 20; i++) {
    const res = clientSampledEdge(trusting);
    assert.equal(isSampled(res), true);
    assert.equal(res.attributes, undefined);
  }
});

Deno.test("max_traces_per_second caps new traces and counts the drops", () => {
  const now = 0;
  const counters = { droppedRateLimit: 0 };
  const sampler = buildSampler(
    parseSamplingConfig({ default_rate: 1, max_traces_per_second: 5 }),
    { now: () => now, counters },
  );
  let sampled = 0;
  for (let i = 0; i < 50; i++) {
    const id = randomTraceId();
    if (isSampled(sampler.shouldSample(ROOT_CONTEXT, id, "op", SpanKind.INTERNAL, {}, []))) {
      sampled++;
    }
  }
  assert.equal(sampled, 5);
  assert.equal(counters.droppedRateLimit, 45);
  // Children of a sampled local parent are never rate limited.
  const id = randomTraceId();
  assert.equal(
    isSampled(
      sampler.shouldSample(withParent(id, true, false), id, "c", SpanKind.INTERNAL, {}, []),
    ),
    true,
  );
});

Deno.test("effective rates list operation rules, adaptive operations and the default", () => {
  const now = 0;
  const sampler = buildSampler(
    parseSamplingConfig({
      default_rate: 0.3,
      rules: [{ match: { operation: "scheduler.download" }, rate: 0.5 }],
      adaptive: { enabled: true },
    }),
    { now: () => now },
  );
  sampler.shouldSample(
    ROOT_CONTEXT,
    randomTraceId(),
    "GET /v2/{name}/manifests/{reference}",
    SpanKind.SERVER,
    {},
    [],
  );
  assert.deepEqual([...sampler.effectiveRates()], [
    ["scheduler.download", 0.5],
    ["GET /v2/{name}/manifests/{reference}", 0.3],
    [DEFAULT_OPERATION, 0.3],
  ]);
  assert.equal(sampler.effectiveRate("scheduler.download"), 0.5);
  assert.equal(sampler.effectiveRate("never.seen"), 0.3);
  assert.match(
    sampler.toString(),
    /^ParentBased\{root=DebugIdSampler\{RuleSampler\{.*AdaptiveSampler/,
  );
});

Deno.test("the sampler plugs into the OpenTelemetry SDK tracer", () => {
  const provider = new TracerProvider({
    sampler: buildSampler(parseSamplingConfig({ default_rate: 0 })),
  });
  const tracer = provider.getTracer("test");
  const id = randomTraceId();
  const span = tracer.startSpan(
    "GET /v2/",
    { kind: SpanKind.SERVER, attributes: EDGE },
    withParent(id, true, true),
  );
  assert.equal(span.isRecording(), true);
  assert.equal(span.spanContext().traceId, id, "the client's trace id is kept");
  assert.equal(
    (span as unknown as { attributes: Record<string, unknown> })
      .attributes["kraken.sampling.client_forced"],
    true,
  );
  span.end();
  const health = tracer.startSpan("GET", { attributes: { "url.path": "/health" } }, ROOT_CONTEXT);
  assert.equal(health.isRecording(), false);
});

Deno.test("client-forced samples refused by the edge limit count as rate_limit drops, once", () => {
  const now = 0;
  const counters = { droppedRateLimit: 0 };
  const decide = (cfg: Record<string, unknown>) => {
    counters.droppedRateLimit = 0;
    const sampler = buildSampler(parseSamplingConfig(cfg), { now: () => now, counters });
    let sampled = 0;
    for (let i = 0; i < 100; i++) if (isSampled(clientSampledEdge(sampler))) sampled++;
    return sampled;
  };
  // Our own decision never samples: every refused client sample is a drop.
  assert.equal(decide({ default_rate: 0, trust: { client_sampled_rate_limit: 2 } }), 2);
  assert.equal(counters.droppedRateLimit, 98);
  // Our own decision samples everything: a refused client sample is still recorded, not dropped.
  assert.equal(decide({ default_rate: 1, trust: { client_sampled_rate_limit: 2 } }), 100);
  assert.equal(counters.droppedRateLimit, 0);
  // Both limits: the root chain's max_traces_per_second drop is counted there, not twice.
  assert.equal(
    decide({ default_rate: 1, max_traces_per_second: 3, trust: { client_sampled_rate_limit: 2 } }),
    5,
  );
  assert.equal(counters.droppedRateLimit, 95);
});

Deno.test("jaeger-debug-id forces sampling only within the edge rate limit, shared with client flags", () => {
  let now = 0;
  const sampler = buildSampler(
    parseSamplingConfig({ default_rate: 0, trust: { client_sampled_rate_limit: 2 } }),
    { now: () => now },
  );
  const debug = (path = "/v2/") => {
    const id = randomTraceId();
    return isSampled(
      sampler.shouldSample(ROOT_CONTEXT, id, "GET", SpanKind.SERVER, {
        ...EDGE,
        "url.path": path,
        [ATTR.samplingDebugId]: "abc",
      }, []),
    );
  };
  assert.deepEqual([debug(), debug(), debug(), debug()], [true, true, false, false]);
  now = 1000;
  // One client-forced traceparent takes a token of the same bucket.
  assert.equal(isSampled(clientSampledEdge(sampler)), true);
  assert.deepEqual([debug(), debug()], [true, false]);
  // Without the header a root at default_rate 0 is not sampled.
  now = 5000;
  const id = randomTraceId();
  assert.equal(
    isSampled(sampler.shouldSample(ROOT_CONTEXT, id, "GET", SpanKind.SERVER, EDGE, [])),
    false,
  );
});

Deno.test("remote strategies sit below the local rules: /health: 0 wins, the rest follows Jaeger", () => {
  const sampler = buildSampler(
    parseSamplingConfig({
      default_rate: 1,
      rules: [{ match: { operation: "local.op" }, rate: 1 }],
      remote: { enabled: true },
      adaptive: { floor_per_interval: 0 },
    }),
    { serviceName: "kraken-agent" },
  );
  sampler.remote!.setStrategy({ type: "probabilistic", rate: 0 });
  const root = (name: string, path: string) => {
    const id = randomTraceId();
    return isSampled(
      sampler.shouldSample(ROOT_CONTEXT, id, name, SpanKind.SERVER, { "url.path": path }, []),
    );
  };
  assert.equal(root("GET /health", "/health"), false, "built-in rule");
  assert.equal(root("GET /v2/", "/v2/"), false, "remote strategy: 0");
  assert.equal(root("local.op", "/x"), true, "a local operation rule wins over the strategy");
  assert.equal(sampler.effectiveRate("GET /v2/"), 0);
  sampler.remote!.stop();
});
