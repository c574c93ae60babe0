import assert from "node:assert/strict";
import { createContextKey, propagation, ROOT_CONTEXT, trace, TraceFlags } from "@opentelemetry/api";
import { contextWith, contextWithSpan, LinkedContext, MAX_CHAIN, SPAN_KEY } from "./context.ts";

const span = trace.wrapSpanContext({
  traceId: "0af7651916cd43dd8448eb211c80319c",
  spanId: "b7ad6b7169203331",
  traceFlags: TraceFlags.SAMPLED,
});

Deno.test("contextWithSpan: the API reads the span, and the parent's other values", () => {
  const key = createContextKey("other");
  const parent = ROOT_CONTEXT.setValue(key, 1);
  const ctx = contextWithSpan(parent, span);
  assert.ok(ctx instanceof LinkedContext);
  assert.equal(trace.getSpan(ctx), span);
  assert.equal(trace.getSpanContext(ctx)?.spanId, "b7ad6b7169203331");
  assert.equal(ctx.getValue(key), 1);
  assert.equal(trace.getSpan(parent), undefined, "the parent is unchanged");
  assert.equal(ctx.getValue(SPAN_KEY), trace.setSpan(ROOT_CONTEXT, span).getValue(SPAN_KEY));
});

Deno.test("LinkedContext: the nearest value wins; delete and set again; the API's helpers work on it", () => {
  const key = createContextKey("k");
  const a = contextWith(ROOT_CONTEXT, key, "a");
  const b = a.setValue(key, "b");
  assert.equal(a.getValue(key), "a");
  assert.equal(b.getValue(key), "b");
  const deleted = b.deleteValue(key);
  assert.equal(deleted.getValue(key), undefined);
  assert.equal(deleted.setValue(key, "c").getValue(key), "c");
  assert.equal(trace.getSpan(trace.deleteSpan(contextWithSpan(b, span))), undefined);
  const baggage = propagation.createBaggage({ user: { value: "u" } });
  const withBaggage = propagation.setBaggage(contextWithSpan(ROOT_CONTEXT, span), baggage);
  assert.equal(propagation.getBaggage(withBaggage)?.getEntry("user")?.value, "u");
  assert.equal(trace.getSpan(withBaggage), span);
});

Deno.test("LinkedContext: a long chain folds into one map and keeps every value", () => {
  const keys = Array.from({ length: MAX_CHAIN * 3 }, (_, i) => createContextKey(`k${i}`));
  let ctx = ROOT_CONTEXT;
  const deletedKey = keys[5];
  for (let i = 0; i < keys.length; i++) {
    ctx = ctx.setValue(keys[i], i);
    if (i === 0) ctx = contextWith(ctx, keys[i], i);
    if (i === 20) ctx = ctx.deleteValue(deletedKey);
    if (i === 30) ctx = ctx.setValue(keys[1], "overwritten");
  }
  for (let i = 0; i < keys.length; i++) {
    const expected = keys[i] === deletedKey ? undefined : i === 1 ? "overwritten" : i;
    assert.equal(ctx.getValue(keys[i]), expected, `key ${i}`);
  }
});
