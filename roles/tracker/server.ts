/**
 * The tracker HTTP server (kraken-wire.md §1.3, §2): announces and the metainfo proxy.
 *
 * | Method | Route | Answer |
 * |---|---|---|
 * | GET | `/health` | 200 `OK\n` |
 * | GET | `/readiness` | a random ring location of a per-process digest answers `/readiness`: 200 `OK\n` or 503 |
 * | GET | `/announce` | announce v1: JSON body carried by the GET, info hash from the body |
 * | POST | `/announce/{infohash}` | announce v2 (agents): the path's info hash wins over the body's |
 * | GET | `/namespace/{namespace}/blobs/{digest}/metainfo` | metainfo from the origin cluster; an origin's non-200 (202 included) is copied with body `origin: <body>` |
 *
 * An announce records the peer, then — unless the peer is complete — hands out up to
 * `handout.max_peers` random peers from the peer store plus the blob's origins, sorted by the
 * priority policy. The announcing peer may be in its own handout; clients skip their own ID.
 * Malformed announce JSON or a bad info hash is a 400 with a message (upstream answers 500).
 *
 * Spans: the router's server span, then `tracker.announce` › `peerstore.update_peer`,
 * `peerstore.get_peers`, `originstore.get_origins` (and its HTTP calls), `policy.sort_peers`.
 * The metainfo proxy's origin calls are client spans of the same trace.
 *
 * @module
 */

import type { Logger } from "../../common/log.ts";
import {
  AnnounceWireError,
  encodeAnnounceResponse,
  parseAnnounceRequest,
  type ParsedAnnounceRequest,
  type PeerInfo,
} from "../../cluster/announce_client.ts";
import { AcceptedError, OriginClusterClient } from "../../cluster/blob_client.ts";
import { type Ctx, HttpError, Router } from "../../http/router.ts";
import { HttpStatusError } from "../../http/status_error.ts";
import { type Digest, DigestError, digestOfBytes, parseDigest } from "../../storage/digest.ts";
import { InfoHash, type MetaInfo, MetaInfoError } from "../../storage/metainfo.ts";
import {
  metricsHandler,
  setAttributes,
  tracedFetch,
  tracingMiddleware,
  withSpan,
} from "../../tracing/mod.ts";
import type { TrackerConfig } from "./config.ts";
import { getRequestBody, serveHttp } from "./http_server.ts";
import { HttpOriginStore, type OriginStore } from "./originstore.ts";
import { MemoryPeerStore, type PeerStore } from "./peerstore.ts";
import { createPriorityPolicy, type PriorityPolicy } from "./policy.ts";
import { RedisClient } from "./redis.ts";
import { RedisPeerStore } from "./redis_peerstore.ts";

/** Largest announce body read. */
const MAX_ANNOUNCE_BODY_BYTES = 64 * 1024;

/** What the metainfo proxy and readiness need from the origin cluster (`OriginClusterClient`). */
export interface OriginCluster {
  /** Ring locations of a digest. */
  locations(digest: Digest): Promise<string[]>;
  /** The client of one origin. */
  client(addr: string): { getMetaInfo(namespace: string, digest: Digest): Promise<MetaInfo> };
}

/** Options of {@linkcode createTrackerRouter}. */
export interface TrackerRouterOptions {
  /** Announced peers. */
  peerStore: PeerStore;
  /** Origins of a blob. */
  originStore: OriginStore;
  /** The origin cluster for metainfo and readiness. */
  originCluster: OriginCluster;
  /** Handout order. */
  policy: PriorityPolicy;
  /** Interval sent to agents, ms. */
  announceIntervalMs: number;
  /** Peers taken from the peer store per announce. */
  maxPeers: number;
  /** Logger. */
  logger: Logger;
  /** The digest whose ring locations readiness probes (upstream: random, fixed per process). */
  readinessDigest: Digest;
}

/** Reads a request body as text, refusing bodies over `limit` bytes. */
async function readText(req: Request, limit: number): Promise<string> {
  const body = getRequestBody(req);
  if (body) return new TextDecoder().decode(body);
  if (!req.body) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of req.body) {
    size += chunk.length;
    if (size > limit) throw new HttpError(413, `request body larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  return new TextDecoder().decode(await new Blob(chunks as BlobPart[]).bytes());
}

/** Parses an announce body into a request, with 400 for anything malformed. */
async function announceRequest(ctx: Ctx): Promise<ParsedAnnounceRequest> {
  const text = await readText(ctx.req, MAX_ANNOUNCE_BODY_BYTES);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new HttpError(400, `json decode request: ${(error as Error).message}`);
  }
  try {
    return parseAnnounceRequest(json);
  } catch (error) {
    if (error instanceof AnnounceWireError) {
      throw new HttpError(400, `json decode request: ${error.message}`);
    }
    throw error;
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Counts handout peers by upstream's priority labels. */
function seederCounts(policy: PriorityPolicy, peers: PeerInfo[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const peer of peers) {
    const label = policy.priority(peer).label;
    counts[label] = (counts[label] ?? 0) + 1;
  }
  return counts;
}

/** The tracker routes with the tracing middleware. */
export function createTrackerRouter(options: TrackerRouterOptions): Router {
  const { peerStore, originStore, originCluster, policy, logger } = options;
  const router = new Router().use(tracingMiddleware());
  const ok = () => new Response("OK\n");

  const announce = (
    digest: Digest,
    infoHash: InfoHash,
    peer: PeerInfo,
  ): Promise<PeerInfo[] | null> =>
    withSpan("tracker.announce", {
      infohash: infoHash.hex,
      digest: digest.toString(),
      complete: peer.complete,
      handout_policy: policy.name,
    }, async () => {
      try {
        await withSpan("peerstore.update_peer", {
          store_type: peerStore.type,
          complete: peer.complete,
        }, () => peerStore.updatePeer(infoHash, peer));
      } catch (error) {
        // Upstream only logs this: the handout can still help the peer.
        logger.error("error updating peer", {
          infohash: infoHash.hex,
          peer_id: peer.peerId,
          error,
        });
      }
      if (peer.complete) {
        // A complete peer needs nobody; it announced to be found.
        setAttributes({ peer_count: 0, origin_count: 0 });
        return null;
      }
      const [fromStore, fromOrigins] = await Promise.allSettled([
        withSpan("peerstore.get_peers", {
          store_type: peerStore.type,
          limit: options.maxPeers,
        }, async () => {
          const peers = await peerStore.getPeers(infoHash, options.maxPeers);
          setAttributes({ count: peers.length });
          return peers;
        }),
        originStore.getOrigins(digest),
      ]);
      const errors: string[] = [];
      const peers = fromStore.status === "fulfilled" ? fromStore.value : [];
      if (fromStore.status === "rejected") errors.push(`peer store: ${message(fromStore.reason)}`);
      const origins = fromOrigins.status === "fulfilled" ? fromOrigins.value : [];
      if (fromOrigins.status === "rejected") {
        errors.push(`origin store: ${message(fromOrigins.reason)}`);
      }
      setAttributes({ peer_count: peers.length, origin_count: origins.length });
      const all = [...peers, ...origins];
      if (all.length === 0) throw new HttpError(500, `no peers available: ${errors.join(", ")}`);
      return withSpan("policy.sort_peers", {
        handout_policy: policy.name,
        count: all.length,
      }, () => {
        const sorted = policy.sortPeers(all);
        const counts = seederCounts(policy, sorted);
        for (const [label, n] of Object.entries(counts)) setAttributes({ [`${label}_count`]: n });
        return sorted;
      });
    });

  const respond = (peers: PeerInfo[] | null) =>
    // Upstream writes JSON without a Content-Type; Go then sniffs text/plain.
    new Response(encodeAnnounceResponse(peers, options.announceIntervalMs), {
      headers: { "content-type": "text/plain; charset=utf-8" },
    });

  router.get("/health", ok);
  router.get("/metrics", metricsHandler);

  router.get("/readiness", async () => {
    let addr: string;
    try {
      const locations = await originCluster.locations(options.readinessDigest);
      addr = locations[Math.floor(Math.random() * locations.length)];
    } catch (error) {
      throw new HttpError(503, `not ready to serve traffic: resolve clients: ${message(error)}`);
    }
    try {
      const res = await tracedFetch(`http://${addr}/readiness`, {
        route: "/readiness",
        signal: AbortSignal.timeout(5_000),
      });
      const text = await res.text();
      if (res.status === 200) return ok();
      throw new HttpStatusError("GET", `http://${addr}/readiness`, res.status, text);
    } catch (error) {
      throw new HttpError(503, `not ready to serve traffic: ${message(error)}`);
    }
  });

  router.get("/announce", async (ctx) => {
    const req = await announceRequest(ctx);
    if (!req.infoHash) throw new HttpError(400, "json decode request: info_hash: is required");
    return respond(await announce(req.digest, req.infoHash, req.peer));
  });

  router.post("/announce/{infohash}", async (ctx) => {
    let infoHash: InfoHash;
    try {
      infoHash = InfoHash.fromHex(ctx.params.infohash);
    } catch (error) {
      if (error instanceof MetaInfoError) {
        throw new HttpError(400, `parse infohash: ${error.message}`);
      }
      throw error;
    }
    const req = await announceRequest(ctx);
    return respond(await announce(req.digest, infoHash, req.peer));
  });

  router.get("/namespace/{namespace}/blobs/{digest}/metainfo", async (ctx) => {
    let digest: Digest;
    try {
      digest = parseDigest(ctx.params.digest);
    } catch (error) {
      if (error instanceof DigestError) throw new HttpError(400, `parse digest: ${error.message}`);
      throw error;
    }
    const namespace = ctx.params.namespace;
    let locations: string[];
    try {
      locations = await originCluster.locations(digest);
    } catch (error) {
      throw new HttpError(500, `resolve clients: ${message(error)}`);
    }
    // Upstream's order: the next location after any failure, except 202 (the first origin is
    // already fetching the blob from its backend; asking another would start a second fetch).
    let last: unknown = new Error("no origin locations");
    for (const addr of locations) {
      try {
        const mi = await originCluster.client(addr).getMetaInfo(namespace, digest);
        return new Response(mi.serialize(), { headers: { "content-type": "application/json" } });
      } catch (error) {
        last = error;
        if (error instanceof AcceptedError) break;
      }
    }
    if (last instanceof HttpStatusError) throw new HttpError(last.status, `origin: ${last.body}`);
    throw last;
  });

  return router;
}

/** Dependencies {@linkcode startTrackerServer} builds from the config unless given. */
export interface TrackerDeps {
  /** Logger. */
  logger: Logger;
  /** Peer store (default: from `config.peerstore`). */
  peerStore?: PeerStore;
  /** Origin cluster client (default: over `config.origins.hosts`). */
  originCluster?: OriginClusterClient;
  /** Origin store (default: over the origin cluster with `config.originstore`). */
  originStore?: OriginStore;
}

/** A running tracker. */
export interface TrackerServer {
  /** The bound port. */
  readonly port: number;
  /** The peer store in use. */
  readonly peerStore: PeerStore;
  /** Stops serving and closes the peer store. */
  stop(): Promise<void>;
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

/** Starts the tracker. */
export async function startTrackerServer(
  config: TrackerConfig,
  deps: TrackerDeps,
): Promise<TrackerServer> {
  const { logger } = deps;
  const peerStore = deps.peerStore ?? await createPeerStore(config.peerstore);
  const originCluster = deps.originCluster ??
    new OriginClusterClient({ hosts: config.origins.hosts });
  const originStore = deps.originStore ?? new HttpOriginStore({
    cluster: originCluster,
    ...config.originstore,
    onUnavailable: (addr, error) => logger.warn("origin unavailable", { origin: addr, error }),
  });
  const router = createTrackerRouter({
    peerStore,
    originStore,
    originCluster,
    policy: createPriorityPolicy(config.handout.policy),
    announceIntervalMs: config.announceIntervalMs,
    maxPeers: config.handout.maxPeers,
    logger,
    readinessDigest: await digestOfBytes(crypto.getRandomValues(new Uint8Array(32))),
  });
  let server;
  try {
    server = await serveHttp({
      hostname: config.listen.host,
      port: config.listen.port,
      handler: (req, remote) => router.handle(req, remote),
    });
  } catch (error) {
    await peerStore.close();
    throw error;
  }
  logger.info("tracker listening", {
    host: config.listen.host,
    port: server.addr.port,
    peerstore: peerStore.type,
    handout_policy: config.handout.policy,
    origins: config.origins.hosts,
  });
  let stopped = false;
  return {
    port: server.addr.port,
    peerStore,
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.shutdown();
      await peerStore.close();
    },
  };
}
