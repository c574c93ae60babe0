/**
 * The `origin` role: stores blobs content-addressed on disk, spreads them over a rendezvous hash
 * ring of origins, writes them back to a storage backend through a persisted queue, and generates
 * their metainfo; abandoned upload sessions expire (`upload_cleanup.ts`). See `docs/origin.md` for
 * configuration, routes and spans.
 *
 * Laid out like every role (see `roles/role.ts`): `config.ts` parses the config, `server.ts` builds
 * the router from the handler modules (`blobs.ts`, `uploads.ts`, `metainfo.ts`, `health.ts`), and
 * this module starts and stops it: {@linkcode startOrigin} and {@linkcode originRole} for
 * `main.ts`.
 *
 * ```ts
 * import { originRole } from "./roles/origin/mod.ts";
 * const config = originRole.parseConfig(raw, flags, { configPath: "config/origin.yaml" });
 * const running = await originRole.start(config, { logger, tracing, flags });
 * await running.stop();
 * ```
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import { type HostList, openHostList } from "../../cluster/hostlist.ts";
import { ActiveHealthChecker } from "../../cluster/healthcheck.ts";
import { HashRing } from "../../cluster/hashring.ts";
import type { RawMap } from "../../common/config.ts";
import { BackendManager } from "../../storage/backend/backend.ts";
import type { HttpHandler } from "../../http/serve.ts";
import { BlobStore } from "../../storage/blob_store.ts";
import { registerStoreMetrics } from "../../storage/store_metrics.ts";
import { FAILURE_LOG_INTERVAL_MS, WriteBackManager } from "../../storage/writeback.ts";
import { registerWriteBackMetrics } from "../../storage/writeback_metrics.ts";
import { rateLimited } from "../../common/log.ts";
import { observeBackends } from "../../storage/backend/transport.ts";
import { startUploadSweeps } from "../../storage/backend/upload_sweep.ts";
import { tracedFetch } from "../../tracing/mod.ts";
import { startRoleCalls } from "../calls.ts";
import { serveRole } from "../listen.ts";
import type { ParseOptions, RoleContext, RoleDefinition, RunningRole } from "../role.ts";
import { type OriginSeeder, startOriginSeeder } from "../../p2p/origin_seeder.ts";
import { type OriginConfig, originConfigSchema, parseOriginConfig } from "./config.ts";
import { storeMetaInfo } from "./metainfo.ts";
import { OriginMetrics } from "./metrics.ts";
import { BlobRefresher } from "./refresh.ts";
import { Replicator } from "./replication.ts";
import { createOriginRouter } from "./server.ts";
import { OriginUploadSessions } from "./upload_cleanup.ts";
import { createWriteBackExecutor } from "./writeback.ts";

export { type OriginConfig, parseOriginConfig } from "./config.ts";

/** A started origin. */
export interface RunningOrigin extends RunningRole {
  /** `host:port` the blob server listens on. */
  readonly addr: string;
  /** This origin's label in the ring. */
  readonly advertise: string;
}

/**
 * Starts an origin: opens the store and the write-back database, binds the blob server, joins the
 * ring and starts the write-back queue and the health checks of the other ring members.
 * @throws {Error} when this origin's label is not a ring member (as upstream refuses to start)
 */
export async function startOrigin(config: OriginConfig, ctx: RoleContext): Promise<RunningOrigin> {
  const logger = ctx.logger;
  await checkMustReady(config.backends);
  const store = await BlobStore.open({ root: config.storageRoot });
  registerStoreMetrics(ctx.tracing.roleMetrics, store);
  const backends = new BackendManager(config.backends);
  observeBackends(
    backends.backends,
    ctx.tracing.roleMetrics,
    (msg, fields) => logger.warn(msg, fields),
  );
  // Requests that arrive before the ring is known (port 0 only) get a clear "starting" answer.
  let handle: HttpHandler = () =>
    Promise.resolve(new Response("origin is starting", { status: 503 }));
  const calls = await startRoleCalls(config.tls, ctx);
  const http = await serveRole({
    name: "server",
    listen: config.listen,
    limits: config.http,
    tls: config.tls.server,
    handler: (req, info) => handle(req, info),
    onStartFailed: () => calls.close(),
  }, ctx);
  let seeder: OriginSeeder | undefined;
  let members: HostList | undefined;
  try {
    const addr = `${config.listen.host}:${http.addr.port}`;
    const self = config.advertise ?? addr;
    members = await openHostList(config.hashring.hosts ?? { kind: "static", hosts: [self] }, {
      name: "hashring",
      logger: logger.with({ hostlist: "hashring" }),
      metrics: ctx.tracing.roleMetrics,
      onChange: (hosts) => {
        ring.setHosts(hosts);
        if (!hosts.includes(self)) logger.warn("this origin left the ring", { self, hosts });
      },
    });
    const hosts = members.hosts;
    if (!hosts.includes(self)) {
      throw new Error(`this origin (${self}) is not in hashring.hosts (${hosts.join(", ")})`);
    }
    const ringMembers = members;
    const health = new ActiveHealthChecker({
      hosts: () => ringMembers.hosts.filter((h) => h !== self),
      intervalMs: config.hashring.refreshIntervalMs,
      fetch: calls.plainFetch,
      onChange: (host, healthy) => logger.warn("ring member health changed", { host, healthy }),
    });
    const ring = new HashRing(hosts, {
      maxReplica: config.hashring.maxReplica,
      isHealthy: (host) => host === self || health.isHealthy(host),
    });
    // A backend outage fails every queued blob on every retry: one line per interval, with the count.
    const writeBackFailed = rateLimited(
      FAILURE_LOG_INTERVAL_MS,
      (msg, fields) => logger.warn(msg, fields),
    );
    const writeback = new WriteBackManager({
      dbPath: config.writeback.db,
      executor: createWriteBackExecutor({ store, backends, logger }),
      retryIntervalMs: config.writeback.retryIntervalMs,
      maxRetryIntervalMs: config.writeback.maxRetryIntervalMs,
      pollIntervalMs: config.writeback.pollIntervalMs,
      workers: config.writeback.workers,
      onError: (error, task) =>
        task
          ? writeBackFailed("write-back failed", {
            namespace: task.namespace,
            name: task.name,
            error,
          })
          : logger.warn("write-back bookkeeping failed", { error }),
    });
    registerWriteBackMetrics(ctx.tracing.roleMetrics, writeback);
    const metrics = new OriginMetrics(ctx.tracing.roleMetrics);
    const replicator = new Replicator({
      metrics,
      store,
      ring,
      self,
      duplicateWriteBackStaggerMs: config.duplicateWriteBackStaggerMs,
      client: { fetch: calls.fetch },
      logger,
    });
    const uploadSessions = new OriginUploadSessions({
      store,
      ttiMs: config.uploadCleanup.ttiMs,
      intervalMs: config.uploadCleanup.intervalMs,
      maxSessions: config.maxUploadSessions,
      metrics: ctx.tracing.roleMetrics,
      logger,
    });
    const pieceLengths = config.pieceLengths;
    // A blob fetched from the backend gets its metainfo, then goes to the other replicas.
    const refresher = new BlobRefresher({
      metrics,
      store,
      backends,
      logger,
      onFetched: async (namespace, digest) => {
        await storeMetaInfo({ store, pieceLengths }, digest);
        await replicator.transfer(namespace, digest);
      },
    });
    const router = createOriginRouter({
      tracing: ctx.tracing,
      store,
      backends,
      mustReady: config.backends.filter((b) => b.mustReady).map((b) => b.backend),
      ring,
      writeback,
      replicator,
      refresher,
      uploadSessions,
      metrics,
      pieceLengths,
      logger,
      peerContextJson: () => seeder!.peerContextJson(),
      onDelete: (digest) => seeder!.scheduler.evict(digest),
    });
    // Seeds every cached blob over P2P; a handshake for a missing blob starts a backend fetch.
    seeder = startOriginSeeder({
      store,
      listen: { hostname: config.peer.host, port: config.peer.port },
      ip: config.peer.ip,
      zone: config.peer.zone,
      cluster: config.peer.cluster,
      logger,
      metrics: ctx.tracing.roleMetrics,
      onMissingTorrent: (namespace, digest) =>
        void refresher.refresh(namespace, digest).catch(() => {}),
    });
    handle = (req, info) => router.handle(req, info);
    writeback.start();
    // Multipart uploads no write-back task will resume (S3) are aborted at start and periodically.
    const uploadSweeps = startUploadSweeps({
      backends: backends.backends,
      pendingNames: () => writeback.pending().map((task) => task.name),
      metrics: ctx.tracing.roleMetrics,
      logger,
    });
    health.start();
    uploadSessions.start();
    logger.info("origin serving", {
      addr,
      advertise: self,
      ring: hosts,
      peer: `${seeder.peerContext.ip}:${seeder.peerContext.port}`,
    });
    let stopping: Promise<void> | undefined;
    return {
      addr,
      advertise: self,
      stop() {
        stopping ??= (async () => {
          ringMembers.stop();
          await http.shutdown();
          await uploadSessions.stop();
          await health.stop();
          await refresher.drain();
          await uploadSweeps.stop();
          await writeback.stop();
          await seeder!.close();
          await calls.close();
        })();
        return stopping;
      },
    };
  } catch (error) {
    members?.stop();
    await http.shutdown();
    await seeder?.close();
    await calls.close();
    throw error;
  }
}

/**
 * Probes every `must_ready` backend once (its requests retry transient failures): an origin whose
 * required backend refuses it (wrong credentials, missing bucket) does not start.
 * @throws {Error} naming the first backend entry that is not ready
 */
async function checkMustReady(entries: OriginConfig["backends"]): Promise<void> {
  for (const [i, entry] of entries.entries()) {
    if (!entry.mustReady) continue;
    try {
      await entry.backend.ready();
    } catch (error) {
      const where = entry.backend.bucket ? ` ${entry.backend.bucket}` : "";
      throw new Error(
        `backends[${i}] (namespace ${entry.namespace}, ${entry.backend.type}${where}) is not ready: ` +
          (error as Error).message,
        { cause: error },
      );
    }
  }
}

/** The origin role for `main.ts`. */
export const originRole = {
  configSchema: originConfigSchema,
  parseConfig(raw: RawMap, flags: Record<string, string>, options: ParseOptions = {}) {
    return parseOriginConfig(raw, flags, {
      baseDir: options.configPath ? dirname(resolve(options.configPath)) : undefined,
      fetch: tracedFetch,
    });
  },
  start: (config, ctx) => startOrigin(config, ctx),
} satisfies RoleDefinition<OriginConfig>;
