/**
 * Starts the proxy: opens its blob store and session files, serves the registry API plus
 * `/health` and `/readiness` on one listener, and aborts upload sessions left idle past
 * `upload.ttl` (ending their `proxy.upload` spans as `expired`).
 *
 * @module
 */

import type { Logger } from "../../common/log.ts";
import { HttpError } from "../../http/router.ts";
import { BlobStore } from "../../storage/blob_store.ts";
import { metricsHandler, tracedFetch } from "../../tracing/mod.ts";
import type { ProxyConfig } from "./config.ts";
import { createRegistryRouter, type ProxyOrigin, type ProxyTags } from "./registry.ts";
import { UploadSessions } from "./upload_sessions.ts";

/** Dependencies {@linkcode startProxyServer} does not build itself. */
export interface ProxyDeps {
  /** The origin cluster client. */
  origin: ProxyOrigin;
  /** The build-index cluster client. */
  tags: ProxyTags;
  /** Logger. */
  logger: Logger;
}

/** A running proxy. */
export interface ProxyServer {
  /** The listen port actually bound. */
  readonly port: number;
  /** The proxy's blob store (staged uploads and cache). */
  readonly store: BlobStore;
  /** Upload session bookkeeping. */
  readonly sessions: UploadSessions;
  /** Aborts sessions idle past the TTL once; returns how many were ended. */
  prune(): Promise<number>;
  /** Stops serving and the prune timer; open sessions stay on disk for a restart. */
  stop(): Promise<void>;
}

/** True when any of `hosts` answers `GET <path>` with 200 within 5 s. */
async function anyReady(hosts: string[], path: string): Promise<string | null> {
  const reasons: string[] = [];
  for (const host of hosts) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error("timed out after 5000 ms")), 5000);
    try {
      const res = await tracedFetch(`http://${host}${path}`, { route: path, signal: abort.signal });
      await res.body?.cancel();
      if (res.status === 200) return null;
      reasons.push(`${host}: ${res.status}`);
    } catch (error) {
      reasons.push(`${host}: ${(error as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }
  return reasons.join("; ");
}

/** Opens the proxy's storage and starts serving. */
export async function startProxyServer(config: ProxyConfig, deps: ProxyDeps): Promise<ProxyServer> {
  const { logger } = deps;
  const store = await BlobStore.open({ root: `${config.storageRoot}/blobs` });
  const sessions = await UploadSessions.open({ root: `${config.storageRoot}/sessions` });
  const router = createRegistryRouter({
    store,
    sessions,
    origin: deps.origin,
    tags: deps.tags,
    logger,
  });
  router.get("/health", () => new Response("OK\n"));
  router.get("/metrics", metricsHandler);
  router.get("/readiness", async () => {
    const originProblem = await anyReady(config.origin.hosts, "/readiness");
    if (originProblem !== null) {
      throw new HttpError(503, `not ready to serve traffic: origin cluster: ${originProblem}`);
    }
    const indexProblem = await anyReady(config.buildIndex.hosts, "/health");
    if (indexProblem !== null) {
      throw new HttpError(503, `not ready to serve traffic: build-index: ${indexProblem}`);
    }
    return new Response("OK\n");
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

  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve(
      { hostname: config.listen.host, port: config.listen.port, onListen: () => {} },
      router.handler(),
    );
  } catch (error) {
    clearInterval(timer);
    throw error;
  }
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
      await server.shutdown();
      await pruning;
      sessions.closeSpans();
    },
  };
}
