/**
 * What making a recorded span active costs (`tracing/api.ts`): `withSpan` of a sampled span around
 * an async function with one await, made active (the default) against the same span as a leaf
 * (`leaf: true`, recorded around the function without a context switch). The agent's cache lookup
 * and the tracker's peer store and policy spans are leaves. The same pair runs again under an
 * active parent span, as a request's child spans do, and beside it the runtime's
 * `AsyncLocalStorage.run` (which the context switch is) from an empty context and under another
 * run: Deno copies the active context's entries into a new object and adds a `WeakMap` entry on
 * every run, so a switch under an active context costs more than one from none.
 *
 * @module
 */

import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorage } from "node:async_hooks";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { AlwaysOnSampler } from "@opentelemetry/sdk-trace";
import { withSpan } from "../tracing/api.ts";
import { KrakenTracerProvider } from "../tracing/tracer.ts";

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
trace.setGlobalTracerProvider(
  new KrakenTracerProvider({
    resource: resourceFromAttributes({ "service.name": "bench" }),
    sampler: new AlwaysOnSampler(),
    // Ended spans are dropped here: the queue's cost is the tracer bench's concern.
    sink: { onEnd: () => {} },
  }),
);

const RUN = { n: 200_000, warmup: 20_000, group: "withSpan recorded" };
const body = async () => {
  await null;
  return 1;
};

Deno.bench("withSpan: recorded, made active", { ...RUN, baseline: true }, async () => {
  await withSpan("bench", {}, body);
});
Deno.bench("withSpan: recorded leaf", RUN, async () => {
  await withSpan("bench", {}, body, { leaf: true });
});

const NESTED = { ...RUN, group: "withSpan recorded, under an active span" };
const parent = trace.getTracer("bench").startSpan("parent");
const parentContext = trace.setSpan(context.active(), parent);

Deno.bench(
  "withSpan under a span: recorded, made active",
  { ...NESTED, baseline: true },
  async () => {
    await context.with(parentContext, () => withSpan("bench", {}, body));
  },
);
Deno.bench("withSpan under a span: recorded leaf", NESTED, async () => {
  await context.with(parentContext, () => withSpan("bench", {}, body, { leaf: true }));
});

const ALS = { ...RUN, group: "AsyncLocalStorage.run" };
const storage = new AsyncLocalStorage<object>();
const outer = {};
const inner = {};
const work = () => 1;
const nestedRun = () => storage.run(inner, work);

Deno.bench("AsyncLocalStorage.run from an empty context", { ...ALS, baseline: true }, () => {
  storage.run(inner, work);
});
Deno.bench("AsyncLocalStorage.run under another run (both counted)", ALS, () => {
  storage.run(outer, nestedRun);
});
