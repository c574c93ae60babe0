/**
 * The agent server's health routes: `GET /health` (200 `OK` while the scheduler runs, else 500)
 * and `GET /readiness` (200 `OK`, or 503 `agent not ready: <errors>` listing what failed of the
 * scheduler, a random build-index and the tracker of a fixed digest).
 *
 * @module
 */

import { HashRing } from "../../cluster/hashring.ts";
import { currentHosts, type HostSource } from "../../cluster/hostlist.ts";
import { HttpError, type Router } from "../../http/router.ts";
import { type ProbeFetch, probeReadiness } from "../../cluster/readiness.ts";
import { HEALTH, READINESS } from "../../wire/health.ts";

/** What {@linkcode registerHealthRoutes} probes. */
export interface HealthDeps {
  /** The scheduler's liveness probe. */
  scheduler: { probe(): Promise<void> };
  /** Build-index hosts, for readiness. */
  buildIndexHosts: HostSource;
  /** Tracker hosts, for readiness. */
  trackerHosts: HostSource;
  /** Readiness probe timeout, ms. Default 5000. */
  readinessTimeoutMs?: number;
  /** Fetch for readiness probes (default traced fetch). */
  fetch?: ProbeFetch;
  /** Random source for picking a build-index (default `Math.random`). */
  random?: () => number;
}

// The digest whose tracker ring location answers for readiness (any fixed digest will do).
const READINESS_DIGEST = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/** Registers `/health` and `/readiness` on `router`. */
export function registerHealthRoutes(router: Router, deps: HealthDeps): void {
  const timeoutMs = deps.readinessTimeoutMs ?? 5000;
  const random = deps.random ?? Math.random;

  // A dependency without a /readiness route (v0.1.4 nodes) is probed on /health instead.
  const probe = async (what: string, addr: string): Promise<void> => {
    try {
      await probeReadiness(addr, { fetch: deps.fetch, timeoutMs });
    } catch (error) {
      throw new Error(`${what}: ${(error as Error).message}`);
    }
  };

  router.route(HEALTH, async () => {
    try {
      await deps.scheduler.probe();
    } catch (error) {
      throw new HttpError(500, `scheduler: ${(error as Error).message}`);
    }
    return new Response("OK");
  });

  router.route(READINESS, async () => {
    const buildIndexHosts = currentHosts(deps.buildIndexHosts);
    const buildIndex = buildIndexHosts[Math.floor(random() * buildIndexHosts.length)];
    const tracker = new HashRing(currentHosts(deps.trackerHosts)).locations(READINESS_DIGEST)[0];
    const results = await Promise.allSettled([
      deps.scheduler.probe().catch((e) => {
        throw new Error(`scheduler: ${e.message}`);
      }),
      probe("build-index", buildIndex),
      tracker === undefined
        ? Promise.reject(new Error("tracker: no healthy tracker"))
        : probe("tracker", tracker),
    ]);
    const errors = results
      .filter((x): x is PromiseRejectedResult => x.status === "rejected")
      .map((x) => (x.reason as Error).message);
    if (errors.length > 0) throw new HttpError(503, `agent not ready: ${errors.join("\n")}`);
    return new Response("OK");
  });
}
