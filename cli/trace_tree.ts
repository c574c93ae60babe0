/**
 * Traces as Jaeger's query API returns them, and the span tree built from them: what
 * `kraken trace` prints and what the flow tests' assertions (`tests/harness/trace_tree.ts`) walk.
 *
 * Jaeger's v1 JSON shape (what `/api/traces/{id}` returns, wrapped in `{ data: [...] }`):
 * a trace has `spans` and `processes`; each span has `spanID`, `operationName`, `references`
 * (`CHILD_OF` for the parent, `FOLLOWS_FROM` for OTLP span links), `startTime` and `duration` in
 * microseconds, `tags` (the span attributes plus `span.kind`, `otel.status_code`, ...), `logs`
 * (span events) and a `processID` naming an entry of `processes` (service name and resource tags).
 *
 * This module has no imports, so the demo, the CLI and the tests share it.
 *
 * @module
 */

/** One typed key/value as Jaeger's JSON API writes tags and log fields. */
export interface JaegerKeyValue {
  /** Attribute key. */
  key: string;
  /** Jaeger value type: `string`, `bool`, `int64`, `float64` or `binary`. */
  type?: string;
  /** The value, already typed by JSON (number, boolean or string). */
  value: unknown;
}

/** A span reference as Jaeger's JSON API writes it. */
export interface JaegerReference {
  /** `CHILD_OF` (the parent) or `FOLLOWS_FROM` (a link). */
  refType: string;
  /** Hex trace ID of the referenced span. */
  traceID: string;
  /** Hex span ID of the referenced span. */
  spanID: string;
}

/** A span as Jaeger's JSON API writes it. */
export interface JaegerSpan {
  /** Hex trace ID. */
  traceID: string;
  /** Hex span ID. */
  spanID: string;
  /** Span name. */
  operationName: string;
  /** Parent and link references. */
  references?: JaegerReference[] | null;
  /** Start time, microseconds since the Unix epoch. */
  startTime: number;
  /** Duration in microseconds. */
  duration: number;
  /** Span attributes and translated OTLP fields. */
  tags?: JaegerKeyValue[] | null;
  /** Span events. */
  logs?: { timestamp: number; fields?: JaegerKeyValue[] | null }[] | null;
  /** Key into the trace's `processes`. */
  processID: string;
  /** Jaeger's own remarks about the span (clock skew, invalid parent, ...). */
  warnings?: string[] | null;
}

/** A process (service plus resource attributes) as Jaeger's JSON API writes it. */
export interface JaegerProcess {
  /** `service.name` of the resource. */
  serviceName: string;
  /** The other resource attributes. */
  tags?: JaegerKeyValue[] | null;
}

/** One trace as Jaeger's JSON API writes it. */
export interface JaegerTrace {
  /** Hex trace ID. */
  traceID: string;
  /** All spans Jaeger holds for the trace, in no particular order. */
  spans: JaegerSpan[];
  /** Processes keyed by the spans' `processID`. */
  processes: Record<string, JaegerProcess>;
}

/** A span link (Jaeger `FOLLOWS_FROM` reference, or any reference that is not the parent). */
export interface SpanLink {
  /** Hex trace ID of the linked span. */
  traceId: string;
  /** Hex span ID of the linked span. */
  spanId: string;
  /** The Jaeger reference type it came from. */
  refType: string;
}

/** A span event (Jaeger log). */
export interface SpanEvent {
  /** The event name (`event` field), or `""` if the log has none. */
  name: string;
  /** Event time, microseconds since the Unix epoch. */
  timeUs: number;
  /** The other log fields. */
  attributes: Record<string, unknown>;
}

/** Span kind as OTel names it; `unspecified` when Jaeger carries no `span.kind` tag. */
export type SpanKindName =
  | "server"
  | "client"
  | "producer"
  | "consumer"
  | "internal"
  | "unspecified";

/** Span status; `unset` when Jaeger carries neither `otel.status_code` nor `error=true`. */
export type SpanStatusName = "unset" | "ok" | "error";

/** One span in a {@link TraceTree}. */
export interface SpanNode {
  /** Hex trace ID. */
  traceId: string;
  /** Hex span ID. */
  spanId: string;
  /** Hex span ID of the parent, or `undefined` for a span without a `CHILD_OF` reference. */
  parentSpanId: string | undefined;
  /** Span name (Jaeger `operationName`). */
  name: string;
  /** `service.name` of the span's process. */
  service: string;
  /**
   * All Jaeger tags of the span, which are the OTel attributes plus the fields Jaeger translates
   * into tags (`span.kind`, `otel.status_code`, `otel.status_description`, `error`,
   * `otel.scope.name`, ...).
   */
  attributes: Record<string, unknown>;
  /** Resource attributes of the span's process (without `service.name`, see {@link service}). */
  resource: Record<string, unknown>;
  /** Span kind, from the `span.kind` tag. */
  kind: SpanKindName;
  /** Span status, from `otel.status_code` / `error`. */
  status: SpanStatusName;
  /** Status description, from `otel.status_description`. */
  statusMessage: string | undefined;
  /** Start time, microseconds since the Unix epoch. */
  startUs: number;
  /** Duration in microseconds. */
  durationUs: number;
  /** Child spans, ordered by start time. */
  children: SpanNode[];
  /** References other than the parent. */
  links: SpanLink[];
  /** Span events, ordered by time. */
  events: SpanEvent[];
  /** Jaeger's warnings for the span. */
  warnings: string[];
}

/** A trace as a forest of spans. */
export interface TraceTree {
  /** Hex trace ID. */
  traceId: string;
  /**
   * Spans whose parent is absent: the true root, plus any span whose parent Jaeger does not hold
   * (not exported yet, dropped, or never sampled). Ordered by start time.
   */
  roots: SpanNode[];
  /** Every span of the trace, ordered by start time. */
  spans: SpanNode[];
}

const SPAN_KINDS: ReadonlySet<string> = new Set([
  "server",
  "client",
  "producer",
  "consumer",
  "internal",
]);

function keyValues(list: JaegerKeyValue[] | null | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of list ?? []) out[kv.key] = kv.value;
  return out;
}

function kindOf(attributes: Record<string, unknown>): SpanKindName {
  const raw = String(attributes["span.kind"] ?? "").toLowerCase();
  return SPAN_KINDS.has(raw) ? raw as SpanKindName : "unspecified";
}

function statusOf(attributes: Record<string, unknown>): SpanStatusName {
  const code = String(attributes["otel.status_code"] ?? "").toUpperCase();
  if (code === "ERROR" || attributes["error"] === true || attributes["error"] === "true") {
    return "error";
  }
  return code === "OK" ? "ok" : "unset";
}

function byStart(a: SpanNode, b: SpanNode): number {
  return a.startUs - b.startUs || a.name.localeCompare(b.name);
}

/**
 * Builds a {@link TraceTree} from one Jaeger trace object, or from a whole `/api/traces/{id}`
 * response (`{ data: [trace] }`).
 *
 * The parent of a span is its first `CHILD_OF` reference within the same trace; every other
 * reference becomes a link. A span whose parent is not in the trace becomes a root.
 *
 * @throws Error if the input is neither a Jaeger trace nor a response holding exactly one trace.
 */
export function traceTreeFromJaeger(input: JaegerTrace | { data: JaegerTrace[] }): TraceTree {
  const trace = "data" in input ? onlyTrace(input.data) : input;
  if (!trace || !Array.isArray(trace.spans) || typeof trace.processes !== "object") {
    throw new Error("not a Jaeger trace: expected an object with spans[] and processes{}");
  }
  const nodes = new Map<string, SpanNode>();
  for (const span of trace.spans) {
    const process = trace.processes[span.processID];
    const attributes = keyValues(span.tags);
    const refs = span.references ?? [];
    const parentRef = refs.find((r) => r.refType === "CHILD_OF" && r.traceID === span.traceID);
    const resource = keyValues(process?.tags);
    delete resource["service.name"];
    nodes.set(span.spanID, {
      traceId: span.traceID,
      spanId: span.spanID,
      parentSpanId: parentRef?.spanID,
      name: span.operationName,
      service: process?.serviceName ?? "",
      attributes,
      resource,
      kind: kindOf(attributes),
      status: statusOf(attributes),
      statusMessage: attributes["otel.status_description"] === undefined
        ? undefined
        : String(attributes["otel.status_description"]),
      startUs: span.startTime,
      durationUs: span.duration,
      children: [],
      links: refs.filter((r) => r !== parentRef).map((r) => ({
        traceId: r.traceID,
        spanId: r.spanID,
        refType: r.refType,
      })),
      events: (span.logs ?? []).map((log) => {
        const fields = keyValues(log.fields);
        const name = fields["event"] === undefined ? "" : String(fields["event"]);
        delete fields["event"];
        return { name, timeUs: log.timestamp, attributes: fields };
      }).sort((a, b) => a.timeUs - b.timeUs),
      warnings: span.warnings ?? [],
    });
  }
  return assembleTree(trace.traceID, nodes.values());
}

/**
 * Links spans of one trace into a tree: each span goes under its parent when the parent is among
 * them, otherwise it is a root. Children and roots are ordered by start time.
 */
export function assembleTree(traceId: string, spans: Iterable<SpanNode>): TraceTree {
  const nodes = new Map<string, SpanNode>();
  for (const node of spans) nodes.set(node.spanId, node);
  const roots: SpanNode[] = [];
  for (const node of nodes.values()) {
    const parent = node.parentSpanId === undefined ? undefined : nodes.get(node.parentSpanId);
    if (parent) parent.children.push(node);
    else roots.push(node);
  }
  for (const node of nodes.values()) node.children.sort(byStart);
  return { traceId, roots: roots.sort(byStart), spans: [...nodes.values()].sort(byStart) };
}

function onlyTrace(data: JaegerTrace[] | undefined): JaegerTrace {
  if (!Array.isArray(data) || data.length !== 1) {
    throw new Error(
      `expected a Jaeger response with exactly one trace, got ${
        Array.isArray(data) ? data.length : "no data array"
      }`,
    );
  }
  return data[0];
}

/** Returns every span of the tree that satisfies `predicate`, in start-time order. */
export function findSpans(tree: TraceTree, predicate: (span: SpanNode) => boolean): SpanNode[] {
  return tree.spans.filter(predicate);
}
