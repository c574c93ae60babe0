/**
 * Readiness probes of a role's dependencies: `GET /readiness` on the dependency, 200 meaning ready.
 *
 * Go Kraken nodes older than the `/readiness` route (v0.1.4 has only `/health`) answer it with 404;
 * without a fallback every role depending on one would stay "not ready" for good in a mixed
 * cluster. A 404 on `/readiness` is therefore followed by `GET /health` on the same host, within
 * the same timeout, and its 200 counts as ready. Any other status is an answer and is not retried.
 *
 * ```ts
 * import { firstReady, probeReadiness } from "./readiness.ts";
 * await probeReadiness("127.0.0.1:15003"); // throws when not ready
 * const problem = await firstReady(["127.0.0.1:15002", "127.0.0.1:15012"]); // null when one is
 * ```
 *
 * @module
 */

import { HttpStatusError } from "../http/status_error.ts";
import { currentHosts, type HostSource } from "./hostlist.ts";
import { tracedFetch, type TracedFetchOptions } from "../tracing/mod.ts";
import { HEALTH, READINESS } from "../wire/health.ts";
import type { Route } from "../wire/route.ts";

/** The fetch probes use: {@linkcode tracedFetch}'s signature (tests pass a stand-in). */
export type ProbeFetch = (url: string, init: TracedFetchOptions) => Promise<Response>;

/** Options of {@linkcode probeReadiness} and {@linkcode firstReady}. */
export interface ReadinessProbeOptions {
  /** Request function (default {@linkcode tracedFetch}). */
  fetch?: ProbeFetch;
  /** Time for the whole probe of one host, fallback included (default 5000 ms, upstream's). */
  timeoutMs?: number;
  /** URL scheme (default `http`). */
  scheme?: "http" | "https";
  /**
   * What to ask: `/readiness` (default, with the `/health` fallback) or `/health` alone, for a
   * dependency whose liveness is all that matters.
   */
  path?: "/readiness" | "/health";
}

async function get(
  base: string,
  check: Route,
  fetch: ProbeFetch,
  signal: AbortSignal,
): Promise<{ status: number; text: string }> {
  const url = `${base}${check.template}`;
  let res: Response;
  try {
    res = await fetch(url, { method: check.method, route: check.template, signal });
  } catch (error) {
    const reason = signal.aborted && signal.reason instanceof Error ? signal.reason : error;
    throw new Error(`GET ${url}: ${(reason as Error).message}`);
  }
  const text = await res.text().catch(() => "");
  return { status: res.status, text: text.trim().slice(0, 200) };
}

/**
 * Asks `host` (`host:port`) whether it is ready: `GET /readiness`, or `GET /health` when that
 * route does not exist there (404). With `path: "/health"`, `GET /health` alone.
 *
 * @throws {HttpStatusError} for an answer other than 200 (after a 404 on `/readiness`, the
 *   `/health` answer, its URL marked `(no /readiness route)`)
 * @throws {Error} naming the URL when there was no answer
 */
export async function probeReadiness(
  host: string,
  options: ReadinessProbeOptions = {},
): Promise<void> {
  const fetch = options.fetch ?? tracedFetch;
  const timeoutMs = options.timeoutMs ?? 5000;
  const base = `${options.scheme ?? "http"}://${host}`;
  const signal = AbortSignal.timeout(timeoutMs);
  const check = options.path === HEALTH.template ? HEALTH : READINESS;
  let url = `${base}${check.template}`;
  let answer = await get(base, check, fetch, signal);
  if (answer.status === 404 && check === READINESS) {
    url = `${base}${HEALTH.template}`;
    answer = await get(base, HEALTH, fetch, signal);
    if (answer.status === 200) return;
    url += " (no /readiness route)";
  }
  if (answer.status === 200) return;
  throw new HttpStatusError("GET", url, answer.status, answer.text);
}

/**
 * Probes `hosts` one after another until one is ready.
 *
 * @returns `null` when a host is ready, else every host's reason joined by `; `
 */
export async function firstReady(
  hosts: HostSource,
  options: ReadinessProbeOptions = {},
): Promise<string | null> {
  const reasons: string[] = [];
  for (const host of currentHosts(hosts)) {
    try {
      await probeReadiness(host, options);
      return null;
    } catch (error) {
      reasons.push((error as Error).message);
    }
  }
  return reasons.length > 0 ? reasons.join("; ") : "no hosts";
}
