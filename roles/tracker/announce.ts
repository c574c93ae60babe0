/**
 * The tracker's announce handler (kraken-wire.md §2): `GET /announce` (v1, info hash in the body)
 * and `POST /announce/{infohash}` (v2, agents; the path's info hash wins over the body's).
 *
 * An announce records the peer, then — unless the peer is complete — hands out up to `maxPeers`
 * random peers from the peer store plus the blob's origins, sorted by the priority policy. The
 * announcing peer may be in its own handout; clients skip their own ID. Malformed announce JSON
 * or a bad info hash is a 400 with a message (upstream answers 500).
 *
 * Spans: `tracker.announce` › `peerstore.update_peer`, `peerstore.get_peers`,
 * `originstore.get_origins` (and its HTTP calls), `policy.sort_peers`.
 *
 * @module
 */

import {
  ANNOUNCE,
  ANNOUNCE_V1,
  AnnounceAnswerEncoder,
  AnnounceWireError,
  parseAnnounceRequest,
  type ParsedAnnounceRequest,
  type PeerInfo,
} from "../../wire/announce.ts";
import { type Ctx, HttpError, type Router } from "../../http/router.ts";
import type { Digest } from "../../storage/digest.ts";
import { InfoHash, MetaInfoError } from "../../storage/metainfo.ts";
import {
  ATTR,
  type Attributes,
  MetricsRegistry,
  policyCountAttr,
  SPAN,
  withSpan,
} from "../../tracing/mod.ts";
import { concatBytes } from "../../common/bytes.ts";
import { bytesResponse } from "../../http/bytes_response.ts";
import { getRequestBody } from "../../http/serve.ts";
import type { OriginStore } from "./originstore.ts";
import type { PeerStore } from "./peerstore.ts";
import type { PriorityPolicy } from "./policy.ts";

/** Largest announce body read. */
const MAX_ANNOUNCE_BODY_BYTES = 64 * 1024;

// The peer store and policy spans start no span and make no traced call: no context switch.
const LEAF = { leaf: true } as const;

/** What {@linkcode registerAnnounceRoutes} runs on. */
export interface AnnounceDeps {
  /** Announced peers. */
  peerStore: PeerStore;
  /** Origins of a blob. */
  originStore: OriginStore;
  /** Handout order. */
  policy: PriorityPolicy;
  /** Interval sent to agents, ms. */
  announceIntervalMs: number;
  /** Peers taken from the peer store per announce. */
  maxPeers: number;
  /**
   * Where announces are counted: `kraken_tracker_announces_total{complete}` and
   * `kraken_tracker_peers_handed_out_total{source="agent"|"origin"}`. Default: counted nowhere.
   */
  metrics?: MetricsRegistry;
}

const utf8 = new TextDecoder();

/** Reads a request body as text, refusing bodies over `limit` bytes. */
async function readText(req: Request, limit: number): Promise<string> {
  const body = getRequestBody(req);
  if (body) return utf8.decode(body);
  if (!req.body) return "";
  // Read to its end and left locked: releasing the reader (as `for await` does) would build a
  // TypeError for its closed promise on every announce.
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      reader.cancel().catch(() => {});
      throw new HttpError(413, `request body larger than ${limit} bytes`);
    }
    chunks.push(value);
  }
  return utf8.decode(chunks.length === 1 ? chunks[0] : concatBytes(chunks));
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

/** The message of a thrown value. */
export function message(error: unknown): string {
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

/** Registers the announce routes on `router`. */
export function registerAnnounceRoutes(router: Router, deps: AnnounceDeps): void {
  const { peerStore, originStore, policy } = deps;
  const metrics = deps.metrics ?? new MetricsRegistry();
  const announces = (complete: boolean) =>
    metrics.counter(
      "kraken_tracker_announces_total",
      "Announces answered, by whether the peer had the whole blob.",
      { complete: String(complete) },
    );
  const handedOut = (source: "agent" | "origin") =>
    metrics.counter(
      "kraken_tracker_peers_handed_out_total",
      "Peers handed out in announce answers, by kind.",
      { source },
    );
  announces(false);
  announces(true);
  handedOut("agent");
  handedOut("origin");

  // The spans' attributes are built with keyed stores: a literal with computed keys costs a
  // running role about 0.7 µs a key (docs/performance.md).
  const announceAttributes = (infoHash: InfoHash, digest: Digest, peer: PeerInfo) => {
    const attributes: Attributes = {};
    attributes[ATTR.infohash] = infoHash.hex;
    attributes[ATTR.digest] = digest.toString();
    attributes[ATTR.complete] = peer.complete;
    attributes[ATTR.handoutPolicy] = policy.name;
    return attributes;
  };
  const announce = (
    digest: Digest,
    infoHash: InfoHash,
    peer: PeerInfo,
  ): Promise<PeerInfo[] | null> =>
    withSpan(SPAN.trackerAnnounce, announceAttributes(infoHash, digest, peer), async (span) => {
      try {
        const updateAttributes: Attributes = {};
        updateAttributes[ATTR.peerstoreType] = peerStore.type;
        updateAttributes[ATTR.complete] = peer.complete;
        await withSpan(
          SPAN.peerstoreUpdatePeer,
          updateAttributes,
          () => peerStore.updatePeer(infoHash, peer),
          LEAF,
        );
      } catch {
        // Upstream only logs this: the handout can still help the peer. The peer store monitor
        // (peerstore_monitor.ts) counts it and logs it at a bounded rate.
      }
      announces(peer.complete).inc();
      if (peer.complete) {
        // A complete peer needs nobody; it announced to be found.
        span.setAttribute(ATTR.peerCount, 0);
        span.setAttribute(ATTR.originCount, 0);
        return null;
      }
      const getAttributes: Attributes = {};
      getAttributes[ATTR.peerstoreType] = peerStore.type;
      getAttributes[ATTR.peerstoreLimit] = deps.maxPeers;
      const [fromStore, fromOrigins] = await Promise.allSettled([
        withSpan(
          SPAN.peerstoreGetPeers,
          getAttributes,
          async (span) => {
            const peers = await peerStore.getPeers(infoHash, deps.maxPeers);
            span.setAttribute(ATTR.peerCount, peers.length);
            return peers;
          },
          LEAF,
        ),
        originStore.getOrigins(digest),
      ]);
      const errors: string[] = [];
      const peers = fromStore.status === "fulfilled" ? fromStore.value : [];
      if (fromStore.status === "rejected") errors.push(`peer store: ${message(fromStore.reason)}`);
      const origins = fromOrigins.status === "fulfilled" ? fromOrigins.value : [];
      if (fromOrigins.status === "rejected") {
        errors.push(`origin store: ${message(fromOrigins.reason)}`);
      }
      span.setAttribute(ATTR.peerCount, peers.length);
      span.setAttribute(ATTR.originCount, origins.length);
      const all = [...peers, ...origins];
      if (all.length === 0) throw new HttpError(500, `no peers available: ${errors.join(", ")}`);
      const sortAttributes: Attributes = {};
      sortAttributes[ATTR.handoutPolicy] = policy.name;
      sortAttributes[ATTR.peerCount] = all.length;
      return withSpan(
        SPAN.policySortPeers,
        sortAttributes,
        (span) => {
          const sorted = policy.sortPeers(all);
          const fromOrigins = sorted.filter((p) => p.origin).length;
          handedOut("origin").inc(fromOrigins);
          handedOut("agent").inc(sorted.length - fromOrigins);
          const counts = seederCounts(policy, sorted);
          for (const [label, n] of Object.entries(counts)) {
            span.setAttribute(policyCountAttr(label), n);
          }
          return sorted;
        },
        LEAF,
      );
    });

  const answers = new AnnounceAnswerEncoder();
  const respond = (ctx: Ctx, peers: PeerInfo[] | null) =>
    // Upstream writes JSON without a Content-Type; Go then sniffs text/plain.
    bytesResponse(answers.encode(peers, deps.announceIntervalMs), {
      headers: { "content-type": "text/plain; charset=utf-8" },
    }, ctx);

  router.route(ANNOUNCE_V1, async (ctx) => {
    const req = await announceRequest(ctx);
    if (!req.infoHash) throw new HttpError(400, "json decode request: info_hash: is required");
    return respond(ctx, await announce(req.digest, req.infoHash, req.peer));
  });

  router.route(ANNOUNCE, async (ctx) => {
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
    return respond(ctx, await announce(req.digest, infoHash, req.peer));
  });
}
