/**
 * Test helpers for the scheduler and the agent role: a minimal in-process tracker stand-in (the
 * announce and metainfo routes over real HTTP, with upstream's completeness handout order),
 * origin seeders over temp-dir blob stores, and agent schedulers wired to the stand-in.
 *
 * The stand-in exists because the tracker role is written in parallel; it speaks the wire format
 * through the announce client's own codec, so the scheduler talks real HTTP and real P2P.
 *
 * @module
 */

import { AnnounceClient } from "../cluster/announce_client.ts";
import { encodeAnnounceResponse, parseAnnounceRequest, type PeerInfo } from "../wire/announce.ts";
import { BlobStore } from "../storage/blob_store.ts";
import { type Digest, digestOfBytes, parseDigest } from "../storage/digest.ts";
import { generateMetaInfo, type MetaInfo } from "../storage/metainfo.ts";
import { METAINFO_KEY, readMetaInfo } from "./blob_torrent.ts";
import { type OriginSeeder, type OriginSeederOptions, startOriginSeeder } from "./origin_seeder.ts";
import { addrHashPeerId, Scheduler, type SchedulerOptions } from "./scheduler.ts";

/** One announce the stand-in received. */
export interface SeenAnnounce {
  /** Info hash hex. */
  infoHash: string;
  /** The announcing peer. */
  peer: PeerInfo;
}

/** A tracker stand-in on 127.0.0.1. */
export class TestTracker {
  /** `host:port`. */
  readonly addr: string;
  /** Every announce, in arrival order. */
  readonly announces: SeenAnnounce[] = [];
  /** Metainfo requests served (any status). */
  metainfoRequests = 0;
  /** Origins handed out and asked for metainfo. */
  origins: TestOrigin[] = [];
  /** Interval sent to agents, ms. */
  intervalMs = 100;
  /** Overrides the handout: return the peers for an announce (the default is upstream-like). */
  handout?: (infoHash: string, from: PeerInfo, agents: PeerInfo[]) => PeerInfo[];
  readonly #peers = new Map<string, Map<string, PeerInfo>>();
  readonly #server: Deno.HttpServer<Deno.NetAddr>;

  /** Starts the stand-in on an ephemeral port. */
  constructor() {
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (req) => this.#handle(req),
    );
    this.addr = `127.0.0.1:${this.#server.addr.port}`;
  }

  /** Stops serving. */
  async close(): Promise<void> {
    await this.#server.shutdown();
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const announce = /^\/announce\/([0-9a-f]{40})$/.exec(url.pathname);
    if (req.method === "POST" && announce) {
      const body = parseAnnounceRequest(await req.json());
      const infoHash = announce[1];
      this.announces.push({ infoHash, peer: body.peer });
      let group = this.#peers.get(infoHash);
      if (!group) this.#peers.set(infoHash, group = new Map());
      group.set(body.peer.peerId, body.peer);
      if (body.peer.complete) return new Response(encodeAnnounceResponse(null, this.intervalMs));
      const agents = [...group.values()];
      const peers = this.handout ? this.handout(infoHash, body.peer, agents) : [
        ...agents.filter((p) => p.complete),
        ...this.origins.map((o) => o.peerInfo),
        ...agents.filter((p) => !p.complete),
      ];
      if (peers.length === 0) return new Response("no peers available", { status: 500 });
      return new Response(encodeAnnounceResponse(peers, this.intervalMs));
    }
    const meta = /^\/namespace\/[^/]+\/blobs\/([^/]+)\/metainfo$/.exec(url.pathname);
    if (req.method === "GET" && meta) {
      this.metainfoRequests++;
      const digest = parseDigest(decodeURIComponent(meta[1]));
      for (const origin of this.origins) {
        const mi = await readMetaInfo(origin.store, digest);
        if (mi) {
          return new Response(mi.serialize(), { headers: { "content-type": "application/json" } });
        }
      }
      return new Response(null, { status: 404 });
    }
    return new Response(null, { status: 404 });
  }
}

/** An origin seeder over a temp-dir store. */
export interface TestOrigin {
  /** The seeder. */
  seeder: OriginSeeder;
  /** Its store. */
  store: BlobStore;
  /** How the tracker hands it out. */
  peerInfo: PeerInfo;
  /** Stops it and deletes its directory. */
  close(): Promise<void>;
}

/** Puts `data` with its metainfo (pieces of `pieceLength`) into `store`. */
export async function addBlob(
  store: BlobStore,
  data: Uint8Array,
  pieceLength: number,
): Promise<MetaInfo> {
  const digest = await digestOfBytes(data);
  const mi = await generateMetaInfo(
    digest,
    { stream: ReadableStream.from([data]), size: data.length },
    pieceLength,
  );
  await store.putBlob(digest, data);
  await store.setMetadata(digest, METAINFO_KEY, new TextEncoder().encode(mi.serialize()));
  return mi;
}

/** Starts an origin seeder on 127.0.0.1 over a fresh store. */
export async function startTestOrigin(
  options: Partial<OriginSeederOptions> = {},
): Promise<TestOrigin> {
  const root = await Deno.makeTempDir({ prefix: "sched-origin-" });
  const store = await BlobStore.open({ root });
  const seeder = startOriginSeeder({
    ...options,
    store,
    listen: { hostname: "127.0.0.1", port: 0 },
  });
  const ctx = seeder.peerContext;
  let closed = false;
  return {
    seeder,
    store,
    peerInfo: { peerId: ctx.peerId, ip: ctx.ip, port: ctx.port, origin: true, complete: true },
    async close() {
      if (closed) return;
      closed = true;
      await seeder.close();
      await Deno.remove(root, { recursive: true });
    },
  };
}

/** An agent scheduler over a temp-dir store. */
export interface TestAgent {
  /** The scheduler. */
  scheduler: Scheduler;
  /** Its store. */
  store: BlobStore;
  /** Stops it and deletes its directory. */
  close(): Promise<void>;
}

/** Starts an agent scheduler announcing to `tracker`. */
export async function startTestAgent(
  tracker: TestTracker,
  options: Partial<SchedulerOptions> = {},
): Promise<TestAgent> {
  const root = await Deno.makeTempDir({ prefix: "sched-agent-" });
  const store = await BlobStore.open({ root });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  const scheduler = new Scheduler({
    store,
    listener,
    peerId: addrHashPeerId("127.0.0.1", port),
    peer: { ip: "127.0.0.1", port },
    announcer: new AnnounceClient({ trackers: [tracker.addr], poll: { initialMs: 20 } }),
    announceIntervalMs: 100,
    ...options,
  });
  let closed = false;
  return {
    scheduler,
    store,
    async close() {
      if (closed) return;
      closed = true;
      await scheduler.close();
      await Deno.remove(root, { recursive: true });
    },
  };
}

/** The cached bytes of `digest`. */
export async function readBlob(store: BlobStore, digest: Digest): Promise<Uint8Array> {
  const blob = await store.open(digest);
  return new Uint8Array(await new Response(blob.stream).arrayBuffer());
}
