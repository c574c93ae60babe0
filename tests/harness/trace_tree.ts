/**
 * Trace trees for the flow tests: the Jaeger model of `cli/trace_tree.ts` (re-exported), a plain
 * printer for failure messages, and a structural assertion.
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
 * @module
 */

import type { SpanKindName, SpanNode, SpanStatusName, TraceTree } from "../../cli/trace_tree.ts";

export * from "../../cli/trace_tree.ts";

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
