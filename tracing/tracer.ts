/**
 * The kraken tracer and tracer provider: implementations of the `@opentelemetry/api` `Tracer` and
 * `TracerProvider` interfaces built for a low per-span cost.
 *
 * A span start asks the {@linkcode Sampler} (the SDK's interface, so any OTel sampler plugs in) and
 * a {@linkcode SpanGate} (the circuit breaker) and then either creates a {@linkcode RecordingSpan}
 * or returns a non-recording span that still carries the trace context, so propagation continues
 * when a span is not sampled or tracing is shed under load.
 *
 * @module
 */

import {
  type Attributes,
  type Context,
  context as contextApi,
  INVALID_SPAN_CONTEXT,
  type Link,
  type Span,
  SpanKind,
  type SpanOptions,
  trace,
  TraceFlags,
  type Tracer,
  type TracerProvider,
} from "@opentelemetry/api";
import type { Resource } from "@opentelemetry/resources";
import { type Sampler, SamplingDecision, type SpanProcessor } from "@opentelemetry/sdk-trace";
import { contextWithSpan } from "./context.ts";
import { LocalSpanContext, newTraceId } from "./ids.ts";
import { isPropagatable } from "./propagation.ts";
import {
  DEFAULT_SPAN_LIMITS,
  RecordingSpan,
  type SpanLimits,
  type SpanShared,
  type SpanSink,
} from "./span.ts";

/** Decides per span start whether tracing is allowed at all (the circuit breaker's seam). */
export interface SpanGate {
  /** O(1) and allocation-free: false while tracing is shed. */
  allow(): boolean;
}

/** Counters the tracer bumps on its hot path (plain number fields, no allocation). */
export interface TracerCounters {
  /** Span starts, sampled or not. */
  spansCreated: number;
  /** Span starts that produced a recording, sampled span. */
  spansSampled: number;
  /** Span starts refused by the gate (breaker open). */
  droppedBreaker: number;
}

/** Creates a zeroed {@linkcode TracerCounters}. */
export function newTracerCounters(): TracerCounters {
  return { spansCreated: 0, spansSampled: 0, droppedBreaker: 0 };
}

/** Options of {@linkcode KrakenTracerProvider}. */
export interface TracerProviderOptions {
  /** Resource shared by every span (service.name and friends). */
  resource: Resource;
  /** Sampler consulted on every span start. */
  sampler: Sampler;
  /** Receives ended spans (the batch export processor). */
  sink: SpanSink;
  /** Optional gate (circuit breaker); absent means always allowed. */
  gate?: SpanGate;
  /** Counters to bump; a private set is created when absent. */
  counters?: TracerCounters;
  /** Span limits. Default {@linkcode DEFAULT_SPAN_LIMITS}. */
  limits?: SpanLimits;
  /**
   * Stock OpenTelemetry `SpanProcessor`s told about every recording span's start (`onStart`);
   * their `onEnd` is the sink's business (see `tracing/processors.ts`).
   */
  startListeners?: readonly SpanProcessor[];
}

const ALWAYS: SpanGate = { allow: () => true };
// Shared empties for span starts without attributes or links; samplers only read them.
const NO_ATTRIBUTES: Attributes = Object.freeze({});
const NO_LINKS: Link[] = Object.freeze([]) as unknown as Link[];
const NO_LISTENERS: readonly SpanProcessor[] = Object.freeze([]);

/** A tracer bound to one instrumentation scope of a {@linkcode KrakenTracerProvider}. */
export class KrakenTracer implements Tracer {
  readonly #shared: SpanShared;
  readonly #sampler: Sampler;
  readonly #gate: SpanGate;
  readonly #counters: TracerCounters;
  readonly #startListeners: readonly SpanProcessor[];

  /** Use {@linkcode KrakenTracerProvider.getTracer} rather than constructing directly. */
  constructor(
    shared: SpanShared,
    sampler: Sampler,
    gate: SpanGate,
    counters: TracerCounters,
    startListeners: readonly SpanProcessor[] = NO_LISTENERS,
  ) {
    this.#shared = shared;
    this.#sampler = sampler;
    this.#gate = gate;
    this.#counters = counters;
    this.#startListeners = startListeners;
  }

  /** Starts a span as a child of the span in `ctx` (the active context by default). */
  startSpan(name: string, options: SpanOptions = {}, ctx: Context = contextApi.active()): Span {
    this.#counters.spansCreated++;
    if (options.root) ctx = trace.deleteSpan(ctx);
    const parent = trace.getSpanContext(ctx);
    // Our own contexts are valid by construction (and checking would render their lazy span id).
    const hasParent = parent !== undefined &&
      (parent instanceof LocalSpanContext || isPropagatable(parent));
    if (!this.#gate.allow()) {
      // Shed: record nothing, but keep passing the caller's context downstream unchanged.
      this.#counters.droppedBreaker++;
      return trace.wrapSpanContext(hasParent ? parent : INVALID_SPAN_CONTEXT);
    }
    const traceId = hasParent ? parent.traceId : newTraceId();
    const kind = options.kind ?? SpanKind.INTERNAL;
    const attributes = options.attributes ?? NO_ATTRIBUTES;
    const result = this.#sampler.shouldSample(
      ctx,
      traceId,
      name,
      kind,
      attributes,
      options.links ?? NO_LINKS,
    );
    const traceState = result.traceState ?? (hasParent ? parent.traceState : undefined);
    if (result.decision !== SamplingDecision.RECORD_AND_SAMPLED) {
      // An unrecorded child of an unrecorded local span is that span: it would pass on the same
      // trace and flags, and `withSpan` then needs no context of its own (as the API's no-op
      // tracer does with its parent's context).
      if (
        parent instanceof LocalSpanContext && (parent.traceFlags & TraceFlags.SAMPLED) === 0 &&
        traceState === parent.traceState
      ) {
        const parentSpan = trace.getSpan(ctx);
        if (parentSpan !== undefined && !parentSpan.isRecording()) return parentSpan;
      }
      return trace.wrapSpanContext(new LocalSpanContext(traceId, TraceFlags.NONE, traceState));
    }
    this.#counters.spansSampled++;
    const spanContext = new LocalSpanContext(traceId, TraceFlags.SAMPLED, traceState);
    const span = new RecordingSpan(
      this.#shared,
      spanContext,
      name,
      kind,
      hasParent ? parent : undefined,
      attributes,
      options.links,
      options.startTime === undefined ? undefined : toPerf(options.startTime),
    );
    if (result.attributes) span.setAttributes(result.attributes);
    const listeners = this.#startListeners;
    for (let i = 0; i < listeners.length; i++) {
      try {
        listeners[i].onStart(span as unknown as Parameters<SpanProcessor["onStart"]>[0], ctx);
      } catch {
        // A plugged-in processor must not fail the code that started the span.
      }
    }
    return span;
  }

  /** Starts a span, makes it active for `fn`, and returns what `fn` returns (the span is not ended). */
  startActiveSpan<F extends (span: Span) => unknown>(name: string, fn: F): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    options: SpanOptions,
    fn: F,
  ): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    options: SpanOptions,
    ctx: Context,
    fn: F,
  ): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    a?: SpanOptions | F,
    b?: Context | F,
    c?: F,
  ): ReturnType<F> {
    let options: SpanOptions = {};
    let ctx = contextApi.active();
    let fn: F;
    if (typeof a === "function") fn = a;
    else if (typeof b === "function") {
      options = a ?? {};
      fn = b;
    } else {
      options = a ?? {};
      ctx = b ?? ctx;
      fn = c as F;
    }
    const span = this.startSpan(name, options, ctx);
    return contextApi.with(contextWithSpan(ctx, span), () => fn(span)) as ReturnType<F>;
  }
}

function toPerf(t: NonNullable<SpanOptions["startTime"]>): number {
  const origin = performance.timeOrigin;
  if (typeof t === "number") return t < origin ? t : t - origin;
  if (Array.isArray(t)) return t[0] * 1000 + t[1] / 1e6 - origin;
  return (t as Date).getTime() - origin;
}

/** The process-wide tracer provider; one per role process. */
export class KrakenTracerProvider implements TracerProvider {
  readonly #options: TracerProviderOptions;
  readonly #tracers = new Map<string, KrakenTracer>();
  /** Hot-path counters, shared by every tracer of this provider. */
  readonly counters: TracerCounters;

  /** Creates a provider; register it with `trace.setGlobalTracerProvider` to make it global. */
  constructor(options: TracerProviderOptions) {
    this.#options = options;
    this.counters = options.counters ?? newTracerCounters();
  }

  /** Returns the tracer for an instrumentation scope, creating it once. */
  getTracer(name: string, version?: string, options?: { schemaUrl?: string }): Tracer {
    const key = `${name}@${version ?? ""}`;
    let tracer = this.#tracers.get(key);
    if (!tracer) {
      const shared: SpanShared = {
        resource: this.#options.resource,
        scope: { name, version, schemaUrl: options?.schemaUrl },
        sink: this.#options.sink,
        limits: this.#options.limits ?? DEFAULT_SPAN_LIMITS,
      };
      tracer = new KrakenTracer(
        shared,
        this.#options.sampler,
        this.#options.gate ?? ALWAYS,
        this.counters,
        this.#options.startListeners,
      );
      this.#tracers.set(key, tracer);
    }
    return tracer;
  }
}
