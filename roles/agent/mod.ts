/**
 * The `agent` role: runs on every host, serves `docker pull` (Registry v2 read API) and its own
 * blob API, and downloads blobs peer to peer from origins and other agents, seeding what it has.
 * See `docs/agent.md` for configuration, routes and spans.
 *
 * Laid out like every role (see `roles/role.ts`): `config.ts` parses the config, `server.ts` builds
 * the agent server's router over the handler modules (`health.ts`, `tags.ts`, `blob_api.ts`) and
 * `registry.ts` the registry's, both over `blobs.ts` (cache or P2P), and this module
 * starts and stops them: {@linkcode startAgent} and {@linkcode agentRole} for `main.ts`.
 *
 * ```ts
 * import { agentRole } from "./roles/agent/mod.ts";
 * const config = agentRole.parseConfig(raw, flags);
 * const running = await agentRole.start(config, { logger, tracing, flags });
 * await running.stop();
 * ```
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import { openHostLists } from "../../cluster/hostlist.ts";
import { AnnounceClient } from "../../cluster/announce_client.ts";
import { TagClusterClient } from "../../cluster/tag_client.ts";
import type { RawMap } from "../../common/config.ts";
import { addrHashPeerId, randomPeerId, Scheduler } from "../../p2p/scheduler.ts";
import { BlobStore } from "../../storage/blob_store.ts";
import { registerStoreMetrics } from "../../storage/store_metrics.ts";
import type { HttpServer } from "../../http/serve.ts";
import { startRoleCalls } from "../calls.ts";
import { serveRole } from "../listen.ts";
import type { ParseOptions, RoleContext, RoleDefinition, RunningRole } from "../role.ts";
import { AgentBlobs } from "./blobs.ts";
import { type AgentConfig, agentConfigSchema, parseAgentConfig } from "./config.ts";
import { createAgentRegistryRouter } from "./registry.ts";
import { createAgentRouter } from "./server.ts";

export { type AgentConfig, parseAgentConfig } from "./config.ts";

/** A started agent. */
export interface RunningAgent extends RunningRole {
  /** `host:port` of the agent server. */
  readonly serverAddr: string;
  /** `host:port` of the registry. */
  readonly registryAddr: string;
  /** The bound peer port. */
  readonly peerPort: number;
  /** This agent's peer id. */
  readonly peerId: string;
  /** The scheduler (tests inspect it). */
  readonly scheduler: Scheduler;
}

/**
 * Starts an agent: opens the store, binds the peer port, starts the scheduler and both HTTP
 * listeners (agent server and registry).
 */
export async function startAgent(config: AgentConfig, ctx: RoleContext): Promise<RunningAgent> {
  const logger = ctx.logger;
  const hostLists = await openHostLists(
    { tracker: config.tracker.hosts, buildIndex: config.buildIndex.hosts },
    { logger, metrics: ctx.tracing.roleMetrics },
  );
  const { tracker, buildIndex } = hostLists.lists;
  const calls = await startRoleCalls(config.tls, ctx).catch((error) => {
    hostLists.stop();
    throw error;
  });
  let listener: Deno.TcpListener;
  let store: BlobStore;
  try {
    store = await BlobStore.open({ root: config.storageRoot });
    registerStoreMetrics(ctx.tracing.roleMetrics, store);
    listener = Deno.listen({ hostname: config.peer.host, port: config.peer.port });
  } catch (error) {
    hostLists.stop();
    await calls.close();
    throw error;
  }
  const peerPort = listener.addr.port;
  const peerId = config.peer.peerIdFactory === "random"
    ? randomPeerId()
    : addrHashPeerId(config.peer.ip, peerPort);
  const s = config.scheduler;
  let scheduler: Scheduler;
  try {
    scheduler = new Scheduler({
      store,
      peerId,
      listener,
      peer: { ip: config.peer.ip, port: peerPort },
      announcer: new AnnounceClient({
        trackers: tracker,
        poll: { maxElapsedMs: s.metainfoTimeoutMs },
        fetch: calls.fetch,
      }),
      seederTtiMs: s.seederTtiMs,
      leecherTtiMs: s.leecherTtiMs,
      announceIntervalMs: s.announceIntervalMs,
      maxAnnounceIntervalMs: s.maxAnnounceIntervalMs,
      handshakeTimeoutMs: s.handshakeTimeoutMs,
      blacklistDurationMs: s.blacklistDurationMs,
      maxOpenConn: s.maxOpenConn,
      pipelineLimit: s.pipelineLimit,
      originPipelineLimit: s.originPipelineLimit,
      pieceRequestMinTimeoutMs: s.pieceRequestMinTimeoutMs,
      pieceRequestTimeoutPerMbMs: s.pieceRequestTimeoutPerMbMs,
      logger,
      metrics: ctx.tracing.roleMetrics,
    });
  } catch (error) {
    listener.close();
    hostLists.stop();
    await calls.close();
    throw error;
  }
  const servers: HttpServer[] = [];
  try {
    await scheduler.recover();
    const blobs = new AgentBlobs(store, scheduler);
    const tags = new TagClusterClient({ hosts: buildIndex, fetch: calls.fetch });
    const server = createAgentRouter({
      tracing: ctx.tracing,
      blobs,
      scheduler,
      tags,
      buildIndexHosts: buildIndex,
      trackerHosts: tracker,
      fetch: calls.fetch,
      logger,
    });
    const registry = createAgentRegistryRouter({
      tracing: ctx.tracing,
      blobs,
      tags,
      allowedCidrs: config.registry.allowedCidrs,
      maxManifestBytes: config.registry.maxManifestBytes,
      logger,
    });
    for (
      const [name, listen, router] of [
        ["server", config.server, server],
        ["registry", config.registry, registry],
      ] as const
    ) {
      servers.push(
        await serveRole({
          name,
          listen,
          limits: config.http,
          tls: config.tls.server,
          handler: (req, info) => router.handle(req, info),
        }, ctx),
      );
    }
  } catch (error) {
    for (const http of servers) await http.shutdown();
    await scheduler.close();
    hostLists.stop();
    await calls.close();
    throw error;
  }
  const [serverHttp, registryHttp] = servers;
  const serverAddr = `${config.server.host}:${serverHttp.addr.port}`;
  const registryAddr = `${config.registry.host}:${registryHttp.addr.port}`;
  logger.info("agent serving", {
    server: serverAddr,
    registry: registryAddr,
    peer: `${config.peer.ip}:${peerPort}`,
    peer_id: peerId,
  });
  let stopping: Promise<void> | undefined;
  return {
    serverAddr,
    registryAddr,
    peerPort,
    peerId,
    scheduler,
    stop() {
      stopping ??= (async () => {
        // Closing the scheduler fails downloads in flight, so the listeners' shutdown need not
        // wait for them.
        await Promise.all([...servers.map((http) => http.shutdown()), scheduler.close()]);
        hostLists.stop();
        await calls.close();
      })();
      return stopping;
    },
  };
}

/** The agent role for `main.ts`. */
export const agentRole: RoleDefinition<AgentConfig> = {
  configSchema: agentConfigSchema,
  parseConfig(raw: RawMap, flags: Record<string, string>, options: ParseOptions = {}) {
    return parseAgentConfig(raw, flags, {
      baseDir: options.configPath ? dirname(resolve(options.configPath)) : undefined,
    });
  },
  start: (config, ctx) => startAgent(config, ctx),
};
