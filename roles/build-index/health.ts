/**
 * The build-index's health routes: `GET /health` (200 `OK\n`) and `GET /readiness` (every backend
 * is ready, then any origin answers `/readiness`: 200 `OK\n`, else 503 with the reasons).
 *
 * @module
 */

import { firstReady, type ProbeFetch } from "../../cluster/readiness.ts";
import { HttpError, type Router } from "../../http/router.ts";
import type { BackendManager } from "../../storage/backend/backend.ts";
import { HEALTH, READINESS } from "../../wire/health.ts";
import type { HostSource } from "../../cluster/hostlist.ts";

/** What {@linkcode registerHealthRoutes} runs on. */
export interface HealthDeps {
  /** The tag backends, each probed with its readiness check. */
  backends: BackendManager;
  /** Origin hosts asked for readiness. */
  originHosts: HostSource;
  /** Fetch for the probes (default traced fetch); the role's TLS client when it has one. */
  fetch?: ProbeFetch;
}

function ok(): Response {
  return new Response("OK\n");
}

/** Registers `/health` and `/readiness` on `router`. */
export function registerHealthRoutes(router: Router, deps: HealthDeps): void {
  router.route(HEALTH, ok);
  router.route(READINESS, async () => {
    for (const backend of deps.backends.backends) {
      try {
        await backend.ready();
      } catch (error) {
        throw new HttpError(
          503,
          `not ready to serve traffic: backend: ${(error as Error).message}`,
        );
      }
    }
    const problem = await firstReady(deps.originHosts, { fetch: deps.fetch });
    if (problem === null) return ok();
    throw new HttpError(503, `not ready to serve traffic: origin cluster: ${problem}`);
  });
}
