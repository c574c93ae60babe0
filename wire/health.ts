/**
 * The health routes every role serves: `/health` answers while the process runs, `/readiness`
 * when the role can do its work (it asks its own dependencies' `/readiness` or `/health`), and
 * `/metrics` the Prometheus text. Roles that check each other use these constants, so the
 * checking side's client span has the same name as the checked side's server span.
 *
 * @example
 * ```ts
 * import { READINESS } from "./health.ts";
 * READINESS.spanName; // "GET /readiness"
 * ```
 *
 * @module
 */

import { route } from "./route.ts";

/** Liveness: `OK` while the process serves. */
export const HEALTH = route("GET", "/health");
/** Readiness: 200 when the role's dependencies answer, 503 with the reason otherwise. */
export const READINESS = route("GET", "/readiness");
/** Prometheus metrics. */
export const METRICS = route("GET", "/metrics");
