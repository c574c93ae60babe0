/**
 * The tracker role: answers agents' announces with the peers and origins that hold a torrent,
 * and proxies metainfo from the origin cluster (kraken-wire.md §1.3, §2).
 *
 * Laid out like every role (see `roles/role.ts`): `config.ts` parses the config, `server.ts` builds
 * the router from the handler modules (`announce.ts`, `metainfo.ts`, `health.ts`), and this module
 * starts and stops it: {@linkcode startTracker} (tests inject stores through its deps) and
 * {@linkcode trackerRole} for `main.ts`.
 *
 * @module
 */

import { openHostLists } from "../../cluster/hostlist.ts";
import { OriginClusterClient } from "../../cluster/blob_client.ts";
import { digestOfBytes } from "../../storage/digest.ts";
import type { RoleContext, RoleDefinition, RunningRole } from "../role.ts";
import { message } from "./announce.ts";
import { parseTrackerConfig, type TrackerConfig, trackerConfigSchema } from "./config.ts";
import { type RoleCalls, startRoleCalls } from "../calls.ts";
import { serveRole } from "../listen.ts";
import { HttpOriginStore, type OriginStore } from "./originstore.ts";
import { MemoryPeerStore, type PeerStore } from "./peerstore.ts";
import { MonitoredPeerStore } from "./peerstore_monitor.ts";
import { createPriorityPolicy } from "./policy.ts";
import { RedisClient } from "./redis.ts";
import { RedisPeerStore } from "./redis_peerstore.ts";
import { createTrackerRouter } from "./server.ts";

export { parseTrackerConfig, type TrackerConfig } from "./config.ts";

/** Dependencies {@linkcode startTracker} builds from the config unless given. */
export interface TrackerDeps {
  /** Peer store (default: from `config.peerstore`). */
  peerStore?: PeerStore;
  /** Origin cluster client (default: over `config.origins.hosts`). */
  originCluster?: OriginClusterClient;
  /** Origin store (default: over the origin cluster with `config.originstore`). */
  originStore?: OriginStore;
}

/** A started tracker. */
export interface RunningTracker extends RunningRole {
  /** The bound port. */
  readonly port: number;
  /** The peer store in use. */
  readonly peerStore: PeerStore;
}

/** Builds the peer store `config.peerstore` describes; a Redis store is checked with `PING`. */
export async function createPeerStore(config: TrackerConfig["peerstore"]): Promise<PeerStore> {
  if (config.type === "memory" || !config.redis) {
    return new MemoryPeerStore({ ttlMs: config.ttlMs });
  }
  const r = config.redis;
  const client = new RedisClient({
    addr: r.addr,
    dialTimeoutMs: r.dialTimeoutMs,
    readTimeoutMs: r.readTimeoutMs,
    writeTimeoutMs: r.writeTimeoutMs,
    maxIdle: r.maxIdle,
    maxActive: r.maxActive,
    idleTimeoutMs: r.idleTimeoutMs,
  });
  try {
    await client.command("PING");
  } catch (error) {
    await client.close();
    throw new Error(`peerstore.redis.addr: cannot reach redis at ${r.addr}: ${message(error)}`);
  }
  return new RedisPeerStore({ client, windowSizeMs: r.windowSizeMs, maxWindows: r.maxWindows });
}

/** Starts the tracker: builds its stores, then serves its router; `stop` closes the peer store. */
export async function startTracker(
  config: TrackerConfig,
  ctx: RoleContext,
  deps: TrackerDeps = {},
): Promise<RunningTracker> {
  const { logger } = ctx;
  const hostLists = await openHostLists({ origins: config.origins.hosts }, {
    logger,
    metrics: ctx.tracing.roleMetrics,
  });
  const { origins } = hostLists.lists;
  let store: PeerStore;
  let calls: RoleCalls;
  try {
    calls = await startRoleCalls(config.tls, ctx);
  } catch (error) {
    hostLists.stop();
    throw error;
  }
  try {
    store = deps.peerStore ?? await createPeerStore(config.peerstore);
  } catch (error) {
    hostLists.stop();
    await calls.close();
    throw error;
  }
  const peerStore = new MonitoredPeerStore(store, { logger, metrics: ctx.tracing.roleMetrics });
  const originCluster = deps.originCluster ??
    new OriginClusterClient({ hosts: origins, fetch: calls.fetch });
  const originStore = deps.originStore ?? new HttpOriginStore({
    cluster: originCluster,
    fetch: calls.fetch,
    ...config.originstore,
    onUnavailable: (addr, error) => logger.warn("origin unavailable", { origin: addr, error }),
  });
  const router = createTrackerRouter({
    tracing: ctx.tracing,
    peerStore,
    originStore,
    originCluster,
    policy: createPriorityPolicy(config.handout.policy),
    announceIntervalMs: config.announceIntervalMs,
    maxPeers: config.handout.maxPeers,
    metrics: ctx.tracing.roleMetrics,
    readinessDigest: await digestOfBytes(crypto.getRandomValues(new Uint8Array(32))),
    fetch: calls.fetch,
  });
  const server = await serveRole({
    name: "server",
    listen: config.listen,
    limits: config.http,
    tls: config.tls.server,
    handler: (req, info) => router.handle(req, info),
    onStartFailed: async () => {
      hostLists.stop();
      await peerStore.close();
      await calls.close();
    },
  }, ctx);
  logger.info("tracker listening", {
    host: config.listen.host,
    port: server.addr.port,
    peerstore: peerStore.type,
    handout_policy: config.handout.policy,
    origins: origins.hosts,
  });
  let stopped = false;
  return {
    port: server.addr.port,
    peerStore,
    async stop() {
      if (stopped) return;
      stopped = true;
      hostLists.stop();
      await server.shutdown();
      await peerStore.close();
      await calls.close();
    },
  };
}

/** The tracker {@linkcode RoleDefinition}. */
export const trackerRole: RoleDefinition<TrackerConfig> = {
  configSchema: trackerConfigSchema,
  parseConfig: parseTrackerConfig,
  start: (config, ctx) => startTracker(config, ctx),
};
