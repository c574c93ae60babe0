/**
 * The registry's version check: `GET /v2/` answers 200 `{}`, telling clients this is a Docker
 * Registry HTTP API v2 (the `Docker-Distribution-API-Version` header comes from the router's
 * middleware).
 *
 * @module
 */

import type { RegistryRoute } from "./registry.ts";

/** Registers `GET /v2/`. */
export function registerBaseRoutes(on: RegistryRoute): void {
  on(
    "GET",
    "/v2/",
    () => new Response("{}", { headers: { "content-type": "application/json; charset=utf-8" } }),
  );
}
