import assert from "node:assert/strict";
import { ROOT_CONTEXT, SpanKind } from "@opentelemetry/api";
import { AlwaysOffSampler, AlwaysOnSampler } from "@opentelemetry/sdk-trace";
import { ATTR } from "../names.ts";
import {
  JaegerRemoteSampler,
  type JaegerRemoteSamplerOptions,
  parseStrategy,
  StrategyError,
} from "./jaeger_remote_sampler.ts";
import { isSampled } from "./results.ts";

/** Trace ids spread evenly over the id space, so shares are exact enough. */
function* traceIds(n: number): Generator<string> {
  for (let i = 0; i < n; i++) {
    const x = Math.floor((i + 0.5) * 2 ** 24 / n);
    yield "0".repeat(18) + x.toString(16).padStart(6, "0") + "00000000";
  }
}

function sampler(options: Partial<JaegerRemoteSamplerOptions> = {}) {
  const clock = { now: 0 };
  const s = new JaegerRemoteSampler({
    endpoint: "http://jaeger.invalid:5778/sampling",
    serviceName: "kraken-agent",
    refreshIntervalMs: 60_000,
    fallback: new AlwaysOffSampler(),
    floorPerInterval: 0,
    now: () => clock.now,
    ...options,
  });
  const decide = (op: string, traceId: string) =>
    s.shouldSample(ROOT_CONTEXT, traceId, op, SpanKind.SERVER, {}, []);
  const share = (op: string, n = 1000) => {
    let sampled = 0;
    for (const id of traceIds(n)) if (isSampled(decide(op, id))) sampled++;
    return sampled / n;
  };
  return { s, clock, decide, share };
}

Deno.test("strategy: Jaeger's three response shapes parse, enum as number or name", () => {
  assert.deepEqual(
    parseStrategy({ strategyType: 0, probabilisticSampling: { samplingRate: 0.5 } }),
    { type: "probabilistic", rate: 0.5 },
  );
  assert.deepEqual(
    parseStrategy({
      strategyType: "RATE_LIMITING",
      rateLimitingSampling: { maxTracesPerSecond: 3 },
    }),
    { type: "ratelimiting", perSecond: 3 },
  );
  const perOp = parseStrategy({
    strategyType: 0,
    probabilisticSampling: { samplingRate: 0.5 },
    operationSampling: {
      defaultSamplingProbability: 0.2,
      defaultLowerBoundTracesPerSecond: 0.5,
      perOperationStrategies: [{ operation: "op1", probabilisticSampling: { samplingRate: 0.1 } }],
    },
  });
  assert.deepEqual(perOp, {
    type: "per_operation",
    defaultRate: 0.2,
    lowerBoundPerSecond: 0.5,
    operations: new Map([["op1", 0.1]]),
  });
  for (
    const bad of [
      "text",
      [],
      { strategyType: 7 },
      { probabilisticSampling: { samplingRate: 2 } },
      { strategyType: 1, rateLimitingSampling: { maxTracesPerSecond: -1 } },
      { operationSampling: { perOperationStrategies: [{ probabilisticSampling: {} }] } },
      { operationSampling: { perOperationStrategies: "op1" } },
    ]
  ) {
    assert.throws(() => parseStrategy(bad), StrategyError, JSON.stringify(bad));
  }
});

Deno.test("remote sampler: the local default decides until a strategy arrives", () => {
  const { s, share } = sampler({ fallback: new AlwaysOnSampler() });
  assert.equal(share("op"), 1);
  s.setStrategy({ type: "probabilistic", rate: 0.25 });
  assert.ok(Math.abs(share("op") - 0.25) < 0.01, String(share("op")));
});

Deno.test("remote sampler: per-operation probabilities, the default for other operations", () => {
  const { s, share, decide } = sampler();
  s.setStrategy({
    type: "per_operation",
    defaultRate: 0.5,
    lowerBoundPerSecond: 0,
    operations: new Map([["GET /v2/{name}/blobs/{digest}", 0.1], ["GET /health", 0]]),
  });
  assert.ok(Math.abs(share("GET /v2/{name}/blobs/{digest}") - 0.1) < 0.01);
  assert.ok(Math.abs(share("PUT /namespace/{namespace}/blobs/{digest}") - 0.5) < 0.01);
  assert.equal(share("GET /health"), 0);
  const result = decide("other", "f".repeat(32));
  assert.deepEqual(result.attributes, {
    [ATTR.samplerType]: "probabilistic",
    [ATTR.samplerParam]: 0.5,
  });
  assert.equal(s.effectiveRate("GET /v2/{name}/blobs/{digest}"), 0.1);
  assert.deepEqual([...s.effectiveRates()].map(([op]) => op), [
    "GET /v2/{name}/blobs/{digest}",
    "GET /health",
  ]);
});

Deno.test("remote sampler: the lower bound samples an operation the probability would not", () => {
  const { s, clock, decide } = sampler();
  s.setStrategy({
    type: "per_operation",
    defaultRate: 0,
    lowerBoundPerSecond: 1,
    operations: new Map(),
  });
  const zeroId = "0".repeat(32);
  const first = decide("rare", zeroId);
  assert.equal(isSampled(first), true);
  assert.equal(first.attributes?.[ATTR.samplerType], "lowerbound");
  assert.equal(isSampled(decide("rare", zeroId)), false, "one per second");
  assert.equal(isSampled(decide("other", zeroId)), true, "each operation has its own bound");
  clock.now = 1000;
  assert.equal(isSampled(decide("rare", zeroId)), true);
});

Deno.test("remote sampler: rate limiting caps new traces per second", () => {
  const { s, clock, decide } = sampler();
  s.setStrategy({ type: "ratelimiting", perSecond: 3 });
  const id = "f".repeat(32);
  const burst = Array.from({ length: 10 }, () => isSampled(decide("op", id)));
  assert.equal(burst.filter(Boolean).length, 3);
  clock.now = 1000;
  assert.equal(
    Array.from({ length: 10 }, () => isSampled(decide("op", id))).filter(Boolean).length,
    3,
  );
});

Deno.test("remote sampler: the local floor holds under a strategy that samples nothing", () => {
  const { s, clock, decide } = sampler({ floorPerInterval: 2, floorIntervalMs: 10_000 });
  s.setStrategy({ type: "probabilistic", rate: 0 });
  const id = "f".repeat(32);
  assert.deepEqual(Array.from({ length: 4 }, () => isSampled(decide("op", id))), [
    true,
    true,
    false,
    false,
  ]);
  clock.now = 10_000;
  assert.equal(isSampled(decide("op", id)), true, "a new interval, a new floor");
});

Deno.test("remote sampler: polls the endpoint with ?service=, keeps the last strategy when it fails", async () => {
  let answer: () => Response = () =>
    Response.json({ strategyType: 0, probabilisticSampling: { samplingRate: 0.3 } });
  const asked: string[] = [];
  const errors: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    asked.push(req.url);
    return answer();
  });
  const { s } = sampler({
    endpoint: `http://127.0.0.1:${server.addr.port}/sampling`,
    onError: (e) => errors.push(e.message),
  });
  try {
    await s.refresh();
    assert.deepEqual(s.strategy, { type: "probabilistic", rate: 0.3 });
    assert.match(asked[0], /\/sampling\?service=kraken-agent$/);
    answer = () => new Response("down", { status: 503 });
    await s.refresh();
    answer = () => new Response("{not json");
    await s.refresh();
    answer = () => Response.json({ strategyType: 9 });
    await s.refresh();
    assert.deepEqual(s.strategy, { type: "probabilistic", rate: 0.3 }, "last good strategy stays");
    assert.equal(errors.length, 3);
    assert.match(errors[0], /answered 503: down/);
    assert.match(errors[1], /non-JSON/);
    assert.match(errors[2], /unknown strategyType 9/);
  } finally {
    s.stop();
    await server.shutdown();
  }
  // An endpoint that is not there at all: the error is reported, nothing is thrown.
  await s.refresh();
  assert.equal(errors.length, 4);
  assert.deepEqual(s.strategy, { type: "probabilistic", rate: 0.3 });
});
