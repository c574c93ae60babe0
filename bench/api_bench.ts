/**
 * What making a recorded span active costs (`tracing/api.ts`): `withSpan` of a sampled span around
 * an async function with one await, made active (the default) against the same span as a leaf
 * (`leaf: true`, recorded around the function without a context switch). The agent's cache lookup
 * and the tracker's peer store and policy spans are leaves.
 *
 * @module
 */

import { context, trace } from "@opentelemetry/api";
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
