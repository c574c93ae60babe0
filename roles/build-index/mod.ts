/**
 * The build-index role: maps `repo:tag` to manifest digests, checks that a tag's manifest and
 * everything it references exist in the origin cluster, persists tags on disk and in a storage
 * backend, duplicates them to neighbour build-indexes, and replicates them to remote clusters
 * through a persisted task queue (kraken-wire.md §1.5, §7).
 *
 * Laid out like every role (see `roles/role.ts`): `config.ts` parses the config, `service.ts` holds
 * the behaviour, `server.ts` builds the router from the handler modules (`tags.ts`, `list.ts`,
 * `health.ts`), and this module starts and stops it: {@linkcode startBuildIndex} (tests inject an
 * origin stand-in through its deps) and {@linkcode buildIndexRole} for `main.ts`.
 *
 * @module
 */

import { currentHosts, openHostLists } from "../../cluster/hostlist.ts";
import { OriginClusterClient } from "../../cluster/blob_client.ts";
import { type TagClientOptions, TagClusterClient } from "../../cluster/tag_client.ts";
import { parseHostPort } from "../../common/config.ts";
import { BackendManager } from "../../storage/backend/backend.ts";
import { rateLimited } from "../../common/log.ts";
import { observeBackends } from "../../storage/backend/transport.ts";
import {
  FAILURE_LOG_INTERVAL_MS,
  openDatabase,
  type WriteBackExecutor,
  WriteBackManager,
} from "../../storage/writeback.ts";
import { registerWriteBackMetrics } from "../../storage/writeback_metrics.ts";
import type { RoleContext, RoleDefinition, RunningRole } from "../role.ts";
import { type BuildIndexConfig, buildIndexConfigSchema, parseBuildIndexConfig } from "./config.ts";
import { startRoleCalls } from "../calls.ts";
import { serveRole } from "../listen.ts";
import { createReplicationExecutor, Remotes, REPLICATION_TABLE } from "./replication.ts";
import { createBuildIndexRouter } from "./server.ts";
import { BuildIndexService, createTagWriteBackExecutor, type OriginBlobs } from "./service.ts";
import { TagStore } from "./tag_store.ts";

export { type BuildIndexConfig, parseBuildIndexConfig } from "./config.ts";

/** Dependencies {@linkcode startBuildIndex} builds from the config unless given. */
export interface BuildIndexDeps {
  /** The origin cluster (default: a client over `config.origin.hosts`). */
  origin?: OriginBlobs;
  /** Backend mapping (default: built from `config.backends`). */
  backends?: BackendManager;
  /** Options of the neighbour and remote build-index clients (tests inject a fetch). */
  tagClientOptions?: TagClientOptions;
  /** A remote origin cluster, by the address its build-index names (default: a cluster client). */
  remoteOrigin?: (addr: string) => Pick<OriginBlobs, "stat">;
}

/** A started build-index. */
export interface RunningBuildIndex extends RunningRole {
  /** The listen port actually bound. */
  readonly port: number;
  /** The behaviour behind the routes (tests inspect it). */
  readonly service: BuildIndexService;
  /** The write-back queue. */
  readonly writeback: WriteBackManager;
  /** The replication queue. */
  readonly replication: WriteBackManager;
}

/** Addresses by which this host may appear in `cluster.hosts`. */
function localNames(): Set<string> {
  const names = new Set(["localhost", "127.0.0.1", "::1", "0.0.0.0"]);
  try {
    names.add(Deno.hostname());
    for (const nic of Deno.networkInterfaces()) names.add(nic.address);
  } catch {
    // Without --allow-sys only the loopback names can identify this host.
  }
  return names;
}

/**
 * The cluster hosts other than this one: `self` if configured, otherwise every entry naming a local
 * address with the listen port.
 */
export function neighbourHosts(
  hosts: readonly string[],
  port: number,
  self?: string,
  local: ReadonlySet<string> = localNames(),
): string[] {
  if (self) return hosts.filter((h) => h !== self);
  return hosts.filter((h) => {
    const { hostname, port: p } = parseHostPort(h, "cluster.hosts");
    return !(p === port && local.has(hostname));
  });
}

/**
 * Starts a build-index: opens the tag store and the write-back and replication queues (one
 * database) and serves its router; `stop` stops serving, then the queues (queued rows stay
 * persisted).
 */
export async function startBuildIndex(
  config: BuildIndexConfig,
  ctx: RoleContext,
  deps: BuildIndexDeps = {},
): Promise<RunningBuildIndex> {
  const { logger } = ctx;
  const hostLists = await openHostLists<string>({
    origin: config.origin.hosts,
    cluster: config.cluster.hosts ?? { kind: "static", hosts: [] },
    ...Object.fromEntries(
      Object.entries(config.remotes).map(([name, remote]) => [`remote:${name}`, remote.hosts]),
    ),
  }, { logger, metrics: ctx.tracing.roleMetrics });
  const { origin, cluster } = hostLists.lists;
  const backends = deps.backends ?? new BackendManager(config.backends);
  observeBackends(
    backends.backends,
    ctx.tracing.roleMetrics,
    (msg, fields) => logger.warn(msg, fields),
  );
  const tags = await TagStore.open({ root: `${config.storageRoot}/tags` });
  const calls = await startRoleCalls(config.tls, ctx).catch((error) => {
    hostLists.stop();
    throw error;
  });
  // A backend outage fails every queued tag at each retry: one line per interval, with the count.
  const writeBackFailed = rateLimited(
    FAILURE_LOG_INTERVAL_MS,
    (msg, fields) => logger.warn(msg, fields),
  );
  const db = openDatabase(config.writeback.db);
  const writeback = new WriteBackManager({
    db,
    executor: createTagWriteBackExecutor({ tags, backends, logger }),
    retryIntervalMs: config.writeback.retryIntervalMs,
    maxRetryIntervalMs: config.writeback.maxRetryIntervalMs,
    pollIntervalMs: config.writeback.pollIntervalMs,
    workers: config.writeback.workers,
    onError: (error, task) =>
      writeBackFailed("tag write-back failed", {
        tag: task?.name,
        failures: task?.failures,
        error,
      }),
  });
  const replicationFailed = rateLimited(
    FAILURE_LOG_INTERVAL_MS,
    (msg, fields) => logger.warn(msg, fields),
  );
  // The executor needs this node's address for src_cluster, known once the listener is bound.
  let executeReplication: WriteBackExecutor = () => Promise.reject(new Error("not started"));
  const replication = new WriteBackManager({
    db,
    table: REPLICATION_TABLE,
    executor: (task) => executeReplication(task),
    ...config.tagReplication,
    onError: (error, task) =>
      task
        ? replicationFailed("tag replication failed", {
          tag: task.namespace,
          destination: task.name,
          failures: task.failures + 1,
          error,
        })
        : logger.warn("tag replication bookkeeping failed", { error }),
  });
  ctx.tracing.roleMetrics.gauge(
    "kraken_replication_tasks",
    "Replication tasks stored: waiting for their delay, running, or failed and to be retried.",
    () => {
      try {
        return replication.pending().length;
      } catch {
        return 0; // The queue's database is closed once the role stopped.
      }
    },
  );
  const remotes = new Remotes(config.remotes);
  const dropped = replication.prune((task) => remotes.valid(task.namespace, task.name));
  if (dropped > 0) logger.warn("replication tasks of removed remotes dropped", { dropped });
  const stopQueues = async () => {
    await writeback.stop();
    await replication.stop();
    db.close();
  };
  writeback.start();
  const originCluster = deps.origin ??
    new OriginClusterClient({ hosts: origin, fetch: calls.fetch });
  registerWriteBackMetrics(ctx.tracing.roleMetrics, writeback);
  const service = new BuildIndexService({
    metrics: ctx.tracing.roleMetrics,
    config,
    tags,
    writeback,
    replication,
    remotes,
    backends,
    origin: originCluster,
    originHosts: origin,
    logger,
    tagClientOptions: { fetch: calls.fetch, ...deps.tagClientOptions },
  });
  const router = createBuildIndexRouter({
    tracing: ctx.tracing,
    service,
    originHosts: origin,
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
      await stopQueues();
      await calls.close();
    },
  }, ctx);
  const port = server.addr.port;
  const local = localNames();
  service.setNeighbours(() =>
    neighbourHosts(currentHosts(cluster), port, config.cluster.self, local)
  );
  const remoteClients = new Map<string, TagClusterClient>();
  executeReplication = createReplicationExecutor({
    source: {
      resolveTag: (tag) => service.getTag(tag),
      dependencies: (tag, digest) => service.replicationDependencies(tag, digest),
      stat: (namespace, digest) => originCluster.stat(namespace, digest),
      replicateToRemote: (namespace, digest, remote) =>
        originCluster.replicateToRemote(namespace, digest, remote),
    },
    remote: (name) => {
      let client = remoteClients.get(name);
      if (!client) {
        const hosts = hostLists.lists[`remote:${name}`];
        if (!hosts) throw new Error(`remote ${name} is not in remotes`);
        client = new TagClusterClient({ ...deps.tagClientOptions, hosts });
        remoteClients.set(name, client);
      }
      return client;
    },
    remoteOrigin: deps.remoteOrigin ?? ((addr) => new OriginClusterClient({ hosts: [addr] })),
    srcCluster: config.cluster.name ?? config.cluster.self ?? `${config.listen.host}:${port}`,
    logger,
    metrics: ctx.tracing.roleMetrics,
  });
  replication.start();
  logger.info("build-index listening", {
    host: config.listen.host,
    port,
    neighbours: service.neighbours,
    write_through: config.tagStore.writeThrough,
    remotes: Object.keys(config.remotes),
  });
  let stopped = false;
  return {
    port,
    service,
    writeback,
    replication,
    async stop() {
      if (stopped) return;
      stopped = true;
      hostLists.stop();
      await server.shutdown();
      await stopQueues();
      await calls.close();
    },
  };
}

/** The build-index {@linkcode RoleDefinition}. */
export const buildIndexRole = {
  configSchema: buildIndexConfigSchema,
  parseConfig: parseBuildIndexConfig,
  start: (config, ctx) => startBuildIndex(config, ctx),
} satisfies RoleDefinition<BuildIndexConfig>;
