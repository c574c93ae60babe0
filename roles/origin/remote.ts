/**
 * The origin's cross-cluster replication route (kraken-wire.md §1.4, §6.5):
 *
 * | Method | Route | Answer |
 * |---|---|---|
 * | POST | `/namespace/{namespace}/blobs/{digest}/remote/{remote}` | 200 once the remote cluster has the blob; 202/404/503 while it is not cached (backend fetch) |
 *
 * `{remote}` is the remote origin cluster's `host:port`, sent unescaped. A cached blob is uploaded
 * to that cluster with the public upload protocol (`origin.store_blob` and its client spans); one
 * that is not cached is fetched from the backend first, and the caller polls while the answer is
 * 202, as build-index's replication tasks do. A remote cluster that refuses or fails the upload is
 * 502 with its message: this origin did its part, the remote did not.
 *
 * @module
 */

import { HttpError, type Router } from "../../http/router.ts";
import type { BlobStore } from "../../storage/blob_store.ts";
import { digestParam } from "../../storage/digest_param.ts";
import { ATTR, setAttributes } from "../../tracing/mod.ts";
import { REPLICATE_TO_REMOTE } from "../../wire/blob.ts";
import type { BlobRefresher } from "./refresh.ts";
import type { Replicator } from "./replication.ts";

/** What the remote replication route runs on. */
export interface RemoteDeps {
  /** The local blob cache. */
  store: BlobStore;
  /** Backend fetches of blobs not cached yet. */
  refresher: BlobRefresher;
  /** Uploads to the remote cluster. */
  replicator: Replicator;
}

const HOST_PORT = /^(\[[^\]]+\]|[^\s/:\[\]]+):\d{1,5}$/;

/** Registers the replicate-to-remote route. */
export function registerRemoteRoutes(router: Router, deps: RemoteDeps): void {
  router.route(REPLICATE_TO_REMOTE, async (ctx) => {
    const digest = digestParam(ctx);
    const { namespace, remote } = ctx.params;
    if (!HOST_PORT.test(remote)) {
      throw new HttpError(
        400,
        `remote must be host:port, got ${JSON.stringify(remote.slice(0, 200))}`,
      );
    }
    setAttributes({
      [ATTR.namespace]: namespace,
      [ATTR.digest]: digest.toString(),
      [ATTR.replicationRemote]: remote,
    });
    if (!await deps.store.has(digest)) return await deps.refresher.refresh(namespace, digest);
    try {
      await deps.replicator.toRemote(namespace, digest, remote);
    } catch (error) {
      if (error instanceof HttpError) throw error;
      throw new HttpError(
        502,
        `replicate ${digest} to remote cluster ${remote}: ${(error as Error).message}`,
      );
    }
    return new Response(null);
  });
}
