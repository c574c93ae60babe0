/**
 * The exposition of `GET /metrics`: the Prometheus text format 0.0.4 by default, OpenMetrics 1.0
 * (with histogram exemplars and the closing `# EOF`) when the scraper's `Accept` asks for
 * `application/openmetrics-text`, as Prometheus does when exemplar storage is on. The series come
 * from {@linkcode MetricsRegistry}s: the tracing self-metrics first, then the role's.
 *
 * @module
 */

import type { MetricsRegistry } from "./registry.ts";

/** Content type of the Prometheus text format. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Content type of OpenMetrics text. */
export const OPENMETRICS_CONTENT_TYPE =
  "application/openmetrics-text; version=1.0.0; charset=utf-8";

/** Escapes a label value (backslash, double quote, newline). */
export function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** Formats a sample value (`NaN`, `+Inf`, `-Inf` spelled as the format wants). */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** Whether an `Accept` header asks for OpenMetrics (and does not refuse it with `q=0`). */
export function acceptsOpenMetrics(accept: string | null | undefined): boolean {
  if (!accept) return false;
  return accept.split(",").some((part) => {
    const [type, ...params] = part.trim().split(";").map((p) => p.trim());
    if (type.toLowerCase() !== "application/openmetrics-text") return false;
    const q = params.find((p) => p.startsWith("q="));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}

/** The `/metrics` answer for `accept`: every registry in order, in the format it asks for. */
export function metricsExposition(
  registries: readonly MetricsRegistry[],
  accept?: string | null,
): Response {
  if (acceptsOpenMetrics(accept)) {
    const body = registries.map((r) => r.render("openmetrics")).join("") + "# EOF\n";
    return new Response(body, { headers: { "content-type": OPENMETRICS_CONTENT_TYPE } });
  }
  return new Response(registries.map((r) => r.render("prometheus")).join(""), {
    headers: { "content-type": PROMETHEUS_CONTENT_TYPE },
  });
}
