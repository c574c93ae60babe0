/**
 * The one way a role opens an HTTP listener: {@linkcode serveRole} serves a handler on
 * `http/serve.ts`'s listener with the role's `http:` limits, puts the listener's connection counters
 * on the role's `/metrics`, and logs each limit that closed connections at most once per
 * {@linkcode LIMIT_LOG_INTERVAL_MS} per listener and reason (with the count suppressed since).
 *
 * With the role's `tls.server` set, the listener serves TLS: the certificate is loaded (a bad one
 * fails start-up naming the key and file), re-read when its files change or on SIGHUP (a bad
 * replacement is logged and the previous certificate kept), and its expiry is a gauge. Requests
 * refused by the client-certificate rule are counted and logged like the limits.
 *
 * @module
 */

import { rateLimited } from "../common/log.ts";
import { type KeyPair, loadCas, loadKeyPair, TlsFileWatcher } from "../http/tls.ts";
import type { ServerTlsConfig } from "../http/tls_config.ts";
import {
  CLOSE_REASONS,
  type CloseReason,
  type HttpHandler,
  type HttpServer,
  type ListenerLimits,
  serveHttp,
  type ServeTlsOptions,
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
  /** The role's `tls.server` side: serve TLS with it (plaintext when undefined). */
  tls?: ServerTlsConfig;
}

const MESSAGES: Record<CloseReason, string> = {
  header_timeout:
    "closed connections that did not send request headers in time (http.header_timeout)",
  idle_timeout: "closed idle keep-alive connections (http.idle_timeout)",
  max_connections: "refused connections beyond http.max_connections",
  header_too_large: "refused requests with headers beyond http.max_header_size",
  tls_handshake: "TLS handshakes failed (a plaintext request to a TLS port, an unknown CA, …)",
};

function loadServerTls(tls: ServerTlsConfig): { pair: KeyPair; options: ServeTlsOptions } {
  const pair = loadKeyPair(tls, "tls.server");
  const ca = loadCas(tls.cas, "tls.cas");
  return {
    pair,
    options: { cert: pair.cert, key: pair.key, ca, verifyLoopback: tls.verifyLoopback },
  };
}

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
  const refusedLog = rateLimited(
    LIMIT_LOG_INTERVAL_MS,
    (msg, fields) => ctx.logger.warn(msg, fields),
  );
  const refused = metrics.counter(
    "kraken_http_requests_refused_total",
    "Requests refused by the TLS client-certificate rule (403), by listener.",
    { listener: options.name, reason: "client_certificate" },
  );
  let server: HttpServer | undefined;
  let watcher: TlsFileWatcher | undefined;
  try {
    const tls = options.tls ? loadServerTls(options.tls) : undefined;
    let notAfter = tls?.pair.notAfter;
    server = await serveHttp({
      tls: tls?.options,
      onClientRefused: (detail) => {
        refused.inc();
        refusedLog("refused a request without a verified client certificate (403)", {
          listener: options.name,
          ...detail,
        });
      },
      hostname: options.listen.host,
      port: options.listen.port,
      handler: options.handler,
      limits: options.limits,
      onLimit: (reason, detail) => {
        counters[reason]?.inc();
        logs[reason](MESSAGES[reason], { listener: options.name, reason, ...detail });
      },
    });
    if (options.tls && tls) {
      const serverTls = options.tls;
      const reloads = {
        ok: metrics.counter(
          "kraken_tls_reloads_total",
          "Certificate reloads of a TLS listener (files changed or SIGHUP), by result.",
          { listener: options.name, result: "ok" },
        ),
        failed: metrics.counter(
          "kraken_tls_reloads_total",
          "Certificate reloads of a TLS listener (files changed or SIGHUP), by result.",
          { listener: options.name, result: "failed" },
        ),
      };
      metrics.gauge(
        "kraken_tls_server_certificate_expiry_timestamp_seconds",
        "When the certificate a TLS listener serves expires (Unix seconds).",
        () => Math.floor(notAfter!.getTime() / 1000),
        { listener: options.name },
      );
      const running = server;
      const files = [serverTls.cert, serverTls.key, ...serverTls.cas];
      if (serverTls.passphrase) files.push(serverTls.passphrase);
      watcher = await TlsFileWatcher.start({
        files,
        onChange: (reason) => {
          try {
            const next = loadServerTls(serverTls);
            running.setTls(next.options);
            notAfter = next.pair.notAfter;
            reloads.ok.inc();
            ctx.logger.info("TLS certificate reloaded", {
              listener: options.name,
              reason,
              subject: next.pair.subject,
              not_after: next.pair.notAfter.toISOString(),
            });
          } catch (error) {
            reloads.failed.inc();
            ctx.logger.error("TLS certificate reload failed; the previous certificate stays", {
              listener: options.name,
              reason,
              error,
            });
          }
        },
      });
    }
  } catch (error) {
    await server?.shutdown();
    await options.onStartFailed?.();
    throw error;
  }
  metrics.gauge(
    "kraken_http_connections_open",
    "Connections open on the listener.",
    () => server.stats.open,
    { listener: options.name },
  );
  if (!watcher) return server;
  const tlsWatcher = watcher;
  const listener = server;
  return {
    get addr() {
      return listener.addr;
    },
    stats: listener.stats,
    scheme: listener.scheme,
    setTls: (tls) => listener.setTls(tls),
    async shutdown() {
      await tlsWatcher.stop();
      await listener.shutdown();
    },
  };
}
