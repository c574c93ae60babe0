import assert from "node:assert/strict";
import { ATTR, SPAN } from "../tracing/names.ts";
import { assembleTree, type SpanNode } from "./trace_tree.ts";
import { criticalPath, formatDuration, p2pSummary, renderWaterfall } from "./waterfall.ts";

function span(
  id: string,
  parent: string | undefined,
  name: string,
  startMs: number,
  durationMs: number,
  extra: Partial<SpanNode> = {},
): SpanNode {
  return {
    traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    spanId: id,
    parentSpanId: parent,
    name,
    service: "kraken-agent",
    attributes: {},
    resource: {},
    kind: "internal",
    status: "unset",
    statusMessage: undefined,
    startUs: 1_000_000 + startMs * 1000,
    durationUs: durationMs * 1000,
    children: [],
    links: [],
    events: [],
    warnings: [],
    ...extra,
  };
}

// root 0–100: a (12–30) runs within b (10–90), c (92–99) runs after b; b has b1 (20–85).
const tree = () =>
  assembleTree("4bf92f3577b34da6a3ce929d0e0e4736", [
    span("r", undefined, "GET /namespace/{namespace}/blobs/{digest}", 0, 100, { kind: "server" }),
    span("a", "r", "agent.cache_lookup", 12, 18),
    span("b", "r", SPAN.schedulerDownload, 10, 80, {
      attributes: {
        [ATTR.p2pPiecesTotal]: 11,
        [ATTR.p2pPiecesFromOrigins]: 4,
        [ATTR.p2pPiecesFromAgents]: 7,
        [ATTR.p2pPiecesAtStart]: 0,
        [ATTR.p2pPeersConnected]: 2,
        [ATTR.p2pBytesReceived]: 11 * 16384,
        [ATTR.p2pDurationMs]: 80,
        [ATTR.p2pThroughputMbps]: 17.6,
      },
    }),
    span("b1", "b", "storage.commit", 20, 65, {
      status: "error",
      statusMessage: "digest mismatch",
      service: "kraken-agent",
    }),
    span("c", "r", "agent.stream", 92, 7),
  ]);

Deno.test("critical path: the last finisher, then what ended last before it started", () => {
  assert.deepEqual([...criticalPath(tree())].sort(), ["b", "b1", "c", "r"]);
});

Deno.test("critical path: of two parallel children only the one that ended last", () => {
  const t = assembleTree("4bf92f3577b34da6a3ce929d0e0e4736", [
    span("r", undefined, "tracker.announce", 0, 30),
    span("u", "r", "peerstore.update_peer", 0, 2),
    span("p", "r", "peerstore.get_peers", 2, 10), // 2–12, alongside o
    span("o", "r", "originstore.get_origins", 3, 20), // 3–23
    span("s", "r", "policy.sort_peers", 24, 5),
  ]);
  assert.deepEqual([...criticalPath(t)].sort(), ["o", "r", "s", "u"]);
});

Deno.test("waterfall: one line per span under its parent, critical path, bars, errors, p2p line", () => {
  const text = renderWaterfall(tree(), { barWidth: 20 });
  const lines = text.split("\n");
  assert.match(
    lines[0],
    /^trace 4bf92f3577b34da6a3ce929d0e0e4736 {2}5 spans {2}100\.0 ms {2}1 failed/,
  );
  const row = (name: string) => lines.find((l) => l.includes(name))!;
  assert.match(
    row("GET /namespace"),
    /^\* kraken-agent {2}GET \/namespace\/\{namespace\}\/blobs\/\{digest\}/,
  );
  assert.match(
    row("agent.cache_lookup"),
    /^ {2}kraken-agent {4}agent\.cache_lookup/,
    "indented, not critical",
  );
  assert.match(row("storage.commit"), /^\* .*ERROR: digest mismatch$/);
  assert.match(row("GET /namespace"), /100\.0 ms \|████████████████████\|$/);
  assert.match(
    row("agent.stream"),
    /\| {18}█▍\|$/,
    "the bar sits where the span ran",
  );
  const p2p = lines[lines.indexOf(row(SPAN.schedulerDownload)) + 1];
  assert.match(
    p2p,
    /^ +p2p: 11 pieces: 4 from origins, 7 from agents, 0 at start; 2 peers; 176\.0 KiB received in 80 ms \(17\.6 Mbit\/s\)$/,
  );
  assert.ok(!text.includes("\x1b["), "no colour unless asked");
  const colored = renderWaterfall(tree(), { color: true });
  const failed = colored.split("\n").find((l) => l.includes("storage.commit"))!;
  assert.ok(
    failed.startsWith("\x1b[31m* kraken-agent") && failed.endsWith("digest mismatch\x1b[0m"),
  );
});

Deno.test("p2p summary only for spans that carry one; durations read well", () => {
  assert.equal(p2pSummary(span("x", undefined, "x", 0, 1)), undefined);
  assert.equal(formatDuration(850), "850 µs");
  assert.equal(formatDuration(1234), "1.23 ms");
  assert.equal(formatDuration(123_400), "123.4 ms");
  assert.equal(formatDuration(2_500_000), "2.50 s");
});
