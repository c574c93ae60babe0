/**
 * Trace context propagation: by default W3C `traceparent`/`tracestate`, W3C `baggage`, and Jaeger's
 * `uber-trace-id` on extraction; or the stock propagators `OTEL_PROPAGATORS` names
 * ({@linkcode buildPropagator}: `tracecontext`, `baggage`, `jaeger`, `b3`, `b3multi`, `none`).
 *
 * Parsing is hand-written and strict (a malformed header yields no parent, never an exception), and
 * injection writes only the propagation headers, and only when a valid span context exists, so no
 * other request header is ever added, dropped or reordered.
 *
 * @module
 */

import {
  type Context,
  context as contextApi,
  propagation,
  type SpanContext,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
  trace,
  TraceFlags,
} from "@opentelemetry/api";
import {
  CompositePropagator,
  TraceState,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
} from "@opentelemetry/core";
import { B3InjectEncoding, B3Propagator } from "@opentelemetry/propagator-b3";
import { JaegerPropagator } from "@opentelemetry/propagator-jaeger";
import { contextWithSpan } from "./context.ts";
import { byteHex, isZeroId } from "./ids.ts";
import type { PropagatorName } from "./otel_env.ts";

/** The W3C trace-context header names. */
export const TRACEPARENT = "traceparent";
/** The W3C tracestate header name. */
export const TRACESTATE = "tracestate";
/** Jaeger's legacy propagation header, accepted on extraction. */
export const UBER_TRACE_ID = "uber-trace-id";

// Lowercase hex digits, by char code. A table scan measured faster here than a regular expression.
const IS_HEX = new Uint8Array(128);
for (const c of "0123456789abcdef") IS_HEX[c.charCodeAt(0)] = 1;

/** `vv-<32 hex>-<16 hex>-ff`, optionally followed by `-...` (a future version's fields). */
function hasTraceparentShape(v: string): boolean {
  if (v.length < 55 || (v.length > 55 && v.charCodeAt(55) !== 45)) return false;
  for (let i = 0; i < 55; i++) {
    const c = v.charCodeAt(i);
    if (i === 2 || i === 35 || i === 52) {
      if (c !== 45) return false;
    } else if (c > 127 || IS_HEX[c] === 0) return false;
  }
  return true;
}

function hexDigit(code: number): number {
  return code <= 57 ? code - 48 : code - 87;
}

/**
 * Parses a `traceparent` value into a remote span context, or returns undefined when it is
 * malformed (per the W3C rules: version `ff` is invalid, version `00` has exactly four fields,
 * ids are lowercase hex and not all zero).
 */
export function parseTraceparent(value: string | null | undefined): SpanContext | undefined {
  if (!value) return undefined;
  let v = value;
  if (v.charCodeAt(0) <= 32 || v.charCodeAt(v.length - 1) <= 32) v = v.trim();
  if (!hasTraceparentShape(v)) return undefined;
  const version = hexDigit(v.charCodeAt(0)) * 16 + hexDigit(v.charCodeAt(1));
  if (version === 0xff || (version === 0 && v.length !== 55)) return undefined;
  const traceId = v.slice(3, 35);
  const spanId = v.slice(36, 52);
  if (isZeroId(traceId) || isZeroId(spanId)) return undefined;
  // Only the sampled bit (bit 0, the low bit of the last hex digit) is kept.
  const traceFlags = hexDigit(v.charCodeAt(54)) & TraceFlags.SAMPLED;
  return { traceId, spanId, traceFlags, isRemote: true };
}

/**
 * Whether a span context can be propagated. Cheaper than the API's regex check: contexts reach here
 * either from this process's id generator or from {@linkcode parseTraceparent}, both already
 * validated, so only the sentinel invalid ids need excluding.
 */
export function isPropagatable(sc: SpanContext | undefined): sc is SpanContext {
  return sc !== undefined && sc.traceId.length === 32 && !isZeroId(sc.traceId) &&
    sc.spanId.length === 16 && !isZeroId(sc.spanId);
}

/** Formats a span context as a version-00 `traceparent` value. */
export function formatTraceparent(sc: SpanContext): string {
  return `00-${sc.traceId}-${sc.spanId}-${byteHex(sc.traceFlags & 0xff)}`;
}

/**
 * Parses Jaeger's `uber-trace-id` (`{trace-id}:{span-id}:{parent-span-id}:{flags}`, hex, possibly
 * URL-encoded, trace ids of 16 or 32 digits) into a remote span context.
 */
export function parseUberTraceId(value: string | null | undefined): SpanContext | undefined {
  if (!value) return undefined;
  let v = value.trim();
  if (v.includes("%")) {
    try {
      v = decodeURIComponent(v);
    } catch {
      return undefined;
    }
  }
  const parts = v.split(":");
  if (parts.length !== 4) return undefined;
  const [rawTrace, rawSpan, , rawFlags] = parts.map((p) => p.toLowerCase());
  const hex = /^[0-9a-f]+$/;
  if (!hex.test(rawTrace) || rawTrace.length > 32 || !hex.test(rawSpan) || rawSpan.length > 16) {
    return undefined;
  }
  if (!hex.test(rawFlags) || rawFlags.length > 2) return undefined;
  const traceId = rawTrace.padStart(32, "0");
  const spanId = rawSpan.padStart(16, "0");
  if (isZeroId(traceId) || isZeroId(spanId)) return undefined;
  const flags = parseInt(rawFlags, 16) & 1 ? TraceFlags.SAMPLED : TraceFlags.NONE;
  return { traceId, spanId, traceFlags: flags, isRemote: true };
}

/** A getter/setter pair for `Headers`, usable with any `TextMapPropagator`. */
export const headersGetter: TextMapGetter<Headers> = {
  get: (carrier, key) => carrier.get(key) ?? undefined,
  keys: (carrier) => [...carrier.keys()],
};

/** Sets headers on a `Headers` carrier. */
export const headersSetter: TextMapSetter<Headers> = {
  set: (carrier, key, value) => carrier.set(key, value),
};

const baggagePropagator = new W3CBaggagePropagator();

/**
 * The composite propagator kraken registers globally: W3C trace context + baggage, plus Jaeger's
 * `uber-trace-id` when no valid `traceparent` is present.
 */
export class KrakenPropagator implements TextMapPropagator {
  /** Writes `traceparent` (and `tracestate`, `baggage`) only when the context holds a valid span. */
  inject(ctx: Context, carrier: unknown, setter: TextMapSetter): void {
    const sc = trace.getSpanContext(ctx);
    if (isPropagatable(sc)) {
      setter.set(carrier, TRACEPARENT, formatTraceparent(sc));
      const state = sc.traceState?.serialize();
      if (state) setter.set(carrier, TRACESTATE, state);
    }
    baggagePropagator.inject(ctx, carrier, setter);
  }

  /** Reads the remote parent; malformed headers leave the context unchanged. */
  extract(ctx: Context, carrier: unknown, getter: TextMapGetter): Context {
    const tp = first(getter.get(carrier, TRACEPARENT));
    let sc = parseTraceparent(tp);
    if (sc) {
      const ts = first(getter.get(carrier, TRACESTATE));
      if (ts) sc.traceState = new TraceState(ts);
    } else {
      sc = parseUberTraceId(first(getter.get(carrier, UBER_TRACE_ID)));
    }
    const withSpan = sc ? contextWithSpan(ctx, trace.wrapSpanContext(sc)) : ctx;
    return baggagePropagator.extract(withSpan, carrier, getter);
  }

  /** Header names this propagator may write. */
  fields(): string[] {
    return [TRACEPARENT, TRACESTATE, ...baggagePropagator.fields()];
  }
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** The single propagator instance used by the HTTP helpers. */
export const krakenPropagator: KrakenPropagator = new KrakenPropagator();

const NO_PROPAGATION: TextMapPropagator = {
  inject() {},
  extract: (ctx) => ctx,
  fields: () => [],
};

/**
 * The propagator `OTEL_PROPAGATORS` (or `tracing.propagators`) names, members in order (on
 * extraction a later one wins where both found a context); absent means
 * {@linkcode krakenPropagator}, `["none"]` propagates nothing.
 */
export function buildPropagator(names: readonly PropagatorName[] | undefined): TextMapPropagator {
  if (names === undefined) return krakenPropagator;
  if (names.includes("none")) return NO_PROPAGATION;
  const members = names.map((name): TextMapPropagator => {
    switch (name) {
      case "tracecontext":
        return new W3CTraceContextPropagator();
      case "baggage":
        return baggagePropagator;
      case "jaeger":
        return new JaegerPropagator();
      case "b3":
        return new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER });
      case "b3multi":
        return new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER });
      default:
        throw new Error(`unknown propagator ${name}`);
    }
  });
  return new CompositePropagator({ propagators: members });
}

// The header propagator of this process; kraken's own unless OTEL_PROPAGATORS named others.
let headerPropagator: TextMapPropagator = krakenPropagator;

/** Makes `propagator` the one {@linkcode extractFromHeaders} and {@linkcode injectIntoHeaders} use. */
export function setHeaderPropagator(propagator: TextMapPropagator): void {
  headerPropagator = propagator;
}

/** Extracts the remote context from request headers on top of `base` (the active context). */
export function extractFromHeaders(headers: Headers, base: Context = contextApi.active()): Context {
  return headerPropagator.extract(base, headers, headersGetter);
}

/**
 * Injects the context of `ctx` into `headers` in place. Only propagation headers are touched, and
 * nothing is written when `ctx` has no valid span.
 */
export function injectIntoHeaders(headers: Headers, ctx: Context = contextApi.active()): void {
  if (headerPropagator !== krakenPropagator) {
    if (isPropagatable(trace.getSpanContext(ctx)) || propagation.getBaggage(ctx)) {
      headerPropagator.inject(ctx, headers, headersSetter);
    }
    return;
  }
  const sc = trace.getSpanContext(ctx);
  if (isPropagatable(sc)) {
    headers.set(TRACEPARENT, formatTraceparent(sc));
    const state = sc.traceState?.serialize();
    if (state) headers.set(TRACESTATE, state);
  }
  if (propagation.getBaggage(ctx)) baggagePropagator.inject(ctx, headers, headersSetter);
}
