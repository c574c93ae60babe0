/**
 * The origin's routes: upstream's blob server API (kraken-wire.md §1.4) over the local blob store,
 * the hash ring, the write-back queue and the backends. Each concern is a handler module that
 * registers its routes:
 *
 * | Concern | Module |
 * |---|---|
 * | `/health`, `/readiness` | `health.ts` |
 * | locations, downloads, prefetch, stat, delete | `blobs.ts` |
 * | public, internal and duplicate uploads | `uploads.ts` (replication in `replication.ts`) |
 * | metainfo | `metainfo.ts` |
 * | replicate to a remote cluster | `remote.ts` |
 * | `/metrics`, `/internal/peercontext` | here |
 *
 * Read path: a cache miss on download, prefetch or metainfo starts a backend fetch and answers
 * 202 until the blob is cached (see `refresh.ts`); the fetched blob is then pushed to the other
 * replicas with the internal transfer API. 5xx answers are logged with their error.
 *
 * @module
 */

import type { Logger } from "../../common/log.ts";
import { logServerErrors } from "../../http/middleware.ts";
import { HttpError, Router } from "../../http/router.ts";
import type { Backend } from "../../storage/backend/backend.ts";
import type { TracingRuntime } from "../../tracing/mod.ts";
import { type BlobDeps, registerBlobRoutes } from "./blobs.ts";
import { registerHealthRoutes } from "./health.ts";
import { registerMetaInfoRoutes } from "./metainfo.ts";
import { registerRemoteRoutes } from "./remote.ts";
import { registerUploadRoutes, type UploadDeps } from "./uploads.ts";
import { METRICS } from "../../wire/health.ts";
import { PEER_CONTEXT } from "../../wire/peercontext.ts";

/** What {@linkcode createOriginRouter} runs on. */
export interface OriginRouterDeps extends BlobDeps, UploadDeps {
  /** The tracing runtime: server middleware and `/metrics`. */
  tracing: TracingRuntime;
  /** The role's logger. */
  logger: Logger;
  /** Backends `/readiness` must reach. */
  mustReady?: Backend[];
  /** The P2P identity (`GET /internal/peercontext`), JSON with a trailing newline. */
  peerContextJson?: () => string;
}

/** The origin's router: tracing and 5xx logging middleware, then every module's routes. */
export function createOriginRouter(deps: OriginRouterDeps): Router {
  const router = new Router();
  router.use(deps.tracing.serverMiddleware());
  router.use(logServerErrors(deps.logger));
  registerHealthRoutes(router, deps.mustReady ?? []);
  router.route(METRICS, deps.tracing.metricsHandler);
  registerBlobRoutes(router, deps);
  registerUploadRoutes(router, deps);
  registerRemoteRoutes(router, deps);
  router.route(PEER_CONTEXT, () => {
    const json = deps.peerContextJson?.();
    if (json === undefined) throw new HttpError(404, "this origin does not seed over P2P");
    return new Response(json, { headers: { "content-type": "application/json" } });
  });
  registerMetaInfoRoutes(router, deps);
  return router;
}
