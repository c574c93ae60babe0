/**
 * The proxy's health routes: `GET /health` (200 `OK\n`) and `GET /readiness` (some origin answers
 * `/readiness` and some build-index `/health` with 200, else 503 with the reasons).
 *
 * @module
 */

import { firstReady, type ProbeFetch } from "../../cluster/readiness.ts";
import { HttpError, type Router } from "../../http/router.ts";
import { HEALTH, READINESS } from "../../wire/health.ts";
import type { HostSource } from "../../cluster/hostlist.ts";

/** What {@linkcode registerHealthRoutes} probes. */
export interface HealthDeps {
  /** Origin hosts asked for `/readiness`. */
  originHosts: HostSource;
  /** Build-index hosts asked for `/health`. */
  buildIndexHosts: HostSource;
  /** Fetch for the probes (default traced fetch); the role's TLS client when it has one. */
  fetch?: ProbeFetch;
}

/** Registers `/health` and `/readiness` on `router`. */
export function registerHealthRoutes(router: Router, deps: HealthDeps): void {
  router.route(HEALTH, () => new Response("OK\n"));
  router.route(READINESS, async () => {
    const originProblem = await firstReady(deps.originHosts, { fetch: deps.fetch });
    if (originProblem !== null) {
      throw new HttpError(503, `not ready to serve traffic: origin cluster: ${originProblem}`);
    }
    const indexProblem = await firstReady(deps.buildIndexHosts, {
      path: "/health",
      fetch: deps.fetch,
    });
    if (indexProblem !== null) {
      throw new HttpError(503, `not ready to serve traffic: build-index: ${indexProblem}`);
    }
    return new Response("OK\n");
  });
}
