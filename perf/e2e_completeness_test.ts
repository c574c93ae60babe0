import assert from "node:assert/strict";
import type { SpanNode, TraceTree } from "../tests/harness/trace_tree.ts";
import { isWhole, newTrace, pool, traceparent } from "./e2e_completeness.ts";

function span(spanId: string, parentSpanId?: string): SpanNode {
  return {
    traceId: "t",
    spanId,
    parentSpanId,
    name: spanId,
    service: "s",
    attributes: {},
    resource: {},
    kind: "server",
    status: "unset",
    statusMessage: undefined,
    startUs: 0,
    durationUs: 1,
    children: [],
    links: [],
    events: [],
    warnings: [],
  } as SpanNode;
}

function tree(spans: SpanNode[]): TraceTree {
  return { traceId: "t", spans, roots: [] } as unknown as TraceTree;
}

Deno.test("isWhole: every parent present or a client span", () => {
  const sent = { traceId: "t", clientSpanIds: ["c1", "c2"] };
  assert.ok(isWhole(tree([span("a", "c1"), span("b", "a"), span("c", "c2"), span("d")]), sent));
  // A missing parent (a span the node never exported) makes it partial.
  assert.ok(!isWhole(tree([span("a", "c1"), span("b", "x")]), sent));
  assert.ok(!isWhole(tree([]), sent));
  assert.ok(!isWhole(undefined, sent));
});

Deno.test("newTrace and traceparent: sampled W3C headers with fresh ids", () => {
  const t = newTrace(3);
  assert.match(t.traceId, /^[0-9a-f]{32}$/);
  assert.equal(t.clientSpanIds.length, 3);
  assert.equal(new Set(t.clientSpanIds).size, 3);
  assert.equal(traceparent(t, 1), `00-${t.traceId}-${t.clientSpanIds[1]}-01`);
  assert.notEqual(newTrace(1).traceId, t.traceId);
});

Deno.test("pool: every task once, results in order, never more than the limit at once", async () => {
  let running = 0, most = 0;
  const out = await pool(20, 3, async (i) => {
    running++;
    most = Math.max(most, running);
    await new Promise((r) => setTimeout(r, 1 + (i % 3)));
    running--;
    return i * 2;
  });
  assert.deepEqual(out, Array.from({ length: 20 }, (_, i) => i * 2));
  assert.equal(most, 3);
  assert.deepEqual(await pool(0, 3, () => Promise.resolve(1)), []);
});
