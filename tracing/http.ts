/**
 * HTTP tracing: server middleware for the shared router and a traced `fetch`.
 *
 * Server spans are named `{METHOD} {route}` from the route template (never the raw path) and carry
 * the stable HTTP semantic-convention attributes; the incoming W3C/Jaeger context is extracted first,
 * the handler runs with the server span active, and the span ends only when the response body has
 * finished streaming (or was cancelled). Client spans wrap `fetch`, inject the propagation headers
 * into a copy of the caller's headers and leave every other header as it was.
 *
 * @module
 */

import {
  type Attributes,
  context as contextApi,
  type Span,
  SpanKind,
  SpanStatusCode,
} from "@opentelemetry/api";
import { bytesBodyOf } from "../http/bytes_response.ts";
import { fileBodyOf } from "../http/file_response.ts";
import type { Ctx, Middleware } from "../http/router.ts";
import type { EdgeBaggagePolicy } from "./baggage_policy.ts";
import { currentTracer, registeredTracer } from "./api.ts";
import { contextWithSpan } from "./context.ts";
import { extractFromHeaders, injectIntoHeaders } from "./propagation.ts";
import { ATTR } from "./names.ts";

const KNOWN_METHODS = new Set([
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "PATCH",
  "DELETE",
  "OPTIONS",
  "CONNECT",
  "TRACE",
]);

/** Counts requests in flight; the circuit breaker and adaptive sampling may read it as load. */
export interface InFlightTracker {
  /** A request started. */
  begin(): void;
  /** A request finished (its response body is done). */
  end(): void;
}

/** Options of {@linkcode tracingMiddleware}. */
export interface ServerTracingOptions {
  /**
   * True on edge listeners (agent and proxy registries, agent blob API): the samplers then treat a
   * client's `sampled` flag as untrusted (design §3, trust boundary).
   */
  edge?: boolean;
  /**
   * Counts this listener's requests in flight (the tracing runtime's load source). Roles get the
   * middleware from `TracingRuntime.serverMiddleware`, which fills it in. Default: not counted.
   */
  inFlight?: InFlightTracker;
  /**
   * What of a client's baggage an edge listener keeps. Roles get it from
   * `TracingRuntime.serverMiddleware` (built from `sampling.trust`). Default: none applied.
   */
  baggagePolicy?: EdgeBaggagePolicy;
}

/** Names a server span `{METHOD} {route}` (or just the method when no route matched). */
export function serverSpanName(method: string, route: string | undefined): string {
  const m = KNOWN_METHODS.has(method) ? method : "HTTP";
  return route ? `${m} ${route}` : m;
}

/** Options of {@linkcode onBodyDone}. */
export interface BodyDoneOptions {
  /**
   * The body's known length. The body then counts as done once this many bytes went through (Deno's
   * server may drop a body whose Content-Length is satisfied without reading its end, which must
   * not read as a failure), and an end before it is an error.
   */
  size?: number;
}

/**
 * Wraps a body so `onDone` runs exactly once when it is fully read, fails or is cancelled, with the
 * number of bytes that passed through.
 */
export function onBodyDone(
  body: ReadableStream<Uint8Array>,
  onDone: (error: unknown, bytes: number) => void,
  options: BodyDoneOptions = {},
): ReadableStream<Uint8Array> {
  const { size } = options;
  const reader = body.getReader();
  let finished = false;
  let bytes = 0;
  const finish = (error?: unknown) => {
    if (finished) return;
    finished = true;
    onDone(error, bytes);
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
          finish(
            size === undefined || bytes === size
              ? undefined
              : new Error(`body ended after ${bytes} of ${size} bytes`),
          );
        } else {
          bytes += value.byteLength;
          controller.enqueue(value);
          if (bytes === size) finish();
        }
      } catch (error) {
        controller.error(error);
        finish(error);
      }
    },
    cancel(reason) {
      finish(reason ?? new Error("response body cancelled"));
      return reader.cancel(reason);
    },
  });
}

/** What {@linkcode whenResponseDone} calls: `error` when the body failed or was cut short. */
export type BodyDoneCallback = (error: unknown, bytes: number) => void;

/**
 * Largest body, by its declared `Content-Length`, that {@linkcode whenResponseDone} reads at once
 * instead of passing it through a wrapper stream: `http/serve.ts` sends such a body as one write.
 */
export const EAGER_BODY_MAX_BYTES = 16 * 1024;

// The request's body tracker in `ctx.state`: the response it returned and who waits for its end.
const BODY_TRACKER = "tracing.bodyTracker";

interface BodyTracker {
  response: Response;
  callbacks: BodyDoneCallback[];
  /** Set once the body is done. */
  outcome?: { error: unknown; bytes: number };
}

// The request's tracker of `response`, with `onDone` its first callback.
function newTracker(ctx: Ctx, response: Response, onDone: BodyDoneCallback): BodyTracker {
  const tracker: BodyTracker = { response, callbacks: [onDone] };
  ctx.state[BODY_TRACKER] = tracker;
  return tracker;
}

function settle(tracker: BodyTracker, error: unknown, bytes: number): void {
  tracker.outcome = { error, bytes };
  for (let i = 0; i < tracker.callbacks.length; i++) tracker.callbacks[i](error, bytes);
}

/**
 * Runs `onDone` once when `response`'s body has been sent, failed or was cancelled, and returns the
 * response to pass on: at once, or a promise of it when a small body is read first. The middleware
 * of one request share one tracker: when an inner middleware already tracks `response`, `onDone`
 * joins it and `response` is passed on as it is.
 *
 * A response without a body, or to HEAD, is done at once; a file body (`http/file_response.ts`)
 * reports its own end, and is passed on as it is. Any other body of a request whose listener
 * reports response ends (`ctx.responseEnds`, `http/response_ends.ts`) is passed on as it is too,
 * and is done when the listener says it has been written. Without such a listener (a request
 * handled in-process), a body whose declared `Content-Length` is at most
 * {@linkcode EAGER_BODY_MAX_BYTES} is read here and passed on as bytes, and longer or undeclared
 * bodies go through one wrapper stream that sees their end.
 */
export function whenResponseDone(
  ctx: Ctx,
  response: Response,
  onDone: BodyDoneCallback,
): Response | Promise<Response> {
  const existing = ctx.state[BODY_TRACKER] as BodyTracker | undefined;
  if (existing !== undefined && existing.response === response) {
    if (existing.outcome) onDone(existing.outcome.error, existing.outcome.bytes);
    else existing.callbacks.push(onDone);
    return response;
  }
  if (ctx.req.method === "HEAD") {
    onDone(undefined, 0);
    return response;
  }
  // Before the body check: through the role listener a file response has no web stream.
  const file = fileBodyOf(response);
  if (file !== undefined) {
    file.onDone(onDone);
    return response;
  }
  const source = response.body;
  const ends = ctx.responseEnds;
  // The listener sends the body, or a bytes mark (`http/bytes_response.ts`, made only for it), and
  // reports when it has written it: nothing to read or wrap here.
  if (ends !== undefined && (source !== null || bytesBodyOf(response) !== undefined)) {
    const tracker = newTracker(ctx, response, onDone);
    ends.watch(response, (error, bytes) => settle(tracker, error, bytes));
    return response;
  }
  if (source === null) {
    onDone(undefined, 0);
    return response;
  }
  const tracker = newTracker(ctx, response, onDone);
  const declared = Number(response.headers.get("content-length") ?? NaN);
  if (declared <= EAGER_BODY_MAX_BYTES) return readEagerly(tracker, response);
  const body = onBodyDone(source, (error, bytes) => settle(tracker, error, bytes));
  tracker.response = new Response(body, { ...responseInit(response), headers: response.headers });
  return tracker.response;
}

function responseInit(response: Response): ResponseInit {
  return { status: response.status, statusText: response.statusText };
}

// A small declared body read at once and passed on as bytes (see whenResponseDone).
async function readEagerly(tracker: BodyTracker, response: Response): Promise<Response> {
  const init = responseInit(response);
  let bytes: Uint8Array;
  try {
    bytes = await response.bytes();
  } catch (error) {
    // The server still sees the failure: the body it gets fails the same way.
    tracker.response = new Response(
      new ReadableStream({ start: (controller) => controller.error(error) }),
      { ...init, headers: response.headers },
    );
    settle(tracker, error, 0);
    return tracker.response;
  }
  tracker.response = new Response(bytes as BodyInit, { ...init, headers: response.headers });
  settle(tracker, undefined, bytes.byteLength);
  return tracker.response;
}

/** The header upstream's nginx passes on when a client asks for a trace to be sampled. */
export const JAEGER_DEBUG_ID = "jaeger-debug-id";

/**
 * Server-span middleware for the shared router.
 *
 * The span starts with the attributes kraken's samplers read (`url.path`, `kraken.edge`,
 * `network.peer.address`, `kraken.sampling.debug_id`); a recording span then gets the rest of the
 * request's (method, scheme, server address and port, route, client address, peer port, user
 * agent) before the handler runs. A stock processor's `onStart` therefore sees only the first set;
 * its `onEnd` sees them all.
 */
export function tracingMiddleware(options: ServerTracingOptions = {}): Middleware {
  const edge = options.edge ?? false;
  const counter = options.inFlight;
  const baggagePolicy = options.baggagePolicy;
  return async (ctx: Ctx, next) => {
    const { req, url } = ctx;
    const active = contextApi.active();
    let parentCtx = extractFromHeaders(req.headers, active);
    if (edge && baggagePolicy) parentCtx = baggagePolicy.apply(parentCtx, ctx.remote?.hostname);
    const tracer = registeredTracer();
    // No tracer provider registered (tracing disabled): pass the trace on, start no span. A
    // request that brought no context runs in the active one as it is.
    if (tracer === undefined) {
      counter?.begin();
      try {
        return await (parentCtx === active ? next() : contextApi.with(parentCtx, next));
      } finally {
        counter?.end();
      }
    }
    // Only what the samplers read goes in before the decision (keyed stores: in a running role this
    // path runs Maglev-compiled, where each computed key of an object literal costs ~0.7 µs); the
    // rest describes a recorded span and is set once the span records (describeRequest), which
    // saves an unsampled request ~2 µs in a running agent (docs/performance.md).
    const attributes: Attributes = {};
    attributes[ATTR.urlPath] = url.pathname;
    attributes[ATTR.edge] = edge;
    if (ctx.remote) attributes[ATTR.networkPeerAddress] = ctx.remote.hostname;
    const debugId = req.headers.get(JAEGER_DEBUG_ID);
    if (debugId) attributes[ATTR.samplingDebugId] = debugId;
    const span = tracer.startSpan(
      serverSpanName(req.method, ctx.route),
      { kind: SpanKind.SERVER, attributes },
      parentCtx,
    );
    if (span.isRecording()) describeRequest(span, ctx);
    counter?.begin();
    let response: Response;
    try {
      // Unsampled or shed spans still run the handler inside the context: propagation continues.
      response = await contextApi.with(contextWithSpan(parentCtx, span), next);
    } catch (error) {
      counter?.end();
      if (span.isRecording()) {
        span.recordException(error as Error);
        span.setAttribute(ATTR.errorType, (error as Error)?.name ?? "Error");
        span.setStatus({ code: SpanStatusCode.ERROR, message: String((error as Error)?.message) });
      }
      span.end();
      throw error;
    }
    if (!span.isRecording()) {
      // Nothing to time: no body tracking of its own (most requests at the default 10% rate).
      counter?.end();
      span.end();
      return response;
    }
    const declared = finishServerSpan(span, response, ctx.state.error);
    return whenResponseDone(ctx, response, (error, bytes) => {
      counter?.end();
      // Deno may cancel a body once Content-Length bytes are out instead of reading its end.
      const complete = bytes >= declared;
      if (error && !complete) {
        span.setAttribute(ATTR.errorType, "body_stream_aborted");
        span.setStatus({ code: SpanStatusCode.ERROR, message: "response body not fully sent" });
      }
      span.end();
    });
  };
}

/** Sets the request attributes the samplers do not read on a recording server span. */
function describeRequest(span: Span, ctx: Ctx): void {
  const { req, url, remote } = ctx;
  span.setAttribute(
    ATTR.httpRequestMethod,
    KNOWN_METHODS.has(req.method) ? req.method : "_OTHER",
  );
  span.setAttribute(ATTR.urlScheme, url.protocol.slice(0, -1));
  span.setAttribute(ATTR.serverAddress, url.hostname);
  if (url.port) span.setAttribute(ATTR.serverPort, Number(url.port));
  if (ctx.route) span.setAttribute(ATTR.httpRoute, ctx.route);
  if (remote) {
    span.setAttribute(ATTR.clientAddress, remote.hostname);
    span.setAttribute(ATTR.networkPeerPort, remote.port);
  }
  const ua = req.headers.get("user-agent");
  if (ua) span.setAttribute(ATTR.userAgentOriginal, ua);
}

/** Sets the response attributes and status; returns the declared body length (NaN when none). */
function finishServerSpan(span: Span, response: Response, error: unknown): number {
  span.setAttribute(ATTR.httpResponseStatusCode, response.status);
  const length = response.headers.get("content-length");
  const declared = length ? Number(length) : NaN;
  if (length) span.setAttribute(ATTR.httpResponseBodySize, declared);
  if (error instanceof Error && response.status >= 500) span.recordException(error);
  if (response.status >= 500) {
    span.setAttribute(ATTR.errorType, String(response.status));
    span.setStatus({
      code: SpanStatusCode.ERROR,
      message: error instanceof Error ? error.message : undefined,
    });
  }
  return declared;
}

/** Extra options of {@linkcode tracedFetch}. */
export interface TracedFetchOptions extends RequestInit {
  /**
   * Route template of the target, used in the span name (`PUT /tags/{tag}/digest/{digest}`); without
   * it the span is named by the method alone, as the HTTP conventions ask.
   */
  route?: string;
  /** Statuses that are expected outcomes, not errors (e.g. 404 on a stat, 409 on a duplicate). */
  expectedStatus?: number[];
  /** Extra span attributes. */
  attributes?: Attributes;
  /**
   * Performs the request instead of `globalThis.fetch` (a storage backend's node:http transport,
   * which can stream a body with a `Content-Length`). Gets the URL and the init with the context
   * headers injected.
   */
  transport?: (url: string, init: RequestInit) => Promise<Response>;
}

/** Removes credentials and the query string (it may hold secrets) from a URL for `url.full`. */
export function redactUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/**
 * `fetch` with a client span and context injection. The span ends when the response headers
 * arrive; its status is an error on network failure and on 4xx/5xx not listed as expected.
 */
export async function tracedFetch(
  input: string | URL,
  options: TracedFetchOptions = {},
): Promise<Response> {
  const { route, expectedStatus, attributes, transport, ...init } = options;
  const url = new URL(input);
  const method = (init.method ?? "GET").toUpperCase();
  // Keyed stores rather than a computed-key literal, as in the server middleware.
  const spanAttributes: Attributes = {};
  spanAttributes[ATTR.httpRequestMethod] = KNOWN_METHODS.has(method) ? method : "_OTHER";
  spanAttributes[ATTR.serverAddress] = url.hostname;
  spanAttributes[ATTR.serverPort] = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  spanAttributes[ATTR.urlFull] = redactUrl(url);
  if (route) spanAttributes[ATTR.urlTemplate] = route;
  if (attributes) Object.assign(spanAttributes, attributes);
  const span = currentTracer().startSpan(
    route ? `${method} ${route}` : method,
    { kind: SpanKind.CLIENT, attributes: spanAttributes },
  );
  const ctx = contextWithSpan(contextApi.active(), span);
  const headers = new Headers(init.headers);
  injectIntoHeaders(headers, ctx);
  try {
    const response = transport
      ? await transport(url.href, { ...init, method, headers })
      : await fetch(url, { ...init, method, headers });
    span.setAttribute(ATTR.httpResponseStatusCode, response.status);
    if (response.status >= 400 && !expectedStatus?.includes(response.status)) {
      span.setAttribute(ATTR.errorType, String(response.status));
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    return response;
  } catch (error) {
    span.recordException(error as Error);
    span.setAttribute(ATTR.errorType, (error as Error)?.name ?? "Error");
    span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error)?.message });
    throw error;
  } finally {
    span.end();
  }
}
