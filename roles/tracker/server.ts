/**
 * The tracker's routes (kraken-wire.md §1.3, §2): announces and the metainfo proxy, each concern
 * in its own handler module that registers its routes.
 *
 * | Method | Route | Answer | Module |
 * |---|---|---|---|
 * | GET | `/health` | 200 `OK\n` | `health.ts` |
 * | GET | `/readiness` | a random ring location of a per-process digest answers `/readiness`: 200 `OK\n` or 503 | `health.ts` |
 * | GET | `/metrics` | tracing self-metrics, Prometheus text | here |
 * | GET | `/announce` | announce v1: JSON body carried by the GET, info hash from the body | `announce.ts` |
 * | POST | `/announce/{infohash}` | announce v2 (agents): the path's info hash wins over the body's | `announce.ts` |
 * | GET | `/namespace/{namespace}/blobs/{digest}/metainfo` | metainfo from the origin cluster; an origin's non-200 (202 included) is copied with body `origin: <body>` | `metainfo.ts` |
 *
 * Spans: the router's server span, then `tracker.announce` › `peerstore.update_peer`,
 * `peerstore.get_peers`, `originstore.get_origins` (and its HTTP calls), `policy.sort_peers`.
 * The metainfo proxy's origin calls are client spans of the same trace.
 *
 * @module
 */

import { Router } from "../../http/router.ts";
import type { Digest } from "../../storage/digest.ts";
import type { TracingRuntime } from "../../tracing/mod.ts";
import { type AnnounceDeps, registerAnnounceRoutes } from "./announce.ts";
import { type HealthDeps, registerHealthRoutes } from "./health.ts";
import { type OriginCluster, registerMetaInfoRoutes } from "./metainfo.ts";
import { METRICS } from "../../wire/health.ts";

export type { OriginCluster } from "./metainfo.ts";

/** What {@linkcode createTrackerRouter} runs on. */
export interface TrackerRouterDeps extends AnnounceDeps {
  /** The tracing runtime: server middleware and `/metrics`. */
  tracing: TracingRuntime;
  /** The origin cluster for metainfo and readiness. */
  originCluster: OriginCluster;
  /** The digest whose ring locations readiness probes (upstream: random, fixed per process). */
  readinessDigest: Digest;
  /** Fetch of the readiness probe (default traced fetch). */
  fetch?: HealthDeps["fetch"];
}

/** The tracker's router: the tracing middleware, then every handler module's routes. */
export function createTrackerRouter(deps: TrackerRouterDeps): Router {
  const router = new Router().use(deps.tracing.serverMiddleware());
  registerHealthRoutes(router, deps);
  router.route(METRICS, deps.tracing.metricsHandler);
  registerAnnounceRoutes(router, deps);
  registerMetaInfoRoutes(router, deps.originCluster);
  return router;
}
