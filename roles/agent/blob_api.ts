/**
 * The agent server's blob API (kraken-wire.md §1.1): downloads over P2P and deletion.
 *
 * | Route | Answer |
 * |---|---|
 * | `GET /namespace/{namespace}/blobs/{digest}` | 200 with the blob; 404 (empty) for an unknown blob; 400 bad digest; 500 `download torrent: …` |
 * | `DELETE /blobs/{digest}` | 200 after the blob left memory and disk, or 500 |
 *
 * `{digest}` is `sha256:<hex>` or bare hex, as upstream's agent accepts.
 *
 * @module
 */

import { HttpError, type Router } from "../../http/router.ts";
import { TorrentNotFoundError } from "../../p2p/scheduler.ts";
import type { Digest } from "../../storage/digest.ts";
import { digestParam } from "../../storage/digest_param.ts";
import { setAttributes } from "../../tracing/mod.ts";
import { type AgentBlobs, blobAttributes } from "./blobs.ts";

/** What {@linkcode registerBlobRoutes} runs on. */
export interface BlobApiDeps {
  /** Cache-or-P2P blob access. */
  blobs: AgentBlobs;
  /** The scheduler: removal of a blob from memory and disk. */
  scheduler: { remove(digest: Digest): Promise<void> };
}

/** Registers the blob routes on `router`. */
export function registerBlobRoutes(router: Router, deps: BlobApiDeps): void {
  router.get("/namespace/{namespace}/blobs/{digest}", async (ctx) => {
    const digest = digestParam(ctx, { loose: true });
    const namespace = ctx.params.namespace;
    setAttributes(blobAttributes(namespace, digest));
    try {
      return await deps.blobs.serve(ctx, namespace, digest, { head: ctx.req.method === "HEAD" });
    } catch (error) {
      if (error instanceof TorrentNotFoundError) throw new HttpError(404);
      throw new HttpError(500, `download torrent: ${(error as Error).message}`);
    }
  });

  router.delete("/blobs/{digest}", async (ctx) => {
    const digest = digestParam(ctx, { loose: true });
    try {
      await deps.scheduler.remove(digest);
    } catch (error) {
      throw new HttpError(500, `delete blob: ${(error as Error).message}`);
    }
    return new Response(null);
  });
}
