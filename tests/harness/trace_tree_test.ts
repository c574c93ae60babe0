/**
 * Tests of the trace-tree model, printer and assertion on hand-written Jaeger JSON.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  assertTree,
  findSpans,
  formatTree,
  type JaegerSpan,
  type JaegerTrace,
  traceTreeFromJaeger,
} from "./trace_tree.ts";

const TRACE = "0af7651916cd43dd8448eb211c80319c";

function span(
  spanID: string,
  name: string,
  parent?: string,
  extra: Partial<JaegerSpan> = {},
): JaegerSpan {
  return {
    traceID: TRACE,
    spanID,
    operationName: name,
    references: parent ? [{ refType: "CHILD_OF", traceID: TRACE, spanID: parent }] : [],
    startTime: 1_700_000_000_000_000 + parseInt(spanID, 16),
    duration: 1500,
    tags: [],
    processID: "p1",
    ...extra,
  };
}

function trace(spans: JaegerSpan[]): JaegerTrace {
  return {
    traceID: TRACE,
    spans,
    processes: {
      p1: {
        serviceName: "kraken-agent",
        tags: [{ key: "service.name", value: "kraken-agent" }, { key: "host.name", value: "h" }],
      },
    },
  };
}

Deno.test("traceTreeFromJaeger builds parents, orphans, links, kind and status", () => {
  const tree = traceTreeFromJaeger({
    data: [trace([
      span("0000000000000003", "child.b", "0000000000000001"),
      span("0000000000000001", "root", undefined, {
        tags: [{ key: "span.kind", type: "string", value: "server" }],
      }),
      span("0000000000000002", "child.a", "0000000000000001", {
        tags: [
          { key: "otel.status_code", value: "ERROR" },
          { key: "otel.status_description", value: "nope" },
        ],
        references: [
          { refType: "CHILD_OF", traceID: TRACE, spanID: "0000000000000001" },
          { refType: "FOLLOWS_FROM", traceID: "ff".repeat(16), spanID: "00000000000000aa" },
        ],
        logs: [{
          timestamp: 5,
          fields: [{ key: "event", value: "retry" }, { key: "n", value: 2 }],
        }],
      }),
      span("0000000000000004", "orphan", "00000000000000ee"),
    ])],
  });
  assert.deepEqual(tree.roots.map((r) => r.name), ["root", "orphan"]);
  const [root] = tree.roots;
  assert.equal(root.kind, "server");
  assert.equal(root.resource["host.name"], "h");
  assert.equal("service.name" in root.resource, false);
  assert.deepEqual(root.children.map((c) => c.name), ["child.a", "child.b"]);
  const a = root.children[0];
  assert.equal(a.status, "error");
  assert.equal(a.statusMessage, "nope");
  assert.equal(a.kind, "unspecified");
  assert.deepEqual(a.links, [{
    traceId: "ff".repeat(16),
    spanId: "00000000000000aa",
    refType: "FOLLOWS_FROM",
  }]);
  assert.deepEqual(a.events, [{ name: "retry", timeUs: 5, attributes: { n: 2 } }]);
  assert.equal(tree.roots[1].parentSpanId, "00000000000000ee");
  assert.deepEqual(findSpans(tree, (s) => s.name.startsWith("child.")).length, 2);
});

Deno.test("traceTreeFromJaeger rejects responses without exactly one trace", () => {
  assert.throws(() => traceTreeFromJaeger({ data: [] }), /exactly one trace, got 0/);
});

Deno.test("assertTree needs a distinct span for every expected child", () => {
  const tree = traceTreeFromJaeger(trace([
    span("0000000000000001", "root"),
    span("0000000000000002", "work", "0000000000000001"),
    span("0000000000000003", "other", "0000000000000001"),
  ]));
  assertTree(tree, { name: "root", children: [{ name: "work" }] });
  assertTree(tree, { name: "root", children: [{ name: /^o/ }, { name: /^w/ }] });
  assert.throws(
    () => assertTree(tree, { name: "root", children: [{ name: "work" }, { name: "work" }] }),
    /\(trace root\) > root: children work, work each match, but not all by different spans/,
  );
  assert.throws(
    () => assertTree(tree, { name: "root", service: "kraken-origin" }),
    /service is "kraken-agent", expected "kraken-origin"[\s\S]*actual tree:/,
  );
});

Deno.test("formatTree indents children and shows links and attributes", () => {
  const tree = traceTreeFromJaeger(trace([
    span("0000000000000001", "root", undefined, { duration: 12_345 }),
    span("0000000000000002", "leaf", "0000000000000001", {
      tags: [{ key: "bytes", value: 10 }],
      references: [
        { refType: "CHILD_OF", traceID: TRACE, spanID: "0000000000000001" },
        { refType: "FOLLOWS_FROM", traceID: TRACE, spanID: "0000000000000009" },
      ],
    }),
  ]));
  assert.equal(
    formatTree(tree, { attributes: true }),
    [
      `trace ${TRACE} (2 spans)`,
      "  [kraken-agent] root  12.3 ms",
      "    [kraken-agent] leaf  1.500 ms",
      `      ~> FOLLOWS_FROM ${TRACE}/0000000000000009`,
      "      . bytes=10",
    ].join("\n"),
  );
});
