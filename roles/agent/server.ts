/**
 * The agent server (kraken-wire.md §1.1): health, readiness, tag lookup, the blob API that
 * downloads over P2P, and blob deletion, each concern a handler module that registers its routes.
 * It is an edge listener: its server spans treat a client's sampling decision as untrusted.
 *
 * | Route | Answer | Module |
 * |---|---|---|
 * | `GET /health` | 200 `OK` while the scheduler runs, else 500 | `health.ts` |
 * | `GET /readiness` | 200 `OK`, or 503 `agent not ready: <errors>` (scheduler, build-index, tracker) | `health.ts` |
 * | `GET /metrics` | tracing self-metrics and role metrics, Prometheus text or OpenMetrics | here |
 * | `GET /tags/{tag}` | 200 `sha256:<hex>`, 404, build-index's 4xx, or 500 `get tag: …` | `tags.ts` |
 * | `GET /namespace/{namespace}/blobs/{digest}` | 200 with the blob; 404 (empty) for an unknown blob; 400 bad digest; 500 `download torrent: …` | `blob_api.ts` |
 * | `DELETE /blobs/{digest}` | 200 after the blob left memory and disk, or 500 | `blob_api.ts` |
 *
 * `{digest}` is `sha256:<hex>` or bare hex on the blob routes.
 *
 * @module
 */

import type { Logger } from "../../common/log.ts";
import { logServerErrors } from "../../http/middleware.ts";
import { Router } from "../../http/router.ts";
import type { TracingRuntime } from "../../tracing/mod.ts";
import { type BlobApiDeps, registerBlobRoutes } from "./blob_api.ts";
import { type HealthDeps, registerHealthRoutes } from "./health.ts";
import { registerTagRoutes, type TagResolver } from "./tags.ts";
import { METRICS } from "../../wire/health.ts";

/** What the agent server runs on. */
export interface AgentServerDeps extends HealthDeps, BlobApiDeps {
  /** The scheduler: health probe and removal. */
  scheduler: HealthDeps["scheduler"] & BlobApiDeps["scheduler"];
  /** Tag lookups. */
  tags: TagResolver;
  /** The role's logger. */
  logger: Logger;
  /** The tracing runtime: server middleware and `/metrics`. */
  tracing: TracingRuntime;
}

/** Builds the agent server's router: edge tracing, 5xx logging, then every module's routes. */
export function createAgentRouter(deps: AgentServerDeps): Router {
  const router = new Router();
  router.use(deps.tracing.serverMiddleware({ edge: true }));
  router.use(logServerErrors(deps.logger));
  registerHealthRoutes(router, deps);
  router.route(METRICS, deps.tracing.metricsHandler);
  registerTagRoutes(router, deps.tags);
  registerBlobRoutes(router, deps);
  return router;
}
