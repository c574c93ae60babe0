/**
 * The registry's blob reads: `HEAD`/`GET /v2/{name}/blobs/{digest}` from the local cache, else the
 * origin cluster (namespace = repo; any origin error on a stat is a 404). A GET with `Range` gets
 * 206 and `Content-Range`, or 416 `RANGE_INVALID` (`registry/range.ts`); a well-formed sha512
 * digest is an unknown blob (404), since Kraken stores sha256 only. Deletion is `UNSUPPORTED`.
 *
 * @module
 */

import { isNotFound } from "../../cluster/blob_client.ts";
import { sliceStream } from "../../common/bytes.ts";
import { fileResponse } from "../../http/file_response.ts";
import { parseLookupDigest, RegistryError } from "../../registry/errors.ts";
import { partialContentHeaders, rangeLength, resolveRange } from "../../registry/range.ts";
import type { Digest } from "../../storage/digest.ts";
import {
  blobSize,
  blobUnknown,
  nameParam,
  type RegistryDeps,
  type RegistryRoute,
} from "./registry.ts";

/** `BLOB_UNKNOWN` with the message a sha512 lookup gets. */
function unknownBlob(message: string): RegistryError {
  return new RegistryError("BLOB_UNKNOWN", message);
}

/** Registers the blob routes. */
export function registerBlobRoutes(on: RegistryRoute, deps: RegistryDeps): void {
  const { store, origin } = deps;

  const download = async (name: string, digest: Digest): Promise<ReadableStream<Uint8Array>> => {
    try {
      return await origin.downloadBlob(name, digest);
    } catch (error) {
      if (isNotFound(error)) throw blobUnknown(digest);
      throw new RegistryError("UNAVAILABLE", `origin cluster: ${(error as Error).message}`);
    }
  };

  on("GET", "/v2/{name+}/blobs/{digest}", async (ctx) => {
    const name = nameParam(ctx);
    const digest = parseLookupDigest(ctx.params.digest, unknownBlob);
    const head = ctx.req.method === "HEAD";
    const headers = {
      "content-type": "application/octet-stream",
      "docker-content-digest": digest.toString(),
      etag: `"${digest}"`,
      "accept-ranges": "bytes",
    };
    const rangeHeader = head ? null : ctx.req.headers.get("range");
    if (head || rangeHeader !== null) {
      const size = await blobSize(deps, name, digest);
      if (size === null) throw blobUnknown(digest);
      const range = resolveRange(rangeHeader, size, {
        ifRange: ctx.req.headers.get("if-range"),
        etag: headers.etag,
      });
      if (head || range === null) {
        const body = head ? null : (await store.open(digest).catch(() => null))?.stream ??
          await download(name, digest);
        return new Response(body, { headers: { ...headers, "content-length": String(size) } });
      }
      const part = { offset: range.start, length: rangeLength(range) };
      const local = await store.open(digest, part).catch(() => null);
      const init = { status: 206, headers: { ...headers, ...partialContentHeaders(range, size) } };
      if (local) return fileResponse(local.body, init, ctx);
      return new Response(
        sliceStream(await download(name, digest), part.offset, part.length),
        init,
      );
    }
    const local = await store.open(digest).catch(() => null);
    if (local) {
      return fileResponse(local.body, {
        headers: { ...headers, "content-length": String(local.size) },
      }, ctx);
    }
    return new Response(await download(name, digest), { headers });
  });

  on("DELETE", "/v2/{name+}/blobs/{digest}", () => {
    throw new RegistryError("UNSUPPORTED", "blob deletion is not supported");
  });
}
