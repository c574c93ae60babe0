/**
 * The origin's metainfo: generating it for a cached blob (`origin.generate_metainfo`, stored as the
 * blob's `metainfo` metadata) and its routes:
 *
 * | Method | Route | Answer |
 * |---|---|---|
 * | GET | `/internal/namespace/{namespace}/blobs/{digest}/metainfo` | stored metainfo; generated for a cached blob without it; else a backend fetch (202) |
 * | POST | `/internal/blobs/{digest}/metainfo?piece_length=` | regenerates with that piece length; 404 when not cached |
 *
 * @module
 */

import { HttpError, type Router } from "../../http/router.ts";
import { METAINFO_KEY } from "../../p2p/blob_torrent.ts";
import { BlobNotFoundError, type BlobStore } from "../../storage/blob_store.ts";
import type { Digest } from "../../storage/digest.ts";
import { digestParam } from "../../storage/digest_param.ts";
import { generateMetaInfo, type MetaInfo, type PieceLengthTable } from "../../storage/metainfo.ts";
import { ATTR, SPAN, withSpan } from "../../tracing/mod.ts";
import type { BlobRefresher } from "./refresh.ts";
import { METAINFO_REGENERATE, ORIGIN_METAINFO } from "../../wire/blob.ts";

/** What metainfo generation runs on. */
export interface MetaInfoDeps {
  /** The local blob cache. */
  store: BlobStore;
  /** Piece lengths by blob size. */
  pieceLengths: PieceLengthTable;
}

/** Generates and stores the metainfo of a cached blob, as `origin.generate_metainfo`. */
export function storeMetaInfo(
  deps: MetaInfoDeps,
  digest: Digest,
  pieceLength?: number,
): Promise<MetaInfo> {
  return withSpan(
    SPAN.originGenerateMetainfo,
    { [ATTR.digest]: digest.toString() },
    async (span) => {
      const blob = await deps.store.open(digest);
      const mi = await generateMetaInfo(digest, blob, pieceLength ?? deps.pieceLengths);
      span.setAttributes({
        [ATTR.size]: mi.length,
        [ATTR.pieceLength]: mi.pieceLength,
        [ATTR.pieces]: mi.numPieces,
      });
      await deps.store.setMetadata(digest, METAINFO_KEY, new TextEncoder().encode(mi.serialize()));
      return mi;
    },
  );
}

/** Registers the metainfo routes; a blob not cached is fetched through `refresher`. */
export function registerMetaInfoRoutes(
  router: Router,
  deps: MetaInfoDeps & { refresher: BlobRefresher },
): void {
  const { store, refresher } = deps;

  router.route(METAINFO_REGENERATE, async (ctx) => {
    const digest = digestParam(ctx);
    const raw = ctx.url.searchParams.get("piece_length") ?? "";
    const pieceLength = /^\d{1,15}$/.test(raw) ? Number(raw) : 0;
    if (pieceLength <= 0) {
      throw new HttpError(
        400,
        `piece_length must be a positive integer, got ${JSON.stringify(raw)}`,
      );
    }
    try {
      await storeMetaInfo(deps, digest, pieceLength);
    } catch (error) {
      if (error instanceof BlobNotFoundError) throw new HttpError(404);
      throw error;
    }
    return new Response(null);
  });

  router.route(ORIGIN_METAINFO, async (ctx) => {
    const digest = digestParam(ctx);
    const stored = await store.getMetadata(digest, METAINFO_KEY);
    if (stored) return new Response(stored as Uint8Array<ArrayBuffer>);
    // A blob cached without metainfo (a crash between commit and generation) gets it now.
    if (await store.has(digest)) {
      try {
        return new Response((await storeMetaInfo(deps, digest)).serialize());
      } catch (error) {
        if (!(error instanceof BlobNotFoundError)) throw error;
      }
    }
    return await refresher.refresh(ctx.params.namespace, digest);
  });
}
