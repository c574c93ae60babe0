/**
 * The proxy's health routes: `GET /health` (200 `OK\n`) and `GET /readiness` (some origin answers
 * `/readiness` and some build-index `/health` with 200, else 503 with the reasons).
 *
 * @module
 */

import { HttpError, type Router } from "../../http/router.ts";
import { tracedFetch } from "../../tracing/mod.ts";

/** What {@linkcode registerHealthRoutes} probes. */
export interface HealthDeps {
  /** Origin hosts asked for `/readiness`. */
  originHosts: string[];
  /** Build-index hosts asked for `/health`. */
  buildIndexHosts: string[];
}

/** True when any of `hosts` answers `GET <path>` with 200 within 5 s. */
async function anyReady(hosts: string[], path: string): Promise<string | null> {
  const reasons: string[] = [];
  for (const host of hosts) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error("timed out after 5000 ms")), 5000);
    try {
      const res = await tracedFetch(`http://${host}${path}`, { route: path, signal: abort.signal });
      await res.body?.cancel();
      if (res.status === 200) return null;
      reasons.push(`${host}: ${res.status}`);
    } catch (error) {
      reasons.push(`${host}: ${(error as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }
  return reasons.join("; ");
}

/** Registers `/health` and `/readiness` on `router`. */
export function registerHealthRoutes(router: Router, deps: HealthDeps): void {
  router.get("/health", () => new Response("OK\n"));
  router.get("/readiness", async () => {
    const originProblem = await anyReady(deps.originHosts, "/readiness");
    if (originProblem !== null) {
      throw new HttpError(503, `not ready to serve traffic: origin cluster: ${originProblem}`);
    }
    const indexProblem = await anyReady(deps.buildIndexHosts, "/health");
    if (indexProblem !== null) {
      throw new HttpError(503, `not ready to serve traffic: build-index: ${indexProblem}`);
    }
    return new Response("OK\n");
  });
}
