/**
 * The tracker's health routes: `GET /health` (200 `OK\n`) and `GET /readiness` (the peer store
 * answers its probe and a random ring location of a per-process digest answers `/readiness`:
 * 200 `OK\n` or 503 with the reason).
 *
 * @module
 */

import { type ProbeFetch, probeReadiness } from "../../cluster/readiness.ts";
import { HttpError, type Router } from "../../http/router.ts";
import type { Digest } from "../../storage/digest.ts";
import { message } from "./announce.ts";
import type { OriginCluster } from "./metainfo.ts";
import type { PeerStore } from "./peerstore.ts";
import { HEALTH, READINESS } from "../../wire/health.ts";

/** What {@linkcode registerHealthRoutes} runs on. */
export interface HealthDeps {
  /** The peer store, probed first (Redis: `PING`). */
  peerStore: Pick<PeerStore, "probe">;
  /** The origin cluster whose readiness the tracker's depends on. */
  originCluster: Pick<OriginCluster, "locations">;
  /** The digest whose ring locations readiness probes (upstream: random, fixed per process). */
  readinessDigest: Digest;
  /** Fetch for the origin readiness probe (default traced fetch). */
  fetch?: ProbeFetch;
}

/** Registers `/health` and `/readiness` on `router`. */
export function registerHealthRoutes(router: Router, deps: HealthDeps): void {
  const ok = () => new Response("OK\n");
  router.route(HEALTH, ok);
  router.route(READINESS, async () => {
    try {
      await deps.peerStore.probe();
    } catch (error) {
      throw new HttpError(503, `not ready to serve traffic: peer store: ${message(error)}`);
    }
    let addr: string;
    try {
      const locations = await deps.originCluster.locations(deps.readinessDigest);
      addr = locations[Math.floor(Math.random() * locations.length)];
    } catch (error) {
      throw new HttpError(503, `not ready to serve traffic: resolve clients: ${message(error)}`);
    }
    try {
      await probeReadiness(addr, { fetch: deps.fetch });
      return ok();
    } catch (error) {
      throw new HttpError(503, `not ready to serve traffic: ${message(error)}`);
    }
  });
}
