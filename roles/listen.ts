/**
 * The one way a role opens an HTTP listener: {@linkcode serveRole} serves a handler on
 * `http/serve.ts`'s listener with the role's `http:` limits, puts the listener's connection counters
 * on the role's `/metrics`, and logs each limit that closed connections at most once per
 * {@linkcode LIMIT_LOG_INTERVAL_MS} per listener and reason (with the count suppressed since).
 *
 * @module
 */

import { rateLimited } from "../common/log.ts";
import {
  CLOSE_REASONS,
  type CloseReason,
  type HttpHandler,
  type HttpServer,
  type ListenerLimits,
  serveHttp,
} from "../http/serve.ts";
import type { Counter } from "../tracing/mod.ts";
import type { RoleContext } from "./role.ts";

/** How often a limit is logged at most, per listener and reason. */
export const LIMIT_LOG_INTERVAL_MS = 30_000;

/** Options of {@linkcode serveRole}. */
export interface ServeRoleOptions {
  /** The listener's name: the `listener` label of its metrics and the log field. */
  name: string;
  /** Listen interface and port (port 0 picks a free one): the role's `listen`-shaped block. */
  listen: { host: string; port: number };
  /** The role's `http:` block. */
  limits: ListenerLimits;
  /** Handles every request (a router's `handle`). */
  handler: HttpHandler;
  /** Releases what the role opened before listening when the listener cannot start. */
  onStartFailed?: () => unknown;
}

const MESSAGES: Record<CloseReason, string> = {
  header_timeout:
    "closed connections that did not send request headers in time (http.header_timeout)",
  idle_timeout: "closed idle keep-alive connections (http.idle_timeout)",
  max_connections: "refused connections beyond http.max_connections",
  header_too_large: "refused requests with headers beyond http.max_header_size",
};

/** Serves `options.handler` with the role's listener limits, metrics and limit logs. */
export async function serveRole(options: ServeRoleOptions, ctx: RoleContext): Promise<HttpServer> {
  const logs = Object.fromEntries(
    CLOSE_REASONS.map((reason) => [
      reason,
      rateLimited(LIMIT_LOG_INTERVAL_MS, (msg, fields) => ctx.logger.warn(msg, fields)),
    ]),
  ) as Record<CloseReason, ReturnType<typeof rateLimited>>;
  const metrics = ctx.tracing.roleMetrics;
  const counters: Partial<Record<CloseReason, Counter>> = {};
  for (const reason of CLOSE_REASONS) {
    const closed = metrics.counter(
      "kraken_http_connections_closed_total",
      "Connections closed by a listener limit (http:), by reason.",
      { listener: options.name, reason },
    );
    counters[reason] = closed;
  }
  let server: HttpServer;
  try {
    server = await serveHttp({
      hostname: options.listen.host,
      port: options.listen.port,
      handler: options.handler,
      limits: options.limits,
      onLimit: (reason, detail) => {
        counters[reason]?.inc();
        logs[reason](MESSAGES[reason], { listener: options.name, reason, ...detail });
      },
    });
  } catch (error) {
    await options.onStartFailed?.();
    throw error;
  }
  metrics.gauge(
    "kraken_http_connections_open",
    "Connections open on the listener.",
    () => server.stats.open,
    { listener: options.name },
  );
  return server;
}
