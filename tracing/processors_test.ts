import assert from "node:assert/strict";
import { ROOT_CONTEXT } from "@opentelemetry/api";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { AlwaysOnSampler, type ReadableSpan, type SpanProcessor } from "@opentelemetry/sdk-trace";
import { FanOutSink, StockProcessorSink } from "./processors.ts";
import type { RecordingSpan } from "./span.ts";
import { KrakenTracerProvider } from "./tracer.ts";

Deno.test("processors: a stock processor gets onStart and onEnd; a throwing one breaks nothing", async () => {
  const events: string[] = [];
  const recorder: SpanProcessor = {
    onStart: (span) => events.push(`start ${(span as unknown as ReadableSpan).name}`),
    onEnd: (span) => events.push(`end ${span.name} ${span.resource.attributes["service.name"]}`),
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
  };
  const thrower: SpanProcessor = {
    onStart() {
      throw new Error("onStart");
    },
    onEnd() {
      throw new Error("onEnd");
    },
    forceFlush: () => Promise.resolve(),
    shutdown: () => new Promise(() => {}), // never settles: shutdown is bounded
  };
  const ended: RecordingSpan[] = [];
  const sink = new FanOutSink([
    new StockProcessorSink(thrower),
    new StockProcessorSink(recorder),
    { onEnd: (s) => ended.push(s) },
  ]);
  const tracer = new KrakenTracerProvider({
    resource: resourceFromAttributes({ "service.name": "proc" }),
    sampler: new AlwaysOnSampler(),
    sink,
    startListeners: [thrower, recorder],
  }).getTracer("t");
  tracer.startSpan("op", {}, ROOT_CONTEXT).end();
  assert.deepEqual(events, ["start op", "end op proc"]);
  assert.equal(ended.length, 1);
  const started = performance.now();
  await new StockProcessorSink(thrower).shutdown(50);
  assert.ok(performance.now() - started < 1000);
});
