/**
 * Cheaper contexts for the request path. The API's context copies its whole map and builds three
 * closures on every `setValue`; a request sets a span into a context two or three times (the
 * extracted parent, the server span, a child), so {@linkcode LinkedContext} links to its parent
 * instead: one small object per value, looked up by walking a short chain. Past
 * {@linkcode MAX_CHAIN} links a context folds its values into one map, so lookups stay bounded.
 *
 * Both kinds implement the API's `Context` interface and mix freely with the API's own contexts
 * (`trace.getSpan`, `propagation.getBaggage` and every instrumentation read them the same way).
 *
 * @module
 */

import { type Context, INVALID_SPAN_CONTEXT, type Span, trace } from "@opentelemetry/api";

/** Longest parent chain a {@linkcode LinkedContext} keeps before it folds into one map. */
export const MAX_CHAIN = 16;

/** The API's key of the active span, learnt from the API itself (it is not exported). */
export const SPAN_KEY: symbol = (() => {
  let key: symbol | undefined;
  const probe: Context = {
    getValue: () => undefined,
    setValue(k) {
      key = k;
      return probe;
    },
    deleteValue: () => probe,
  };
  trace.setSpan(probe, trace.wrapSpanContext(INVALID_SPAN_CONTEXT));
  if (key === undefined) throw new Error("the OpenTelemetry API set no span key");
  return key;
})();

/** A context of one value on top of a parent context. */
export class LinkedContext implements Context {
  readonly #parent: Context;
  readonly #key: symbol;
  readonly #value: unknown;
  readonly #depth: number;

  /** `key` is `value` here (undefined: deleted); every other key is `parent`'s. */
  constructor(parent: Context, key: symbol, value: unknown) {
    this.#parent = parent;
    this.#key = key;
    this.#value = value;
    this.#depth = parent instanceof LinkedContext ? parent.#depth + 1 : 1;
  }

  /** The value of `key`, from the nearest context in the chain that sets it. */
  getValue(key: symbol): unknown {
    // deno-lint-ignore no-this-alias
    let ctx: Context = this;
    while (ctx instanceof LinkedContext) {
      if (ctx.#key === key) return ctx.#value;
      ctx = ctx.#parent;
    }
    return ctx.getValue(key);
  }

  /** A context with `key` set to `value`. */
  setValue(key: symbol, value: unknown): Context {
    return new LinkedContext(this.#depth >= MAX_CHAIN ? this.#folded() : this, key, value);
  }

  /** A context without `key`. */
  deleteValue(key: symbol): Context {
    return this.setValue(key, undefined);
  }

  // This chain's values (the nearest of each key) in one map over the chain's base.
  #folded(): Context {
    const values = new Map<symbol, unknown>();
    // deno-lint-ignore no-this-alias
    let ctx: Context = this;
    while (ctx instanceof LinkedContext) {
      if (!values.has(ctx.#key)) values.set(ctx.#key, ctx.#value);
      ctx = ctx.#parent;
    }
    return new MapContext(ctx, values);
  }
}

/** A context holding several values over a base context, made when a chain is folded. */
class MapContext implements Context {
  readonly #base: Context;
  readonly #values: Map<symbol, unknown>;

  /** `values` (undefined: deleted) over `base`. */
  constructor(base: Context, values: Map<symbol, unknown>) {
    this.#base = base;
    this.#values = values;
  }

  getValue(key: symbol): unknown {
    return this.#values.has(key) ? this.#values.get(key) : this.#base.getValue(key);
  }

  setValue(key: symbol, value: unknown): Context {
    return new LinkedContext(this, key, value);
  }

  deleteValue(key: symbol): Context {
    return new LinkedContext(this, key, undefined);
  }
}

/**
 * `ctx` with `key` set to `value` (undefined deletes it), linked to `ctx` whatever kind of context
 * it is (the API's own would copy its map).
 */
export function contextWith(ctx: Context, key: symbol, value: unknown): Context {
  return ctx instanceof LinkedContext
    ? ctx.setValue(key, value)
    : new LinkedContext(ctx, key, value);
}

/** `ctx` with `span` as its span: what `trace.setSpan` returns, built cheaper. */
export function contextWithSpan(ctx: Context, span: Span): Context {
  return contextWith(ctx, SPAN_KEY, span);
}
