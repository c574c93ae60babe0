/**
 * Trace trees built from Jaeger's query-API JSON, a printer for them, and a structural assertion.
 *
 * This module has no imports, so the demo can print trees with it without pulling in test code.
 *
 * ```ts
 * const tree = traceTreeFromJaeger(await (await fetch(`${queryUrl}/api/traces/${id}`)).json());
 * console.log(formatTree(tree));
 * assertTree(tree, {
 *   name: "GET /namespace/{namespace}/blobs/{digest}",
 *   service: "kraken-agent",
 *   kind: "server",
 *   children: [{ name: SPAN.agentDownloadBlob, children: [{ name: SPAN.agentCacheLookup }] }],
 * });
 * ```
 *
 * Jaeger's v1 JSON shape (what `/api/traces/{id}` returns, wrapped in `{ data: [...] }`):
 * a trace has `spans` and `processes`; each span has `spanID`, `operationName`, `references`
 * (`CHILD_OF` for the parent, `FOLLOWS_FROM` for OTLP span links), `startTime` and `duration` in
 * microseconds, `tags` (the span attributes plus `span.kind`, `otel.status_code`, ...), `logs`
 * (span events) and a `processID` naming an entry of `processes` (service name and resource tags).
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

/** Expected value of one attribute in {@link ExpectedSpan.attrs}. */
export type ExpectedValue =
  | string
  | number
  | boolean
  | RegExp
  | ((actual: unknown) => boolean);

/** A partial description of a span and its subtree, for {@link assertTree}. */
export interface ExpectedSpan {
  /** The span name, exactly or as a pattern. */
  name: string | RegExp;
  /** `service.name` the span must come from. */
  service?: string;
  /** Span kind. */
  kind?: SpanKindName;
  /** Span status. */
  status?: SpanStatusName;
  /**
   * Attributes that must be present with these values (a subset; other attributes are allowed).
   * A RegExp is tested against `String(actual)`; a function is a predicate on the actual value.
   */
  attrs?: Record<string, ExpectedValue>;
  /** Attribute keys that must NOT be present (for "no credentials in attributes" checks). */
  absentAttrs?: string[];
  /** Minimum number of links (non-parent references). */
  minLinks?: number;
  /** Names of events that must be present. */
  events?: string[];
  /**
   * Direct children that must exist, order-insensitive; extra actual children are allowed and
   * every expected child needs its own actual span.
   */
  children?: ExpectedSpan[];
}

/** Options for {@link formatTree}. */
export interface FormatTreeOptions {
  /** Also print every span's attributes (default `false`). */
  attributes?: boolean;
  /** Indentation per level (default two spaces). */
  indent?: string;
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

function formatDurationMs(us: number): string {
  return `${(us / 1000).toFixed(us < 10_000 ? 3 : 1)} ms`;
}

/**
 * Prints a trace as an indented tree, one span per line:
 * `[service] name  12.3 ms`, with the span kind when it is not internal and `ERROR` on failed
 * spans. Links and (optionally) attributes follow on indented lines.
 */
export function formatTree(tree: TraceTree, options: FormatTreeOptions = {}): string {
  const { attributes = false, indent = "  " } = options;
  const lines = [`trace ${tree.traceId} (${tree.spans.length} spans)`];
  const visit = (node: SpanNode, depth: number) => {
    const pad = indent.repeat(depth + 1);
    const kind = node.kind === "internal" || node.kind === "unspecified" ? "" : ` ${node.kind}`;
    const status = node.status === "error"
      ? ` ERROR${node.statusMessage ? `: ${node.statusMessage}` : ""}`
      : "";
    lines.push(
      `${pad}[${node.service}] ${node.name}  ${formatDurationMs(node.durationUs)}${kind}${status}`,
    );
    for (const link of node.links) {
      lines.push(`${pad}${indent}~> ${link.refType} ${link.traceId}/${link.spanId}`);
    }
    if (attributes) {
      for (
        const [key, value] of Object.entries(node.attributes).sort(([a], [b]) => a < b ? -1 : 1)
      ) {
        lines.push(`${pad}${indent}. ${key}=${JSON.stringify(value)}`);
      }
    }
    for (const child of node.children) visit(child, depth + 1);
  };
  for (const root of tree.roots) visit(root, 0);
  return lines.join("\n");
}

function valueMatches(expected: ExpectedValue, actual: unknown): boolean {
  if (expected instanceof RegExp) return actual !== undefined && expected.test(String(actual));
  if (typeof expected === "function") return expected(actual);
  return actual === expected;
}

function describe(expected: ExpectedSpan): string {
  return `${expected.service ? `[${expected.service}] ` : ""}${String(expected.name)}`;
}

/** Why `node` does not match `expected` by itself (ignoring children), or `undefined`. */
function ownMismatch(node: SpanNode, expected: ExpectedSpan): string | undefined {
  const name = expected.name;
  if (name instanceof RegExp ? !name.test(node.name) : node.name !== name) {
    return `name is "${node.name}"`;
  }
  if (expected.service !== undefined && node.service !== expected.service) {
    return `service is "${node.service}", expected "${expected.service}"`;
  }
  if (expected.kind !== undefined && node.kind !== expected.kind) {
    return `kind is ${node.kind}, expected ${expected.kind}`;
  }
  if (expected.status !== undefined && node.status !== expected.status) {
    return `status is ${node.status}, expected ${expected.status}`;
  }
  for (const [key, want] of Object.entries(expected.attrs ?? {})) {
    const got = node.attributes[key];
    if (!valueMatches(want, got)) {
      return `attribute ${key} is ${got === undefined ? "absent" : JSON.stringify(got)}, expected ${
        typeof want === "function" ? "a value passing the predicate" : String(want)
      }`;
    }
  }
  for (const key of expected.absentAttrs ?? []) {
    if (key in node.attributes) {
      return `attribute ${key} must be absent but is ${JSON.stringify(node.attributes[key])}`;
    }
  }
  if (expected.minLinks !== undefined && node.links.length < expected.minLinks) {
    return `has ${node.links.length} links, expected at least ${expected.minLinks}`;
  }
  for (const event of expected.events ?? []) {
    if (!node.events.some((e) => e.name === event)) {
      return `has no event "${event}" (events: ${node.events.map((e) => e.name).join(", ")})`;
    }
  }
  return undefined;
}

function matches(node: SpanNode, expected: ExpectedSpan): boolean {
  return ownMismatch(node, expected) === undefined &&
    assignChildren(node.children, expected.children ?? []);
}

/** Backtracking search for distinct actual children for every expected child. */
function assignChildren(
  actual: SpanNode[],
  expected: ExpectedSpan[],
  used: Set<SpanNode> = new Set(),
): boolean {
  if (expected.length === 0) return true;
  const [first, ...rest] = expected;
  for (const candidate of actual) {
    if (used.has(candidate) || !matches(candidate, first)) continue;
    used.add(candidate);
    if (assignChildren(actual, rest, used)) return true;
    used.delete(candidate);
  }
  return false;
}

/**
 * Explains the first failure below a set of candidates, following the candidate that gets
 * furthest (same name first), so the message points at the deepest missing or wrong span.
 */
function explain(candidates: SpanNode[], expected: ExpectedSpan, path: string): string {
  const named = candidates.filter((c) =>
    expected.name instanceof RegExp ? expected.name.test(c.name) : c.name === expected.name
  );
  if (named.length === 0) {
    const names = candidates.map((c) => `[${c.service}] ${c.name}`);
    return `no span ${describe(expected)} under ${path}; spans there: ${
      names.length ? names.join(", ") : "(none)"
    }`;
  }
  const reasons: string[] = [];
  for (const node of named) {
    const own = ownMismatch(node, expected);
    if (own) {
      reasons.push(`${path} > ${describe(expected)} (span ${node.spanId}): ${own}`);
      continue;
    }
    const here = `${path} > ${node.name}`;
    const missing = (expected.children ?? []).find((child) =>
      !node.children.some((c) => matches(c, child))
    );
    if (missing) return explain(node.children, missing, here);
    return `${here}: children ${
      (expected.children ?? []).map(describe).join(", ")
    } each match, but not all by different spans`;
  }
  return reasons.join("\n");
}

/**
 * Asserts that some root of `tree` matches `expected` (name, service, kind, status, attributes,
 * events, links) and that every expected child, recursively, matches a distinct direct child of
 * the matched span. Extra actual spans are allowed; order does not matter.
 *
 * @throws Error naming the deepest mismatch and printing the whole actual tree.
 */
export function assertTree(tree: TraceTree, expected: ExpectedSpan): void {
  if (tree.roots.some((root) => matches(root, expected))) return;
  throw new Error(
    `trace ${tree.traceId} does not match the expected tree:\n${
      explain(tree.roots, expected, "(trace root)")
    }\nactual tree:\n${formatTree(tree, { attributes: true })}`,
  );
}
