/**
 * The registry's blob reads: `HEAD`/`GET /v2/{name}/blobs/{digest}` from the local cache, else the
 * origin cluster (namespace = repo; any origin error on a stat is a 404). Deletion is
 * `UNSUPPORTED`.
 *
 * @module
 */

import { isNotFound } from "../../cluster/blob_client.ts";
import { parseRegistryDigest, RegistryError } from "../../registry/errors.ts";
import {
  blobSize,
  blobUnknown,
  nameParam,
  type RegistryDeps,
  type RegistryRoute,
} from "./registry.ts";

/** Registers the blob routes. */
export function registerBlobRoutes(on: RegistryRoute, deps: RegistryDeps): void {
  const { store, origin } = deps;

  on("GET", "/v2/{name+}/blobs/{digest}", async (ctx) => {
    const name = nameParam(ctx);
    const digest = parseRegistryDigest(ctx.params.digest);
    const head = ctx.req.method === "HEAD";
    const headers = {
      "content-type": "application/octet-stream",
      "docker-content-digest": digest.toString(),
      etag: `"${digest}"`,
    };
    if (head) {
      const size = await blobSize(deps, name, digest);
      if (size === null) throw blobUnknown(digest);
      return new Response(null, { headers: { ...headers, "content-length": String(size) } });
    }
    const local = await store.open(digest).catch(() => null);
    if (local) {
      return new Response(local.stream, {
        headers: { ...headers, "content-length": String(local.size) },
      });
    }
    try {
      return new Response(await origin.downloadBlob(name, digest), { headers });
    } catch (error) {
      if (isNotFound(error)) throw blobUnknown(digest);
      throw new RegistryError("UNAVAILABLE", `origin cluster: ${(error as Error).message}`);
    }
  });

  on("DELETE", "/v2/{name+}/blobs/{digest}", () => {
    throw new RegistryError("UNSUPPORTED", "blob deletion is not supported");
  });
}
