/**
 * The build-index's health routes: `GET /health` (200 `OK\n`) and `GET /readiness` (every backend
 * answers a stat, then any origin answers `/readiness`: 200 `OK\n`, else 503 with the reasons).
 *
 * @module
 */

import { HttpError, type Router } from "../../http/router.ts";
import type { BackendManager } from "../../storage/backend/backend.ts";
import { tracedFetch } from "../../tracing/mod.ts";

/** What {@linkcode registerHealthRoutes} runs on. */
export interface HealthDeps {
  /** The tag backends, each probed with a stat. */
  backends: BackendManager;
  /** Origin hosts asked for readiness. */
  originHosts: string[];
}

function ok(): Response {
  return new Response("OK\n");
}

/** Registers `/health` and `/readiness` on `router`. */
export function registerHealthRoutes(router: Router, deps: HealthDeps): void {
  router.get("/health", ok);
  router.get("/readiness", async () => {
    for (const backend of deps.backends.backends) {
      // A name of the `repo:tag` form, so every name-path layout accepts it; absent is fine.
      const probe = `kraken-readiness:${crypto.randomUUID()}`;
      try {
        await backend.stat(probe, probe);
      } catch (error) {
        throw new HttpError(
          503,
          `not ready to serve traffic: backend: ${(error as Error).message}`,
        );
      }
    }
    const reasons: string[] = [];
    for (const host of deps.originHosts) {
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(new Error("timed out after 5000 ms")), 5000);
      try {
        const res = await tracedFetch(`http://${host}/readiness`, {
          route: "/readiness",
          signal: abort.signal,
        });
        await res.body?.cancel();
        if (res.status === 200) return ok();
        reasons.push(`${host}: ${res.status}`);
      } catch (error) {
        reasons.push(`${host}: ${(error as Error).message}`);
      } finally {
        clearTimeout(timer);
      }
    }
    throw new HttpError(503, `not ready to serve traffic: origin cluster: ${reasons.join("; ")}`);
  });
}
