/**
 * The build-index's routes (kraken-wire.md §1.5) over {@linkcode BuildIndexService}, each concern
 * in its own handler module that registers its routes.
 *
 * | Method | Route | Answer | Module |
 * |---|---|---|---|
 * | GET | `/health` | 200 `OK\n` | `health.ts` |
 * | GET | `/readiness` | backends, then the origin cluster: 200 `OK\n` or 503 | `health.ts` |
 * | GET | `/metrics` | tracing self-metrics and role metrics, Prometheus text or OpenMetrics | here |
 * | PUT | `/tags/{tag}/digest/{digest}[?replicate=]` | put tag; 500 with upstream's messages | `tags.ts` |
 * | HEAD | `/tags/{tag}` | backend only: 200 / 404 | `tags.ts` |
 * | GET | `/tags/{tag}` | disk, then backend: 200 `sha256:<hex>` / 404 | `tags.ts` |
 * | GET | `/list/{prefix+}` | ListResponse JSON, optional `limit`/`offset` pagination | `list.ts` |
 * | GET | `/repositories/{repo+}/tags` | ListResponse of bare tags | `list.ts` |
 * | GET | `/origin` | the origin cluster's address | here |
 * | POST | `/remotes/tags/{tag}` | schedule the tag's replication to its remotes again | `tags.ts` |
 * | PUT | `/internal/duplicate/tags/{tag}/digest/{digest}` | `{"delay": ns}`: store from a neighbour | `tags.ts` |
 * | POST | `/internal/duplicate/remotes/tags/{tag}/digest/{digest}` | a neighbour's replication tasks | `tags.ts` |
 *
 * Every request gets a server span from the tracing middleware.
 *
 * @module
 */

import { Router } from "../../http/router.ts";
import type { TracingRuntime } from "../../tracing/mod.ts";
import { type HealthDeps, registerHealthRoutes } from "./health.ts";
import { registerListRoutes } from "./list.ts";
import type { BuildIndexService } from "./service.ts";
import { registerDuplicateRoutes, registerTagRoutes } from "./tags.ts";
import { METRICS } from "../../wire/health.ts";
import { ORIGIN_ADDRESS } from "../../wire/tags.ts";
import type { HostSource } from "../../cluster/hostlist.ts";

/** What {@linkcode createBuildIndexRouter} runs on. */
export interface BuildIndexRouterDeps {
  /** The tracing runtime: server middleware and `/metrics`. */
  tracing: TracingRuntime;
  /** The behaviour behind the routes. */
  service: BuildIndexService;
  /** Origin hosts asked for readiness. */
  originHosts: HostSource;
  /** Fetch of the readiness probes (default traced fetch). */
  fetch?: HealthDeps["fetch"];
}

/** The build-index's router: the tracing middleware, then every handler module's routes. */
export function createBuildIndexRouter(deps: BuildIndexRouterDeps): Router {
  const { service } = deps;
  const router = new Router().use(deps.tracing.serverMiddleware());
  registerHealthRoutes(router, {
    backends: service.backends,
    originHosts: deps.originHosts,
    fetch: deps.fetch,
  });
  router.route(METRICS, deps.tracing.metricsHandler);
  registerTagRoutes(router, service);
  registerListRoutes(router, service);
  router.route(ORIGIN_ADDRESS, () => new Response(service.originAddress()));
  registerDuplicateRoutes(router, service);
  return router;
}
