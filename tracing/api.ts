/**
 * The span helpers roles use: {@linkcode withSpan}, error/event/attribute helpers on the active
 * span, and carrying a trace context through storage (the write-back queue) and back.
 *
 * Roles import these (through `tracing/mod.ts`) instead of touching OpenTelemetry directly.
 *
 * @module
 */

import {
  type Attributes,
  type Context,
  context as contextApi,
  INVALID_SPAN_CONTEXT,
  isSpanContextValid,
  type Link,
  ProxyTracerProvider,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Tracer,
  type TracerProvider,
} from "@opentelemetry/api";
import { contextWithSpan } from "./context.ts";
import { ATTR, TRACER_NAME } from "./names.ts";

// The API's provider while none is registered (its no-op one, a singleton).
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();
let resolvedProvider: TracerProvider | undefined;
let resolvedTracer: Tracer | undefined;

/**
 * Kraken's tracer of the registered tracer provider, or undefined while none is registered (tracing
 * off). Resolved once per registered provider: `trace.getTracer` goes through the API's proxy and
 * the provider's scope map on every call, and without a provider builds a new proxy tracer each time.
 */
export function registeredTracer(): Tracer | undefined {
  const global = trace.getTracerProvider();
  const provider = global instanceof ProxyTracerProvider ? global.getDelegate() : global;
  if (provider !== resolvedProvider) {
    resolvedProvider = provider;
    resolvedTracer = provider === NOOP_PROVIDER ? undefined : provider.getTracer(TRACER_NAME);
  }
  return resolvedTracer;
}

/** {@linkcode registeredTracer}, or the API's tracer (a no-op one) when none is registered. */
export function currentTracer(): Tracer {
  return registeredTracer() ?? trace.getTracer(TRACER_NAME);
}

/** A trace context in the storable form upstream's `writeback_task` keeps (hex strings). */
export interface StoredTraceContext {
  /** 32 hex digits. */
  traceId: string;
  /** 16 hex digits. */
  spanId: string;
  /** Two hex digits, `01` when sampled. */
  traceFlags: string;
}

/** Options of {@linkcode withSpan}. */
export interface WithSpanOptions {
  /** Span kind; internal by default. */
  kind?: SpanKind;
  /** Links to other spans. */
  links?: Link[];
  /** Parent context; the active one by default. */
  parent?: Context;
  /**
   * The span is a leaf: `fn` starts no span and makes no traced call (it reads or writes through the
   * `span` argument, never the active span). {@linkcode withSpan} then records the span around `fn`
   * without making it active, which saves the context switch a recorded span otherwise costs.
   * Default false.
   */
  leaf?: boolean;
}

/**
 * Runs `fn` inside a new active span named `name`, ends the span when `fn` settles, and records a
 * thrown error (status ERROR, exception event) before rethrowing it. A span that is not recorded
 * and carries its parent's context (tracing off, an unsampled child) is not made active: `fn` runs
 * in the parent context, which propagates the same trace. A leaf (`options.leaf`) is never made
 * active.
 */
export function withSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => T | Promise<T>,
  options: WithSpanOptions = {},
): Promise<T> {
  const parent = options.parent ?? contextApi.active();
  const span = currentTracer().startSpan(
    name,
    { kind: options.kind ?? SpanKind.INTERNAL, attributes, links: options.links },
    parent,
  );
  if (span.isRecording()) {
    return options.leaf ? runAround(span, fn) : runInOwnContext(span, parent, fn);
  }
  const sc = span.spanContext();
  // A span that records nothing and passes on what the parent context already does (tracing off,
  // or an unsampled child) needs no context of its own, and nothing to end or mark: `fn` runs in
  // the parent's context, without the async frame a recorded span needs. A leaf has no children to
  // pass anything on to.
  if (!options.leaf && sc !== INVALID_SPAN_CONTEXT && sc !== trace.getSpanContext(parent)) {
    return runInOwnContext(span, parent, fn);
  }
  // A leaf, or a parent that is the active context, needs no switch either.
  const inPlace = options.leaf || options.parent === undefined || parent === contextApi.active();
  try {
    return Promise.resolve(inPlace ? fn(span) : contextApi.with(parent, fn, undefined, span));
  } catch (error) {
    return Promise.reject(error);
  }
}

// `withSpan` for a span with a context of its own: active for `fn`, ended when `fn` settles.
function runInOwnContext<T>(
  span: Span,
  parent: Context,
  fn: (span: Span) => T | Promise<T>,
): Promise<T> {
  return contextApi.with(contextWithSpan(parent, span), runAround<T>, undefined, span, fn);
}

// `withSpan` for a recorded span, in whatever context it is called: `fn` runs, a thrown error
// marks the span, and the span ends when `fn` settles (a leaf is called so, in the caller's). Not
// an async function: its frame, promise and await were ~0.7 KB of garbage per recorded span, and a
// synchronous `fn` now ends its span at once.
function runAround<T>(span: Span, fn: (span: Span) => T | Promise<T>): Promise<T> {
  let result: T | PromiseLike<T>;
  try {
    result = fn(span);
    // Inside the try: reading a hostile thenable's `then` may throw.
    if (!isThenable(result)) {
      span.end();
      return Promise.resolve(result);
    }
  } catch (error) {
    failSpan(span, error);
    return Promise.reject(error);
  }
  return Promise.resolve(result).then(
    (value) => {
      span.end();
      return value;
    },
    (error) => {
      failSpan(span, error);
      throw error;
    },
  );
}

function failSpan(span: Span, error: unknown): void {
  markError(span, error);
  span.end();
}

function isThenable<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return value !== null && (typeof value === "object" || typeof value === "function") &&
    typeof (value as PromiseLike<T>).then === "function";
}

/** Starts a span without activating it; the caller ends it (for spans that outlive one call). */
export function startSpan(
  name: string,
  attributes: Attributes = {},
  options: WithSpanOptions = {},
): Span {
  return currentTracer().startSpan(
    name,
    { kind: options.kind ?? SpanKind.INTERNAL, attributes, links: options.links },
    options.parent ?? contextApi.active(),
  );
}

/**
 * Runs `fn` with `span` active (children started inside become its children). A span that records
 * nothing and carries what the active context already does (tracing off, an unsampled child) is not
 * made active: `fn` runs in the active context, as {@linkcode withSpan} does.
 */
export function runInSpan<T>(span: Span, fn: () => T): T {
  const active = contextApi.active();
  const ctx = contextOfSpan(span, active);
  return ctx === active ? fn() : contextApi.with(ctx, fn);
}

/**
 * The context children of `span` start in: `parent` (default: the active context) with `span` set
 * into it, or `parent` itself when that would change nothing children or propagation see (a span
 * that records nothing and carries `parent`'s span context: tracing off, an unsampled child). Pass
 * it as {@linkcode WithSpanOptions.parent} to parent spans on `span` without making it active.
 */
export function contextOfSpan(span: Span, parent: Context = contextApi.active()): Context {
  if (!span.isRecording()) {
    const sc = span.spanContext();
    const current = trace.getSpanContext(parent);
    if (sc === current || (sc === INVALID_SPAN_CONTEXT && current === undefined)) return parent;
  }
  return contextWithSpan(parent, span);
}

/** Runs `fn` with `ctx` as the active context. */
export function runWithContext<T>(ctx: Context, fn: () => T): T {
  return contextApi.with(ctx, fn);
}

/** The active context (to hand to work that continues later). */
export function activeContext(): Context {
  return contextApi.active();
}

/** Marks a span as failed with `error`. */
export function markError(span: Span, error: unknown): void {
  if (!span.isRecording()) return;
  const e = error instanceof Error ? error : new Error(String(error));
  span.recordException(e);
  span.setAttribute(ATTR.errorType, e.name || "Error");
  span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
}

/** Records an error on the active span. */
export function recordError(error: unknown): void {
  const span = trace.getActiveSpan();
  if (span) markError(span, error);
}

/** Adds an event to the active span. */
export function addEvent(name: string, attributes?: Attributes): void {
  trace.getActiveSpan()?.addEvent(name, attributes);
}

/** Sets attributes on the active span. */
export function setAttributes(attributes: Attributes): void {
  trace.getActiveSpan()?.setAttributes(attributes);
}

/** The active span's ids, for logs and responses; undefined without a valid span. */
export function activeSpanIds(ctx: Context = contextApi.active()):
  | { traceId: string; spanId: string; sampled: boolean }
  | undefined {
  const sc = trace.getSpanContext(ctx);
  if (!sc || !isSpanContextValid(sc)) return undefined;
  return {
    traceId: sc.traceId,
    spanId: sc.spanId,
    sampled: (sc.traceFlags & TraceFlags.SAMPLED) !== 0,
  };
}

/**
 * The active span's ids as log fields (`trace_id`, `span_id`): the `contextFields` hook of
 * `common/log.ts`'s `createLogger`.
 */
export function traceLogFields(): { trace_id: string; span_id: string } | undefined {
  const ids = activeSpanIds();
  return ids && { trace_id: ids.traceId, span_id: ids.spanId };
}

/** The active trace context in storable form, or undefined without a valid span. */
export function storeTraceContext(
  ctx: Context = contextApi.active(),
): StoredTraceContext | undefined {
  const sc = trace.getSpanContext(ctx);
  if (!sc || !isSpanContextValid(sc)) return undefined;
  return {
    traceId: sc.traceId,
    spanId: sc.spanId,
    traceFlags: (sc.traceFlags & 0xff).toString(16).padStart(2, "0"),
  };
}

/**
 * Rebuilds a context whose parent is a stored trace context (for example the request that queued a
 * write-back task), so work done later, even after a restart, joins the original trace.
 */
export function contextFromStored(stored: Partial<StoredTraceContext> | undefined): Context {
  const base = contextApi.active();
  if (!stored?.traceId || !stored.spanId) return base;
  const sc = {
    traceId: stored.traceId,
    spanId: stored.spanId,
    traceFlags: parseInt(stored.traceFlags || "0", 16) & TraceFlags.SAMPLED,
    isRemote: true,
  };
  return isSpanContextValid(sc) ? trace.setSpanContext(base, sc) : base;
}

/** A span link to the active span (for work that cannot be parented but should be correlated). */
export function linkToActive(attributes?: Attributes): Link | undefined {
  const sc = trace.getSpanContext(contextApi.active());
  return sc && isSpanContextValid(sc) ? { context: sc, attributes } : undefined;
}

export { SpanKind };
export type { Attributes, Context, Link, Span };
