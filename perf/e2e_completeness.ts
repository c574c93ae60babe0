/**
 * Trace completeness under load for `npm run perf`: a whole download cluster (testfs, two origins,
 * build-index, proxy, tracker, two agents; `tests/harness/cluster.ts`) exports every span to a real
 * Jaeger (`tests/harness/jaeger.ts`) while pushes and pulls run several at a time. Every request
 * carries a `traceparent` with a trace id chosen here, so each trace is looked up by id: a push
 * is one trace over its three Registry v2 requests (POST, PATCH, PUT) through the proxy; a pull is
 * an agent GET of a blob it does not hold (tracker, origin and P2P download inside). A trace is
 * whole when every span's parent is in Jaeger, or is one of the client's own span ids. Export
 * success comes from the nodes' own counters (`kraken_tracing_spans_exported_total` over
 * `…_sampled_total`) once their queues are empty.
 *
 * @module
 */

import { startDownloadCluster } from "../tests/harness/cluster.ts";
import { startJaeger } from "../tests/harness/jaeger.ts";
import type { ProcessGroup } from "../tests/harness/procs.ts";
import type { TraceTree } from "../tests/harness/trace_tree.ts";
import { digestOfBytes } from "../storage/digest.ts";
import { flushedCounters, randomBlob, requestTimeout, uploadBlob } from "./e2e.ts";
import { type CompletenessFigures, median } from "./report.ts";

/** Options of {@linkcode measureCompleteness}. */
export interface CompletenessOptions {
  /** Directory for the cluster's data and logs. */
  dir: string;
  /** Owns every process started (Jaeger is stopped before returning). */
  group: ProcessGroup;
  /** Pushes, and pulls, each (one trace per request set). */
  traces: number;
  /** Requests in flight at once (default 4). */
  concurrency?: number;
  /** Size of each pushed and pulled blob (default 256 KiB: several 64 KiB pieces). */
  blobBytes?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

/** A trace sent with known ids. */
export interface SentTrace {
  /** Hex trace id. */
  traceId: string;
  /** Span ids the client put in its `traceparent` headers (the roots' parents). */
  clientSpanIds: string[];
}

function hex(bytes: number): string {
  return [...crypto.getRandomValues(new Uint8Array(bytes))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A new trace id with `requests` client span ids. */
export function newTrace(requests: number): SentTrace {
  return {
    traceId: hex(16),
    clientSpanIds: Array.from({ length: requests }, () => hex(8)),
  };
}

/** The sampled `traceparent` of request `i` of a trace. */
export function traceparent(t: SentTrace, i: number): string {
  return `00-${t.traceId}-${t.clientSpanIds[i]}-01`;
}

/**
 * Whether a trace is whole: it has spans, and every span's parent is a span of the trace or one
 * of the client's span ids (a root span has its client's span as parent).
 */
export function isWhole(tree: TraceTree | undefined, sent: SentTrace): boolean {
  if (!tree || tree.spans.length === 0) return false;
  const ids = new Set(tree.spans.map((s) => s.spanId));
  const client = new Set(sent.clientSpanIds);
  return tree.spans.every((s) =>
    s.parentSpanId === undefined || ids.has(s.parentSpanId) || client.has(s.parentSpanId)
  );
}

/** Runs `tasks` with at most `concurrency` at once. */
export async function pool<T>(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<T>,
): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      out[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return out;
}

/** Pushes then pulls `traces` blobs under load and checks every trace in Jaeger. */
export async function measureCompleteness(
  options: CompletenessOptions,
): Promise<CompletenessFigures> {
  const { dir, group, traces } = options;
  const concurrency = options.concurrency ?? 4;
  const blobBytes = options.blobBytes ?? 256 * 1024;
  const log = options.log ?? (() => {});
  await using jaeger = await startJaeger({ maxTraces: 4 * traces + 1000 });
  const cluster = await startDownloadCluster({
    dir,
    group,
    agents: 2,
    otlpEndpoint: jaeger.otlpHttpEndpoint,
  });
  const roles = [
    ...cluster.origins,
    cluster.buildIndex,
    cluster.proxy,
    cluster.tracker,
    ...cluster.agents,
  ];
  const repo = "perf/complete";
  log(`completeness: ${traces} pushes then ${traces} pulls, ${concurrency} at a time`);
  const blobs = await Promise.all(Array.from({ length: traces }, async () => {
    const bytes = randomBlob(blobBytes);
    return { bytes, digest: await digestOfBytes(bytes) };
  }));
  const pushes = await pool(traces, concurrency, async (i) => {
    const t = newTrace(3);
    const { bytes, digest } = blobs[i];
    await uploadBlob(cluster.proxy.url, repo, bytes, digest, (step) => ({
      traceparent: traceparent(t, step),
    }));
    return t;
  });
  const pulls = await pool(traces, concurrency, async (i) => {
    const t = newTrace(1);
    const agent = cluster.agents[i % cluster.agents.length];
    const url = `${agent.url}/namespace/${encodeURIComponent(repo)}/blobs/${blobs[i].digest}`;
    const res = await fetch(url, {
      headers: { traceparent: traceparent(t, 0) },
      signal: requestTimeout(),
    });
    const body = await res.arrayBuffer();
    if (res.status !== 200 || body.byteLength !== blobBytes) {
      throw new Error(`pull ${url}: HTTP ${res.status}, ${body.byteLength} bytes`);
    }
    return t;
  });
  const counters = await flushedCounters(roles, 30_000);
  // Jaeger stores what it receives at once; a late batch still gets a few seconds.
  const check = async (sent: SentTrace[]) => {
    const trees = new Map<string, TraceTree | undefined>();
    const deadline = Date.now() + 10_000;
    let pending = sent;
    while (true) {
      const results = await pool(pending.length, 8, (i) => jaeger.getTrace(pending[i].traceId));
      pending.forEach((t, i) => trees.set(t.traceId, results[i]));
      pending = pending.filter((t) => !isWhole(trees.get(t.traceId), t));
      if (pending.length === 0 || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    const whole = sent.filter((t) => isWhole(trees.get(t.traceId), t)).length;
    const spans = median(sent.map((t) => trees.get(t.traceId)?.spans.length ?? 0));
    return { traces: sent.length, whole, spans };
  };
  const push = await check(pushes);
  const pull = await check(pulls);
  return {
    pull: { traces: pull.traces, whole: pull.whole },
    push: { traces: push.traces, whole: push.whole },
    spans: {
      sampled: counters.reduce((a, c) => a + c.sampled, 0),
      exported: counters.reduce((a, c) => a + c.exported, 0),
    },
    exportErrors: counters.reduce((a, c) => a + c.exportErrors, 0),
    spansPerTrace: { pull: pull.spans, push: push.spans },
  };
}
