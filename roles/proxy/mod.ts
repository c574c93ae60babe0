/**
 * The proxy role: takes `docker push` (Docker Registry HTTP API v2 write path), uploads blobs and
 * manifests to the origin cluster (namespace `TODO`, as upstream) and publishes tags to build-index
 * (kraken-wire.md §1.6).
 *
 * Laid out like every role (see `roles/role.ts`): `config.ts` parses the config, `server.ts` builds
 * the router from the handler modules (`base.ts`, `tags.ts`, `manifests.ts`, `uploads.ts`,
 * `blobs.ts`, `health.ts`), and this module starts and stops it: {@linkcode startProxy} (tests
 * inject clients through its deps) and {@linkcode proxyRole} for `main.ts`. Upload sessions left
 * idle past `upload.ttl` are aborted (their `proxy.upload` spans end as `expired`).
 *
 * @module
 */

import { openHostLists } from "../../cluster/hostlist.ts";
import { OriginClusterClient } from "../../cluster/blob_client.ts";
import { TagClusterClient } from "../../cluster/tag_client.ts";
import { BlobStore } from "../../storage/blob_store.ts";
import { startRoleCalls } from "../calls.ts";
import { registerStoreMetrics } from "../../storage/store_metrics.ts";
import { serveRole } from "../listen.ts";
import type { RoleContext, RoleDefinition, RunningRole } from "../role.ts";
import { parseProxyConfig, type ProxyConfig, proxyConfigSchema } from "./config.ts";
import type { ProxyOrigin, ProxyTags } from "./registry.ts";
import { createProxyRouter } from "./server.ts";
import { UploadSessions } from "./upload_sessions.ts";

export { parseProxyConfig, type ProxyConfig } from "./config.ts";
export { PUSH_NAMESPACE } from "./registry.ts";

/** Dependencies {@linkcode startProxy} builds from the config unless given. */
export interface ProxyDeps {
  /** The origin cluster client (default: over `config.origin.hosts`). */
  origin?: ProxyOrigin;
  /** The build-index cluster client (default: over `config.buildIndex.hosts`). */
  tags?: ProxyTags;
}

/** A started proxy. */
export interface RunningProxy extends RunningRole {
  /** The listen port actually bound. */
  readonly port: number;
  /** The proxy's blob store (staged uploads and cache). */
  readonly store: BlobStore;
  /** Upload session bookkeeping. */
  readonly sessions: UploadSessions;
  /** Aborts sessions idle past the TTL once; returns how many were ended. */
  prune(): Promise<number>;
}

/**
 * Starts a proxy: opens its blob store and session files, serves its router and prunes idle
 * sessions; `stop` stops serving and the prune timer (open sessions stay on disk for a restart).
 */
export async function startProxy(
  config: ProxyConfig,
  ctx: RoleContext,
  deps: ProxyDeps = {},
): Promise<RunningProxy> {
  const { logger } = ctx;
  const store = await BlobStore.open({ root: `${config.storageRoot}/blobs` });
  registerStoreMetrics(ctx.tracing.roleMetrics, store);
  const sessions = await UploadSessions.open({ root: `${config.storageRoot}/sessions` });
  const hostLists = await openHostLists(
    { origin: config.origin.hosts, buildIndex: config.buildIndex.hosts },
    { logger, metrics: ctx.tracing.roleMetrics },
  );
  const { origin, buildIndex } = hostLists.lists;
  const calls = await startRoleCalls(config.tls, ctx).catch((error) => {
    hostLists.stop();
    throw error;
  });
  const router = createProxyRouter({
    tracing: ctx.tracing,
    store,
    sessions,
    origin: deps.origin ?? new OriginClusterClient({ hosts: origin, fetch: calls.fetch }),
    tags: deps.tags ?? new TagClusterClient({ hosts: buildIndex, fetch: calls.fetch }),
    logger,
    metrics: ctx.tracing.roleMetrics,
    originHosts: origin,
    buildIndexHosts: buildIndex,
    fetch: calls.fetch,
  });

  let pruning: Promise<number> | undefined;
  const prune = (): Promise<number> => {
    pruning ??= (async () => {
      let ended = 0;
      for (const session of await sessions.idle(config.upload.ttlMs)) {
        await store.abortUpload(session.uid).catch(() => {});
        await sessions.end(session, "expired");
        ended++;
      }
      // Staged files whose session file is gone (e.g. a crash between the two writes).
      await store.pruneUploads(config.upload.ttlMs);
      return ended;
    })().finally(() => pruning = undefined);
    return pruning;
  };
  const timer = setInterval(() => {
    prune().then(
      (n) => n > 0 && logger.info("expired idle upload sessions", { count: n }),
      (error) => logger.warn("pruning upload sessions failed", { error }),
    );
  }, config.upload.pruneIntervalMs);

  const server = await serveRole({
    name: "registry",
    listen: config.listen,
    limits: config.http,
    tls: config.tls.server,
    handler: (req, info) => router.handle(req, info),
    onStartFailed: async () => {
      clearInterval(timer);
      hostLists.stop();
      await calls.close();
    },
  }, ctx);
  const port = server.addr.port;
  logger.info("proxy registry listening", { host: config.listen.host, port });
  let stopped = false;
  return {
    port,
    store,
    sessions,
    prune,
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      hostLists.stop();
      await server.shutdown();
      await pruning;
      sessions.closeSpans();
      await calls.close();
    },
  };
}

/** The proxy {@linkcode RoleDefinition}. */
export const proxyRole = {
  configSchema: proxyConfigSchema,
  parseConfig: parseProxyConfig,
  start: (config, ctx) => startProxy(config, ctx),
} satisfies RoleDefinition<ProxyConfig>;
