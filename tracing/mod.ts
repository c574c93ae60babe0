/**
 * The tracing surface roles use. Roles import only from here; OpenTelemetry internals stay inside
 * `tracing/`.
 *
 * - Start-up: {@linkcode parseTracingConfig}, {@linkcode initTracing}.
 * - HTTP: `TracingRuntime.serverMiddleware` for a role's router (the runtime comes through the
 *   role's `RoleContext`), {@linkcode tracedFetch} for calls.
 * - Spans: {@linkcode withSpan}, {@linkcode startSpan}, {@linkcode recordError},
 *   {@linkcode addEvent}, {@linkcode setAttributes}, links, and storing a trace context with
 *   {@linkcode storeTraceContext} / {@linkcode contextFromStored} (write-back after a restart).
 * - Names: {@linkcode SPAN} and {@linkcode ATTR}, the catalogue of span names and attribute keys.
 * - Logs: {@linkcode traceLogFields} is the `contextFields` hook of `common/log.ts`'s logger that
 *   stamps `trace_id`/`span_id`.
 * - Role metrics: a runtime's `roleMetrics` counters and gauges, served on `GET /metrics`.
 *
 * @module
 */

export {
  activeContext,
  activeSpanIds,
  addEvent,
  type Attributes,
  type Context,
  contextFromStored,
  contextOfSpan,
  type Link,
  linkToActive,
  markError,
  recordError,
  runInSpan,
  runWithContext,
  setAttributes,
  type Span,
  SpanKind,
  startSpan,
  type StoredTraceContext,
  storeTraceContext,
  traceLogFields,
  withSpan,
  type WithSpanOptions,
} from "./api.ts";
export { ATTR, type AttrKey, policyCountAttr, SPAN, type SpanName } from "./names.ts";
export { ConfigError, parseTracingConfig, type TracingConfig } from "./config.ts";
export {
  type BodyDoneOptions,
  onBodyDone,
  type ServerTracingOptions,
  tracedFetch,
  type TracedFetchOptions,
  whenResponseDone,
} from "./http.ts";
export {
  type Counter,
  type Histogram,
  type Labels,
  MetricsRegistry,
  sampledTraceId,
} from "./metrics/registry.ts";
export { extractFromHeaders, injectIntoHeaders } from "./propagation.ts";
export {
  type InitOptions,
  initTracing,
  installContextPropagation,
  type TracingRuntime,
  type TracingStats,
} from "./setup.ts";
