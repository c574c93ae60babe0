/**
 * The tracker's metainfo proxy (kraken-wire.md §1.3):
 * `GET /namespace/{namespace}/blobs/{digest}/metainfo` asks the blob's ring locations in order; an
 * origin's non-200 (202 included) is copied with body `origin: <body>`. The origin calls are
 * client spans of the request's trace.
 *
 * @module
 */

import { AcceptedError } from "../../cluster/blob_client.ts";
import { HttpError, type Router } from "../../http/router.ts";
import { HttpStatusError } from "../../http/status_error.ts";
import { type Digest, DigestError, parseDigest } from "../../storage/digest.ts";
import type { MetaInfo } from "../../storage/metainfo.ts";
import { message } from "./announce.ts";
import { TRACKER_METAINFO } from "../../wire/announce.ts";

/** What the metainfo proxy and readiness need from the origin cluster (`OriginClusterClient`). */
export interface OriginCluster {
  /** Ring locations of a digest. */
  locations(digest: Digest): Promise<string[]>;
  /** The client of one origin. */
  client(addr: string): { getMetaInfo(namespace: string, digest: Digest): Promise<MetaInfo> };
}

/** Registers the metainfo route on `router`. */
export function registerMetaInfoRoutes(router: Router, originCluster: OriginCluster): void {
  router.route(TRACKER_METAINFO, async (ctx) => {
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
}
