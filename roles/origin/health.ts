/**
 * The origin's health routes: `GET /health` (200 `OK\n`) and `GET /readiness` (every must-ready
 * backend passes its readiness check, `Backend.ready`: 200 `OK\n`, else 503 with the reason).
 *
 * @module
 */

import { HttpError, type Router } from "../../http/router.ts";
import type { Backend } from "../../storage/backend/backend.ts";
import { HEALTH, READINESS } from "../../wire/health.ts";

/** Registers `/health` and `/readiness`, probing `mustReady` backends. */
export function registerHealthRoutes(router: Router, mustReady: Backend[]): void {
  router.route(HEALTH, () => new Response("OK\n"));
  router.route(READINESS, async () => {
    for (const backend of mustReady) {
      try {
        await backend.ready();
      } catch (error) {
        throw new HttpError(503, `not ready to serve traffic: ${(error as Error).message}`);
      }
    }
    return new Response("OK\n");
  });
}
