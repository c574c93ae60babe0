import assert from "node:assert/strict";
import { context, ROOT_CONTEXT, SpanKind, trace, TraceFlags } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { AlwaysOffSampler, AlwaysOnSampler } from "@opentelemetry/sdk-trace";
import * as apiFromSdk from "@opentelemetry/sdk-trace";
import { DEFAULT_SPAN_LIMITS, RecordingSpan, type SpanSink } from "./span.ts";
import { KrakenTracerProvider } from "./tracer.ts";

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

function collect() {
  const ended: RecordingSpan[] = [];
  const sink: SpanSink = { onEnd: (s) => ended.push(s) };
  return { ended, sink };
}

const resource = resourceFromAttributes({ "service.name": "test" });

Deno.test("tracer: child spans share the trace and point at their parent", () => {
  const { ended, sink } = collect();
  const tracer = new KrakenTracerProvider({ resource, sampler: new AlwaysOnSampler(), sink })
    .getTracer("t");
  const parent = tracer.startSpan("parent", { kind: SpanKind.SERVER, attributes: { a: 1 } });
  const child = tracer.startSpan("child", {}, trace.setSpan(ROOT_CONTEXT, parent));
  child.end();
  parent.end();
  assert.equal(ended.length, 2);
  const [c, p] = ended;
  assert.equal(c.spanContext().traceId, p.spanContext().traceId);
  assert.equal(c.parentSpanContext?.spanId, p.spanContext().spanId);
  assert.equal(p.parentSpanContext, undefined);
  assert.equal(p.kind, SpanKind.SERVER);
  assert.equal(p.attributes.a, 1);
  assert.match(p.spanContext().traceId, /^[0-9a-f]{32}$/);
  assert.match(p.spanContext().spanId, /^[0-9a-f]{16}$/);
  assert.equal(p.spanContext().traceFlags, TraceFlags.SAMPLED);
  // Times convert to epoch HrTime near now.
  const [sec] = p.startTime;
  assert.ok(Math.abs(sec - Date.now() / 1000) < 5);
  assert.ok(p.durationMs >= 0);
});

Deno.test("tracer: the active span survives await (one @opentelemetry/api copy)", async () => {
  const { ended, sink } = collect();
  const provider = new KrakenTracerProvider({ resource, sampler: new AlwaysOnSampler(), sink });
  trace.setGlobalTracerProvider(provider);
  try {
    const tracer = trace.getTracer("t");
    await tracer.startActiveSpan("outer", async (outer) => {
      await new Promise((r) => setTimeout(r, 5));
      await Promise.resolve();
      // The API seen through the SDK package must be the same copy as ours.
      assert.equal(apiFromSdk.SamplingDecision.RECORD_AND_SAMPLED, 2);
      assert.equal(trace.getActiveSpan(), outer);
      const inner = tracer.startSpan("inner");
      inner.end();
      outer.end();
    });
    assert.equal(ended[0].parentSpanContext?.spanId, ended[1].spanContext().spanId);
  } finally {
    trace.disable();
  }
});

Deno.test("tracer: unsampled spans do not record but keep the trace id for propagation", () => {
  const { ended, sink } = collect();
  const tracer = new KrakenTracerProvider({ resource, sampler: new AlwaysOffSampler(), sink })
    .getTracer("t");
  const remote = trace.setSpanContext(ROOT_CONTEXT, {
    traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    spanId: "00f067aa0ba902b7",
    traceFlags: TraceFlags.NONE,
    isRemote: true,
  });
  const span = tracer.startSpan("op", {}, remote);
  assert.equal(span.isRecording(), false);
  assert.equal(span.spanContext().traceId, "4bf92f3577b34da6a3ce929d0e0e4736");
  assert.notEqual(span.spanContext().spanId, "00f067aa0ba902b7");
  span.end();
  assert.equal(ended.length, 0);
});

Deno.test("tracer: an unsampled child of an unsampled local span is that span", () => {
  const { ended, sink } = collect();
  const tracer = new KrakenTracerProvider({ resource, sampler: new AlwaysOffSampler(), sink })
    .getTracer("t");
  const root = tracer.startSpan("root", {}, ROOT_CONTEXT);
  const inRoot = trace.setSpan(ROOT_CONTEXT, root);
  const child = tracer.startSpan("child", {}, inRoot);
  // Same trace, same flags, nothing recorded: propagation downstream is unchanged.
  assert.equal(child, root);
  assert.equal(child.isRecording(), false);
  // A span whose parent came over the network still gets a context of its own.
  const remote = trace.setSpanContext(ROOT_CONTEXT, {
    traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    spanId: "00f067aa0ba902b7",
    traceFlags: TraceFlags.NONE,
    isRemote: true,
  });
  const server = tracer.startSpan("server", {}, remote);
  assert.notEqual(server.spanContext().spanId, "00f067aa0ba902b7");
  // A sampled local parent never hands out itself for a child the sampler turned down.
  const onTracer = new KrakenTracerProvider({
    resource,
    sink,
    sampler: {
      shouldSample: (_c, _t, name) => ({ decision: name === "parent" ? 2 : 0 }),
      toString: () => "by name",
    },
  }).getTracer("t");
  const parent = onTracer.startSpan("parent", {}, ROOT_CONTEXT);
  const dropped = onTracer.startSpan("dropped", {}, trace.setSpan(ROOT_CONTEXT, parent));
  assert.notEqual(dropped, parent);
  assert.equal(dropped.isRecording(), false);
  dropped.end();
  parent.end();
  assert.deepEqual(ended.map((s) => s.name), ["parent"]);
});

Deno.test("tracer: an open gate sheds spans but passes the caller's context through", () => {
  const { ended, sink } = collect();
  const provider = new KrakenTracerProvider({
    resource,
    sampler: new AlwaysOnSampler(),
    sink,
    gate: { allow: () => false },
  });
  const tracer = provider.getTracer("t");
  const parentSc = {
    traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    spanId: "00f067aa0ba902b7",
    traceFlags: TraceFlags.SAMPLED,
    isRemote: true,
  };
  const span = tracer.startSpan("op", {}, trace.setSpanContext(ROOT_CONTEXT, parentSc));
  assert.equal(span.isRecording(), false);
  assert.equal(span.spanContext().spanId, parentSc.spanId);
  span.end();
  assert.equal(ended.length, 0);
  assert.equal(provider.counters.droppedBreaker, 1);
  assert.equal(provider.counters.spansCreated, 1);
});

Deno.test("span: limits bound attributes, events and value length; end is idempotent", () => {
  const { ended, sink } = collect();
  const tracer = new KrakenTracerProvider({ resource, sampler: new AlwaysOnSampler(), sink })
    .getTracer("t");
  const span = tracer.startSpan("op") as RecordingSpan;
  for (let i = 0; i < DEFAULT_SPAN_LIMITS.attributeCount + 10; i++) span.setAttribute(`k${i}`, i);
  assert.equal(Object.keys(span.attributes).length, DEFAULT_SPAN_LIMITS.attributeCount);
  assert.equal(span.droppedAttributesCount, 10);
  span.setAttribute("k0", "x".repeat(5000));
  assert.equal((span.attributes.k0 as string).length, DEFAULT_SPAN_LIMITS.attributeValueLength);
  for (let i = 0; i < DEFAULT_SPAN_LIMITS.eventCount + 3; i++) span.addEvent(`e${i}`);
  assert.equal(span.events.length, DEFAULT_SPAN_LIMITS.eventCount);
  assert.equal(span.droppedEventsCount, 3);
  span.recordException(new TypeError("boom"));
  span.end();
  span.end();
  span.setAttribute("late", 1);
  assert.equal(ended.length, 1);
  assert.equal(span.attributes.late, undefined);
});

Deno.test("span: start attributes are copied, within the same limits as setAttribute", () => {
  const { sink } = collect();
  const tracer = new KrakenTracerProvider({ resource, sampler: new AlwaysOnSampler(), sink })
    .getTracer("t");
  const given = { a: "x", b: 2, c: true };
  const span = tracer.startSpan("op", { attributes: given }) as RecordingSpan;
  span.setAttribute("d", 4);
  span.setAttribute("a", "y");
  assert.deepEqual(span.attributes, { a: "y", b: 2, c: true, d: 4 });
  assert.deepEqual(given, { a: "x", b: 2, c: true });
  // Unset values, long strings, arrays and too many keys take the checked path.
  const many: Record<string, string | number | number[] | undefined> = {
    long: "x".repeat(5000),
    none: undefined,
    list: [1, 2],
  };
  for (let i = 0; i < DEFAULT_SPAN_LIMITS.attributeCount; i++) many[`k${i}`] = i;
  const capped = tracer.startSpan("op", { attributes: many as never }) as RecordingSpan;
  assert.equal(Object.keys(capped.attributes).length, DEFAULT_SPAN_LIMITS.attributeCount);
  assert.equal(capped.droppedAttributesCount, 2);
  assert.equal((capped.attributes.long as string).length, DEFAULT_SPAN_LIMITS.attributeValueLength);
  assert.equal("none" in capped.attributes, false);
  assert.deepEqual(capped.attributes.list, [1, 2]);
  // The count carries over: a full span drops new keys but still updates kept ones.
  const full: Record<string, number> = {};
  for (let i = 0; i < DEFAULT_SPAN_LIMITS.attributeCount; i++) full[`k${i}`] = i;
  const atLimit = tracer.startSpan("op", { attributes: full }) as RecordingSpan;
  atLimit.setAttribute("extra", 1);
  atLimit.setAttribute("k0", 100);
  assert.equal(atLimit.attributes.extra, undefined);
  assert.equal(atLimit.attributes.k0, 100);
  assert.equal(atLimit.droppedAttributesCount, 1);
});

Deno.test("span: configured limits (OTEL_SPAN_*_LIMIT) bound events, links and their attributes", () => {
  const { sink } = collect();
  const limits = {
    attributeCount: 2,
    attributeValueLength: 3,
    eventCount: 1,
    linkCount: 1,
    eventAttributeCount: 1,
    linkAttributeCount: 1,
  };
  const tracer = new KrakenTracerProvider({
    resource,
    sampler: new AlwaysOnSampler(),
    sink,
    limits,
  }).getTracer("t");
  const span = tracer.startSpan("op") as RecordingSpan;
  span.setAttributes({ a: "abcdef", b: ["long", "ok"], c: 1 });
  assert.deepEqual(span.attributes, { a: "abc", b: ["lon", "ok"] });
  assert.equal(span.droppedAttributesCount, 1);
  span.addEvent("e1", { x: 1, y: 2 });
  span.addEvent("e2");
  assert.equal(span.events.length, 1);
  assert.deepEqual(span.events[0].attributes, { x: 1 });
  assert.equal(span.events[0].droppedAttributesCount, 1);
  const context = { traceId: "1".repeat(32), spanId: "2".repeat(16), traceFlags: 1 };
  span.addLinks([{ context, attributes: { p: 1, q: 2 } }, { context }]);
  assert.equal(span.links.length, 1);
  assert.deepEqual(span.links[0].attributes, { p: 1 });
  assert.equal(span.links[0].droppedAttributesCount, 1);
  assert.equal(span.droppedLinksCount, 1);
  span.end();
});

Deno.test("span: times are whole microseconds (Zipkin's JSON takes no fraction)", () => {
  const { sink } = collect();
  const tracer = new KrakenTracerProvider({ resource, sampler: new AlwaysOnSampler(), sink })
    .getTracer("t");
  for (let i = 0; i < 50; i++) {
    const span = tracer.startSpan("op", {
      startTime: performance.now() + i * 0.0001234,
    }) as RecordingSpan;
    span.addEvent("e");
    span.end();
    for (const t of [span.startTime, span.endTime, span.events[0].time]) {
      assert.equal(t[1] % 1000, 0, `${t}`);
      assert.ok(t[1] >= 0 && t[1] < 1e9);
    }
  }
});
