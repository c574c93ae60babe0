/**
 * Per-route RED metrics of every role's HTTP listeners, one middleware for all of them (the
 * runtime's `serverMiddleware` includes it, inside the server span):
 *
 * | Series | Kind | statsd |
 * |---|---|---|
 * | `kraken_http_requests_total{method,route,status_class}` | counter | `http.requests.<method>.<route>.<class>` |
 * | `kraken_http_request_duration_seconds{method,route}` | histogram, exemplars | timer `latency.<method>.<route>` (upstream's `latency`) |
 * | `kraken_http_requests_in_flight{method,route}` | gauge | `http.requests_in_flight.<method>.<route>` |
 *
 * `route` is the matched route template (`/namespace/{namespace}/blobs/{digest}`), never the raw
 * path, or `unmatched` for a request no route took (404/405), so the series stay bounded.
 * `status_class` is `2xx` … `5xx`. A request lasts until its response body is fully sent (or the
 * client went away), as a Go handler's time includes writing the body. The latency histogram's
 * exemplar is the request's trace when it was sampled.
 *
 * @module
 */

import type { Ctx, Middleware } from "../http/router.ts";
import { systemTimers, type Timers } from "../common/timers.ts";
import { whenResponseDone } from "./http.ts";
import {
  type Counter,
  type Histogram,
  type MetricsRegistry,
  sampledTraceId,
} from "./metrics/registry.ts";

/** Bucket bounds of the request latency histogram, seconds (blob transfers take seconds). */
export const REQUEST_DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.001,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
  60,
]);

/** The route label of requests that matched no route. */
export const UNMATCHED_ROUTE = "unmatched";

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** `2xx` for 200…299 and so on. */
export function statusClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}

/** Options of {@linkcode HttpMetrics}. */
export interface HttpMetricsOptions {
  /** Clock of the latency. Default {@linkcode systemTimers}. */
  timers?: Timers;
}

// The series of one method and route, looked up once: a request then touches no registry map.
interface RouteSeries {
  inFlight: number;
  latency: Histogram;
  // Requests by status class, indexed by status / 100.
  byClass: (Counter | undefined)[];
}

/** The RED series of one registry and the middleware that feeds them. */
export class HttpMetrics {
  readonly #registry: MetricsRegistry;
  readonly #timers: Timers;
  // route → method → series.
  readonly #routes = new Map<string, Map<string, RouteSeries>>();

  /** Series go into `registry` as routes see their first request. */
  constructor(registry: MetricsRegistry, options: HttpMetricsOptions = {}) {
    this.#registry = registry;
    this.#timers = options.timers ?? systemTimers;
  }

  #series(method: string, route: string): RouteSeries {
    let methods = this.#routes.get(route);
    if (!methods) this.#routes.set(route, methods = new Map());
    let series = methods.get(method);
    if (!series) {
      const created: RouteSeries = {
        inFlight: 0,
        latency: this.#registry.histogram(
          "kraken_http_request_duration_seconds",
          "HTTP request latency until the response body is sent, by route.",
          { buckets: REQUEST_DURATION_BUCKETS, labels: { method, route }, statsd: "latency" },
        ),
        byClass: [],
      };
      this.#registry.gauge(
        "kraken_http_requests_in_flight",
        "HTTP requests being served (until the response body is sent), by route.",
        () => created.inFlight,
        { method, route },
      );
      methods.set(method, series = created);
    }
    return series;
  }

  #finish(
    series: RouteSeries,
    method: string,
    route: string,
    status: number,
    startMs: number,
    traceId: string | undefined,
  ): void {
    series.inFlight--;
    const requests = series.byClass[Math.floor(status / 100)] ??= this.#registry.counter(
      "kraken_http_requests_total",
      "HTTP requests served, by route and status class.",
      { method, route, status_class: statusClass(status) },
    );
    requests.inc();
    series.latency.observe((this.#timers.now() - startMs) / 1000, traceId ?? null);
  }

  /** The middleware; put it inside the server-span middleware so exemplars see the span. */
  middleware(): Middleware {
    return async (ctx: Ctx, next) => {
      const method = METHODS.has(ctx.req.method) ? ctx.req.method : "_OTHER";
      const route = ctx.route ?? UNMATCHED_ROUTE;
      const start = this.#timers.now();
      const traceId = sampledTraceId();
      const series = this.#series(method, route);
      series.inFlight++;
      let response: Response;
      try {
        response = await next();
      } catch (error) {
        this.#finish(series, method, route, 500, start, traceId);
        throw error;
      }
      return whenResponseDone(
        ctx,
        response,
        () => this.#finish(series, method, route, response.status, start, traceId),
      );
    };
  }
}
