/**
 * The proxy's routes: the Docker Registry HTTP API v2 write path a `docker push` (or skopeo) uses,
 * plus the reads a pushing client makes (kraken-wire.md §1.6), and the health routes. Each concern
 * is a handler module that registers its routes:
 *
 * | Method | Route | Module |
 * |---|---|---|
 * | GET | `/v2/` | `base.ts` |
 * | GET | `/v2/_catalog`, `/v2/{name}/tags/list` | `tags.ts` |
 * | HEAD/GET/PUT/DELETE | `/v2/{name}/manifests/{reference}` | `manifests.ts` |
 * | GET | `/v2/{name}/referrers/{digest}` | `referrers.ts` |
 * | POST | `/v2/{name}/blobs/uploads/` | `uploads.ts` |
 * | GET/PATCH/PUT/DELETE | `/v2/{name}/blobs/uploads/{uuid}` | `uploads.ts` |
 * | HEAD/GET/DELETE | `/v2/{name}/blobs/{digest}` | `blobs.ts` |
 * | GET | `/health`, `/readiness` | `health.ts` |
 * | GET | `/metrics` | here |
 *
 * The listener is an edge one (client sampling flags are untrusted) and every answer carries
 * `Docker-Distribution-API-Version: registry/2.0`.
 *
 * @module
 */

import { Router } from "../../http/router.ts";
import type { TracingRuntime } from "../../tracing/mod.ts";
import { registerBaseRoutes } from "./base.ts";
import { registerBlobRoutes } from "./blobs.ts";
import { type HealthDeps, registerHealthRoutes } from "./health.ts";
import { registerManifestRoutes } from "./manifests.ts";
import { registerReferrerRoutes } from "./referrers.ts";
import { type RegistryDeps, registryRoutes } from "./registry.ts";
import { registerTagRoutes } from "./tags.ts";
import { registerUploadRoutes } from "./uploads.ts";
import { METRICS } from "../../wire/health.ts";

/** What {@linkcode createProxyRouter} runs on. */
export interface ProxyRouterDeps extends RegistryDeps, HealthDeps {
  /** The tracing runtime: server middleware and `/metrics`. */
  tracing: TracingRuntime;
}

/** The proxy's router: edge tracing, the registry version header, then every module's routes. */
export function createProxyRouter(deps: ProxyRouterDeps): Router {
  const router = new Router().use(deps.tracing.serverMiddleware({ edge: true }));
  router.use(async (_ctx, next) => {
    const response = await next();
    response.headers.set("docker-distribution-api-version", "registry/2.0");
    return response;
  });
  const on = registryRoutes(router, deps.logger);
  registerBaseRoutes(on);
  registerTagRoutes(on, deps.tags);
  registerManifestRoutes(on, deps);
  registerReferrerRoutes(on, deps);
  registerUploadRoutes(on, deps);
  registerBlobRoutes(on, deps);
  registerHealthRoutes(router, deps);
  router.route(METRICS, deps.tracing.metricsHandler);
  return router;
}
