/**
 * Seeding on origins (kraken-wire.md §5 item 8): the {@linkcode Scheduler} with announcing
 * disabled. The origin never dials and never announces; the tracker finds it through
 * `GET /internal/peercontext` on the origin's blob server, whose body
 * {@linkcode OriginSeeder.peerContextJson} produces. Every cached blob with stored metainfo is
 * served to agents that connect (loaded on the first handshake for it); a handshake for a blob the
 * origin lacks is refused after telling `onMissingTorrent`, which should start a backend fetch.
 *
 * @example
 * ```ts
 * import { startOriginSeeder } from "./origin_seeder.ts";
 * declare const store: import("../storage/blob_store.ts").BlobStore;
 * const seeder = startOriginSeeder({ store, listen: { hostname: "0.0.0.0", port: 15001 }, ip: "10.0.0.7" });
 * seeder.peerContextJson(); // {"ip":"10.0.0.7","port":15001,"peer_id":[...],"zone":"","cluster":"","origin":true}\n
 * await seeder.close();
 * ```
 *
 * @module
 */

import type { Logger } from "../common/log.ts";
import { encodePeerContext, type PeerContext } from "../wire/peercontext.ts";
import type { BlobStore } from "../storage/blob_store.ts";
import type { Digest } from "../storage/digest.ts";
import type { MetricsRegistry } from "../tracing/mod.ts";
import { addrHashPeerId, Scheduler } from "./scheduler.ts";

/** Options of {@linkcode startOriginSeeder}. Durations in milliseconds. */
export interface OriginSeederOptions {
  /** The origin's blob store (blobs plus their `metainfo` metadata). */
  store: BlobStore;
  /** Where the peer port listens (`hostname` default `0.0.0.0`; port 0 picks a free one). */
  listen: { hostname?: string; port: number };
  /** The IP peers reach this origin at. Default: `listen.hostname`, or 127.0.0.1 for 0.0.0.0. */
  ip?: string;
  /** Peer id, 40 hex. Default upstream's `addr_hash`: SHA-1 of `"<ip>:<port>"`. */
  peerId?: string;
  /** PeerContext `zone`. Default empty. */
  zone?: string;
  /** PeerContext `cluster`. Default empty. */
  cluster?: string;
  /** Told about handshakes for blobs not in the cache (start a backend fetch). */
  onMissingTorrent?: (namespace: string, digest: Digest) => void;
  /** Drop an idle seed from memory after this long. Default 5 min. */
  seederTtiMs?: number;
  /** Handshake step timeout. Default 5 s. */
  handshakeTimeoutMs?: number;
  /** Connections per torrent. Default 10. */
  maxOpenConn?: number;
  /** Logger. Default: silent. */
  logger?: Logger;
  /** Where the scheduler's series go (the role's `roleMetrics`). */
  metrics?: MetricsRegistry;
}

/** A running origin seeder. */
export interface OriginSeeder {
  /** The scheduler underneath. */
  readonly scheduler: Scheduler;
  /** The origin's P2P identity. */
  readonly peerContext: PeerContext;
  /**
   * Body of `GET /internal/peercontext`: the PeerContext JSON with the peer id as 20 integers,
   * keys in Go's order, trailing newline (serve with `Content-Type: application/json`).
   */
  peerContextJson(): string;
  /** Stops accepting and closes every connection. */
  close(): Promise<void>;
}

/** Binds the peer port and starts serving cached blobs to agents. */
export function startOriginSeeder(options: OriginSeederOptions): OriginSeeder {
  const hostname = options.listen.hostname ?? "0.0.0.0";
  const listener = Deno.listen({ hostname, port: options.listen.port });
  const port = (listener.addr as Deno.NetAddr).port;
  const ip = options.ip ?? (hostname === "0.0.0.0" || hostname === "::" ? "127.0.0.1" : hostname);
  let scheduler: Scheduler;
  try {
    scheduler = new Scheduler({
      store: options.store,
      peerId: options.peerId ?? addrHashPeerId(ip, port),
      listener,
      onMissingTorrent: options.onMissingTorrent,
      seederTtiMs: options.seederTtiMs,
      handshakeTimeoutMs: options.handshakeTimeoutMs,
      maxOpenConn: options.maxOpenConn,
      logger: options.logger,
      metrics: options.metrics,
    });
  } catch (err) {
    listener.close();
    throw err;
  }
  const peerContext: PeerContext = {
    ip,
    port,
    peerId: scheduler.peerId,
    zone: options.zone ?? "",
    cluster: options.cluster ?? "",
    origin: true,
  };
  return {
    scheduler,
    peerContext,
    peerContextJson: () => encodePeerContext(peerContext),
    close: () => scheduler.close(),
  };
}
