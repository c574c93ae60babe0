/**
 * Prints a trace as a terminal waterfall, the one renderer of `kraken trace` and the demo:
 *
 * ```
 * trace 4bf92f3577b34da6a3ce929d0e0e4736  9 spans  412.3 ms  (* critical path)
 * * kraken-agent    GET /namespace/{namespace}/blobs/{digest}    412.3 ms |██████████████████████|
 * * kraken-agent      agent.download_blob                        410.9 ms |██████████████████████|
 * * kraken-agent        scheduler.download                       402.0 ms | █████████████████████|
 *                         p2p: 11 pieces: 11 from origins, 0 from agents, 0 at start; 1 peer; ...
 *   kraken-tracker        POST /announce/{infohash}                2.1 ms |  ▏                   |
 * ```
 *
 * One line per span, children under their parent (indented, by start time): the marker column
 * (`*` on the critical path), service, span name, duration and a bar placed on the trace's time
 * axis. A failed span is red and ends with its status message. The critical path is the chain of
 * spans the trace's end waits for: from a span's end, the child that finished last before it, then
 * the child that finished last before that one started (children still running then ran in
 * parallel and are not on it), and so on, recursively. Under a
 * `scheduler.download` span its P2P summary (the `kraken.p2p.*` attributes) follows on one line.
 * Colour (ANSI) only when asked for.
 *
 * @module
 */

import { ATTR, SPAN } from "../tracing/names.ts";
import type { SpanNode, TraceTree } from "./trace_tree.ts";

/** Options of {@linkcode renderWaterfall}. */
export interface WaterfallOptions {
  /** ANSI colours: errors red, the critical path bold (default false). */
  color?: boolean;
  /** Width of the duration bar in characters (default 40). */
  barWidth?: number;
  /** Widest service column (default 16). */
  serviceWidth?: number;
}

const RED = "\x1b[31m";
const BOLD = "\x1b[1m";
const DIM = "\x1b[2m";
const RESET = "\x1b[0m";
const BLOCKS = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];

/** A duration in µs as `12.3 ms`, `1.24 s` or `850 µs`. */
export function formatDuration(us: number): string {
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 1_000_000) return `${(us / 1000).toFixed(us < 10_000 ? 2 : 1)} ms`;
  return `${(us / 1_000_000).toFixed(2)} s`;
}

/** Bytes as `512 B`, `3.4 KiB`, `10.0 MiB`. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

const end = (s: SpanNode) => s.startUs + s.durationUs;

/**
 * The span ids on the critical path of `tree`: the root that ends last, and below every critical
 * span the children the span's end waited for (see the module doc).
 */
export function criticalPath(tree: TraceTree): Set<string> {
  const out = new Set<string>();
  const visit = (span: SpanNode) => {
    out.add(span.spanId);
    const spanEnd = end(span);
    let t = spanEnd;
    const children = [...span.children];
    while (true) {
      // A child still running at `t` ran alongside the one picked after it, so it did not hold
      // the span up; only at the span's own end may a child end later (clock skew between hosts).
      let best: SpanNode | undefined;
      for (const c of children) {
        if (c.startUs >= t || (end(c) > t && t !== spanEnd)) continue;
        if (!best || Math.min(end(c), t) > Math.min(end(best), t)) best = c;
      }
      if (!best) break;
      visit(best);
      t = best.startUs;
      children.splice(children.indexOf(best), 1);
    }
  };
  const last = [...tree.roots].sort((a, b) => end(b) - end(a))[0];
  if (last) visit(last);
  return out;
}

/** The one-line P2P summary of a `scheduler.download` span, or undefined without one. */
export function p2pSummary(span: SpanNode): string | undefined {
  const a = span.attributes;
  const n = (key: string) => (typeof a[key] === "number" ? a[key] as number : undefined);
  const total = n(ATTR.p2pPiecesTotal);
  if (total === undefined) return undefined;
  const peers = n(ATTR.p2pPeersConnected) ?? 0;
  const parts = [
    `${total} piece${total === 1 ? "" : "s"}: ${n(ATTR.p2pPiecesFromOrigins) ?? 0} from ` +
    `origins, ${n(ATTR.p2pPiecesFromAgents) ?? 0} from agents, ` +
    `${n(ATTR.p2pPiecesAtStart) ?? 0} at start`,
    `${peers} peer${peers === 1 ? "" : "s"}`,
  ];
  const invalid = n(ATTR.p2pPiecesInvalid) ?? 0;
  const duplicate = n(ATTR.p2pPiecesDuplicate) ?? 0;
  if (invalid > 0 || duplicate > 0) parts.push(`${invalid} invalid, ${duplicate} duplicate`);
  const received = n(ATTR.p2pBytesReceived);
  const ms = n(ATTR.p2pDurationMs);
  if (received !== undefined) {
    const rate = n(ATTR.p2pThroughputMbps);
    parts.push(
      `${formatBytes(received)} received` + (ms !== undefined ? ` in ${ms} ms` : "") +
        (rate !== undefined ? ` (${rate} Mbit/s)` : ""),
    );
  }
  const served = n(ATTR.p2pBytesServed);
  if (served) parts.push(`${formatBytes(served)} served`);
  return `p2p: ${parts.join("; ")}`;
}

function bar(span: SpanNode, t0: number, total: number, width: number): string {
  const scale = total > 0 ? width / total : 0;
  const from = Math.min(width, (span.startUs - t0) * scale);
  const length = Math.max(1 / 8, span.durationUs * scale);
  const lead = Math.floor(from);
  const eighths = Math.max(
    1,
    Math.round((from - lead + length) * 8) - Math.round((from - lead) * 8),
  );
  let body = "█".repeat(Math.floor(eighths / 8)) + BLOCKS[eighths % 8];
  body = body.slice(0, Math.max(1, width - lead));
  return `|${" ".repeat(lead)}${body}${" ".repeat(Math.max(0, width - lead - [...body].length))}|`;
}

/** The waterfall of `tree` as lines of text (see the module doc). */
export function renderWaterfall(tree: TraceTree, options: WaterfallOptions = {}): string {
  const { color = false, barWidth = 40, serviceWidth = 16 } = options;
  const paint = (code: string, text: string) => color ? `${code}${text}${RESET}` : text;
  if (tree.spans.length === 0) return `trace ${tree.traceId}: no spans`;
  const t0 = Math.min(...tree.spans.map((s) => s.startUs));
  const t1 = Math.max(...tree.spans.map(end));
  const critical = criticalPath(tree);
  const rows: { span: SpanNode; depth: number }[] = [];
  const walk = (span: SpanNode, depth: number) => {
    rows.push({ span, depth });
    for (const child of span.children) walk(child, depth + 1);
  };
  for (const root of tree.roots) walk(root, 0);
  const service = Math.min(serviceWidth, Math.max(...rows.map((r) => r.span.service.length)));
  const nameWidth = Math.max(...rows.map((r) => r.depth * 2 + r.span.name.length));
  const errors = tree.spans.filter((s) => s.status === "error").length;
  const lines = [
    `trace ${tree.traceId}  ${tree.spans.length} spans  ${formatDuration(t1 - t0)}` +
    (errors > 0 ? `  ${paint(RED, `${errors} failed`)}` : "") + "  (* critical path)",
  ];
  for (const { span, depth } of rows) {
    const onPath = critical.has(span.spanId);
    const name = `${"  ".repeat(depth)}${span.name}`.padEnd(nameWidth);
    const svc = span.service.slice(0, service).padEnd(service);
    const text =
      `${onPath ? "*" : " "} ${svc}  ${name}  ${formatDuration(span.durationUs).padStart(9)} ` +
      bar(span, t0, t1 - t0, barWidth);
    if (span.status === "error") {
      lines.push(
        paint(RED, `${text}  ERROR${span.statusMessage ? `: ${span.statusMessage}` : ""}`),
      );
    } else {
      lines.push(onPath ? paint(BOLD, text) : text);
    }
    const summary = span.name === SPAN.schedulerDownload ? p2pSummary(span) : undefined;
    if (summary) lines.push(paint(DIM, `${" ".repeat(service + 4 + depth * 2 + 2)}${summary}`));
  }
  return lines.join("\n");
}
