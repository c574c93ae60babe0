import assert from "node:assert/strict";
import {
  INVALID_SPAN_CONTEXT,
  ROOT_CONTEXT,
  type SpanContext,
  SpanKind,
  trace,
  TraceFlags,
} from "@opentelemetry/api";
import type { Sampler, SamplingResult } from "@opentelemetry/sdk-trace";
import { ParentBasedSampler, ParentFlagSampler } from "./parent_based_sampler.ts";
import { isSampled, NOT_SAMPLED, SAMPLED } from "./results.ts";

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";

function parent(sampled: boolean, isRemote: boolean) {
  const sc: SpanContext = {
    traceId: TRACE_ID,
    spanId: "00f067aa0ba902b7",
    traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
    isRemote,
  };
  return trace.setSpanContext(ROOT_CONTEXT, sc);
}

class Recording implements Sampler {
  calls = 0;
  constructor(readonly result: SamplingResult) {}
  shouldSample(): SamplingResult {
    this.calls++;
    return this.result;
  }
}

Deno.test("local parents are inherited without asking the root or remote samplers", () => {
  const root = new Recording(SAMPLED);
  const remote = new Recording(SAMPLED);
  const sampler = new ParentBasedSampler({ root, remoteParent: remote });
  const d = (ctx = ROOT_CONTEXT) =>
    sampler.shouldSample(ctx, TRACE_ID, "c", SpanKind.INTERNAL, {}, []);
  assert.equal(d(parent(true, false)), SAMPLED);
  assert.equal(d(parent(false, false)), NOT_SAMPLED);
  assert.equal(root.calls + remote.calls, 0);
});

Deno.test("root spans go to the root sampler, remote parents to the remote sampler", () => {
  const root = new Recording(NOT_SAMPLED);
  const remote = new Recording(SAMPLED);
  const sampler = new ParentBasedSampler({ root, remoteParent: remote });
  const d = (ctx = ROOT_CONTEXT) =>
    sampler.shouldSample(ctx, TRACE_ID, "c", SpanKind.SERVER, {}, []);
  assert.equal(d(), NOT_SAMPLED);
  assert.equal(d(trace.setSpanContext(ROOT_CONTEXT, INVALID_SPAN_CONTEXT)), NOT_SAMPLED);
  assert.equal(root.calls, 2, "an invalid parent counts as none");
  // A tracer starting a new trace under a valid parent (root: true) passes a fresh trace id.
  const fresh = "11112222333344445555666677778888";
  assert.equal(
    sampler.shouldSample(parent(true, false), fresh, "r", SpanKind.INTERNAL, {}, []),
    NOT_SAMPLED,
  );
  assert.equal(root.calls, 3, "a new trace id makes the span a root");
  assert.equal(d(parent(false, true)), SAMPLED);
  assert.equal(remote.calls, 1);
});

Deno.test("by default a remote parent's flag is followed", () => {
  const sampler = new ParentBasedSampler({ root: new Recording(SAMPLED) });
  const d = (sampled: boolean) =>
    isSampled(sampler.shouldSample(parent(sampled, true), TRACE_ID, "s", SpanKind.SERVER, {}, []));
  assert.equal(d(true), true);
  assert.equal(d(false), false);
  assert.equal(isSampled(new ParentFlagSampler().shouldSample(ROOT_CONTEXT)), false);
});
