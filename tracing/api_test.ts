import assert from "node:assert/strict";
import { context, ROOT_CONTEXT, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { AlwaysOffSampler, AlwaysOnSampler, type Sampler } from "@opentelemetry/sdk-trace";
import {
  activeSpanIds,
  contextOfSpan,
  currentTracer,
  registeredTracer,
  runInSpan,
  startSpan,
  withSpan,
} from "./api.ts";
import type { RecordingSpan } from "./span.ts";
import { KrakenTracerProvider } from "./tracer.ts";

const resource = resourceFromAttributes({ "service.name": "api-test" });
// A remote parent that was not sampled.
const remote = trace.setSpanContext(ROOT_CONTEXT, {
  traceId: "0af7651916cd43dd8448eb211c80319c",
  spanId: "b7ad6b7169203331",
  traceFlags: 0,
  isRemote: true,
});

function provider(sampler: Sampler, ended: RecordingSpan[] = []): KrakenTracerProvider {
  return new KrakenTracerProvider({ resource, sampler, sink: { onEnd: (s) => ended.push(s) } });
}

function register(p: KrakenTracerProvider | undefined): void {
  trace.disable();
  if (p) trace.setGlobalTracerProvider(p);
}

Deno.test("registeredTracer: follows the registered provider, undefined while none is", () => {
  const a = provider(new AlwaysOnSampler());
  const b = provider(new AlwaysOnSampler());
  try {
    register(undefined);
    assert.equal(registeredTracer(), undefined);
    assert.ok(currentTracer(), "the API's no-op tracer stands in");
    register(a);
    const tracerA = registeredTracer();
    assert.equal(tracerA, a.getTracer("kraken"));
    assert.equal(registeredTracer(), tracerA, "resolved once");
    register(b);
    assert.equal(registeredTracer(), b.getTracer("kraken"));
    register(a);
    assert.equal(registeredTracer(), tracerA);
    register(undefined);
    assert.equal(registeredTracer(), undefined);
  } finally {
    register(undefined);
  }
});

Deno.test("withSpan: a recorded span is active for fn and ended, a thrown error marks it", async () => {
  const manager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(manager);
  const ended: RecordingSpan[] = [];
  register(provider(new AlwaysOnSampler(), ended));
  try {
    const inner = await withSpan("outer", {}, (span) => {
      assert.equal(trace.getActiveSpan(), span);
      return withSpan("inner", {}, () => activeSpanIds());
    });
    assert.deepEqual(ended.map((s) => s.name), ["inner", "outer"]);
    assert.equal(inner?.spanId, ended[0].spanContext().spanId);
    await assert.rejects(withSpan("failing", {}, () => Promise.reject(new Error("boom"))), /boom/);
    assert.equal(ended.at(-1)?.name, "failing");
    assert.equal(ended.at(-1)?.status.code, 2);
  } finally {
    register(undefined);
    context.disable();
  }
});

Deno.test("withSpan: a recorded span ends with fn, whatever fn returns or throws", async () => {
  const manager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(manager);
  const ended: RecordingSpan[] = [];
  register(provider(new AlwaysOnSampler(), ended));
  try {
    for (const leaf of [false, true]) {
      // A synchronous value ends the span before withSpan's promise settles.
      const sync = withSpan("sync", {}, () => 7, { leaf });
      assert.equal(ended.at(-1)?.name, "sync");
      assert.equal(await sync, 7);
      // A synchronous throw is a rejection, not an exception out of withSpan.
      const thrown = withSpan("throws", {}, () => {
        throw new Error("sync boom");
      }, { leaf });
      await assert.rejects(thrown, /sync boom/);
      assert.equal(ended.at(-1)?.name, "throws");
      assert.equal(ended.at(-1)?.status.code, 2);
      // A thenable that is not a promise is followed; one whose `then` cannot be read rejects.
      const thenable = { then: (ok: (v: number) => void) => ok(8) };
      assert.equal(
        await withSpan("thenable", {}, () => thenable as unknown as number, { leaf }),
        8,
      );
      assert.equal(ended.at(-1)?.name, "thenable");
      const hostile = Object.defineProperty({}, "then", {
        get() {
          throw new Error("no then");
        },
      });
      await assert.rejects(withSpan("hostile", {}, () => hostile, { leaf }), /no then/);
      assert.equal(ended.at(-1)?.name, "hostile");
      assert.equal(ended.at(-1)?.status.code, 2);
    }
  } finally {
    register(undefined);
    context.disable();
  }
});

Deno.test("withSpan: an unrecorded span passes fn's value and errors through, sync or async", async () => {
  const manager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(manager);
  try {
    for (const p of [undefined, provider(new AlwaysOffSampler())]) {
      register(p);
      assert.equal(await withSpan("sync", {}, () => 1), 1);
      const promise = Promise.resolve(2);
      const result = withSpan("async", {}, () => promise);
      assert.ok(result instanceof Promise);
      assert.equal(await result, 2);
      await assert.rejects(
        withSpan("throws", {}, () => {
          throw new Error("sync boom");
        }),
        /sync boom/,
      );
      await assert.rejects(withSpan("rejects", {}, () => Promise.reject(new Error("x"))), /x/);
      const seen = await withSpan("with parent", {}, () => activeSpanIds()?.traceId, {
        parent: remote,
      });
      assert.equal(seen, "0af7651916cd43dd8448eb211c80319c", "fn runs in the given parent");
    }
  } finally {
    register(undefined);
    context.disable();
  }
});

Deno.test("runInSpan: a recorded or new span is made active; one that changes nothing is not", () => {
  const manager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(manager);
  try {
    // Tracing off: the no-op span carries the remote parent's context, or none.
    register(undefined);
    context.with(remote, () => {
      const span = startSpan("off, remote parent");
      runInSpan(span, () => assert.equal(context.active(), remote, "no switch"));
    });
    const none = startSpan("off, no parent");
    runInSpan(none, () => assert.equal(context.active(), ROOT_CONTEXT, "no switch"));
    // An explicit parent that differs from the active context: the span's context must go in.
    context.with(remote, () => {
      const span = startSpan("off, other parent", {}, { parent: ROOT_CONTEXT });
      runInSpan(span, () => assert.equal(activeSpanIds(), undefined, "the remote trace is cut"));
    });
    // 0%: an unsampled root has a trace id of its own, so it must be active (its flag goes on).
    register(provider(new AlwaysOffSampler()));
    const root = startSpan("unsampled root");
    runInSpan(root, () => {
      assert.equal(trace.getActiveSpan(), root);
      const child = startSpan("unsampled child");
      runInSpan(child, () => assert.equal(trace.getActiveSpan(), root, "the child is the root"));
    });
    register(provider(new AlwaysOnSampler()));
    const recorded = startSpan("recorded");
    runInSpan(recorded, () => assert.equal(trace.getActiveSpan(), recorded));
    recorded.end();
  } finally {
    register(undefined);
    context.disable();
  }
});

Deno.test("withSpan leaf: recorded around fn, ended and marked on error, never made active", async () => {
  const manager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(manager);
  const ended: RecordingSpan[] = [];
  register(provider(new AlwaysOnSampler(), ended));
  try {
    const outer = startSpan("outer");
    const parent = contextOfSpan(outer, ROOT_CONTEXT);
    assert.equal(trace.getSpan(parent), outer);
    const seen = await withSpan("leaf", {}, (span) => {
      span.setAttribute("k", 1);
      return context.active();
    }, { parent, leaf: true });
    assert.equal(seen, ROOT_CONTEXT, "fn runs in the caller's context: no switch");
    const leaf = ended.at(-1)!;
    assert.equal(leaf.name, "leaf");
    assert.equal(leaf.parentSpanContext?.spanId, outer.spanContext().spanId);
    assert.equal(leaf.attributes.k, 1);
    await assert.rejects(
      withSpan("failing leaf", {}, () => Promise.reject(new Error("boom")), { leaf: true }),
      /boom/,
    );
    assert.equal(ended.at(-1)?.name, "failing leaf");
    assert.equal(ended.at(-1)?.status.code, 2);
    // Unsampled, a leaf runs in place too, even with a parent other than the active context.
    register(provider(new AlwaysOffSampler()));
    const active = await withSpan("unsampled leaf", {}, () => context.active(), {
      parent,
      leaf: true,
    });
    assert.equal(active, ROOT_CONTEXT);
    outer.end();
  } finally {
    register(undefined);
    context.disable();
  }
});

Deno.test("contextOfSpan: the parent itself when the span changes nothing, else the span in it", () => {
  try {
    register(undefined);
    assert.equal(contextOfSpan(startSpan("off", {}, { parent: remote }), remote), remote);
    assert.equal(contextOfSpan(startSpan("off, no parent"), ROOT_CONTEXT), ROOT_CONTEXT);
    register(provider(new AlwaysOffSampler()));
    const root = startSpan("unsampled root", {}, { parent: ROOT_CONTEXT });
    const rootCtx = contextOfSpan(root, ROOT_CONTEXT);
    assert.equal(trace.getSpan(rootCtx), root, "an unsampled root has a trace of its own");
    const child = startSpan("unsampled child", {}, { parent: rootCtx });
    assert.equal(contextOfSpan(child, rootCtx), rootCtx);
    register(provider(new AlwaysOnSampler()));
    const recorded = startSpan("recorded", {}, { parent: remote });
    assert.equal(trace.getSpan(contextOfSpan(recorded, remote)), recorded);
    recorded.end();
  } finally {
    register(undefined);
  }
});
