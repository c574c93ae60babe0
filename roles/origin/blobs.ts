/**
 * The origin's blob reads and deletion:
 *
 * | Method | Route | Answer |
 * |---|---|---|
 * | GET | `/blobs/{digest}/locations` | `Origin-Locations` header: the digest's ring locations |
 * | GET | `/namespace/{namespace}/blobs/{digest}` | the cached blob, else a backend fetch (202 until cached) |
 * | POST | `/namespace/{namespace}/blobs/{digest}/prefetch` | 200 when cached, else starts a backend fetch |
 * | HEAD | `/internal/namespace/{namespace}/blobs/{digest}[?local=]` | `Content-Length` from the cache, else the backend (`backend.stat`) unless `local` |
 * | DELETE | `/internal/blobs/{digest}` | 202 after the blob left the cache (and the P2P seeder) |
 *
 * Namespaces and digests from URLs never name files: the store is addressed by the verified digest
 * alone and namespaces only select a backend, so `..%2F..%2Fetc` cannot leave the store root.
 *
 * @module
 */

import type { HashRing } from "../../cluster/hashring.ts";
import { fileResponse } from "../../http/file_response.ts";
import { HttpError, type Router } from "../../http/router.ts";
import { type Backend, type BackendManager, objectKeyOf } from "../../storage/backend/backend.ts";
import { BlobNotFoundError, type BlobStore } from "../../storage/blob_store.ts";
import type { Digest } from "../../storage/digest.ts";
import { digestParam } from "../../storage/digest_param.ts";
import { ATTR, setAttributes, SPAN, withSpan } from "../../tracing/mod.ts";
import type { BlobRefresher } from "./refresh.ts";
import {
  BLOB_DELETE,
  BLOB_DOWNLOAD,
  BLOB_LOCATIONS,
  BLOB_PREFETCH,
  BLOB_STAT,
} from "../../wire/blob.ts";

/** What the blob routes run on. */
export interface BlobDeps {
  /** The local blob cache. */
  store: BlobStore;
  /** Namespace → backend mapping. */
  backends: BackendManager;
  /** The origin ring (health-filtered). */
  ring: HashRing;
  /** Backend fetches of cache misses. */
  refresher: BlobRefresher;
  /** Told when a blob leaves the cache, so the P2P seeder stops serving it. */
  onDelete?: (digest: Digest) => Promise<void>;
}

/** Go's `strconv.ParseBool`; absent is false. A bad value is 400 (upstream answers 500). */
function parseGoBool(value: string | null, name: string): boolean {
  if (value === null) return false;
  if (["1", "t", "T", "TRUE", "true", "True"].includes(value)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(value)) return false;
  throw new HttpError(400, `invalid ${name} argument ${JSON.stringify(value.slice(0, 32))}`);
}

function sizeResponse(size: number): Response {
  return new Response(null, { headers: { "Content-Length": String(size) } });
}

/** Registers the blob routes. */
export function registerBlobRoutes(router: Router, deps: BlobDeps): void {
  const { store, refresher } = deps;
  router.route(BLOB_LOCATIONS, (ctx) => {
    const digest = digestParam(ctx);
    const locations = deps.ring.locations(digest.hex);
    return new Response(null, { headers: { "Origin-Locations": locations.join(",") } });
  });

  router.route(BLOB_DOWNLOAD, async (ctx) => {
    const digest = digestParam(ctx);
    setAttributes({ [ATTR.namespace]: ctx.params.namespace, [ATTR.digest]: digest.toString() });
    try {
      const blob = await store.open(digest);
      return fileResponse(blob.body, {
        headers: {
          "Content-Length": String(blob.size),
          "Content-Type": "application/octet-stream",
        },
      }, ctx);
    } catch (error) {
      if (!(error instanceof BlobNotFoundError)) throw error;
    }
    return await refresher.refresh(ctx.params.namespace, digest);
  });

  router.route(BLOB_PREFETCH, async (ctx) => {
    const digest = digestParam(ctx);
    if (await store.has(digest)) return new Response(null);
    return await refresher.refresh(ctx.params.namespace, digest);
  });

  router.route(BLOB_DELETE, async (ctx) => {
    const digest = digestParam(ctx);
    if (!await store.delete(digest)) throw new HttpError(404);
    await deps.onDelete?.(digest);
    return new Response(null, { status: 202, headers: { "Content-Length": "0" } });
  });

  router.route(BLOB_STAT, async (ctx) => {
    const digest = digestParam(ctx);
    const namespace = ctx.params.namespace;
    const local = parseGoBool(ctx.url.searchParams.get("local"), "local");
    const cached = await store.stat(digest);
    if (cached) return sizeResponse(cached.size);
    if (local) throw new HttpError(404);
    let backend: Backend;
    try {
      backend = deps.backends.getClient(namespace);
    } catch (error) {
      throw new HttpError(500, (error as Error).message);
    }
    const objectKey = objectKeyOf(backend, digest.hex);
    const info = await withSpan(SPAN.backendStat, {
      [ATTR.backendType]: backend.type,
      [ATTR.bucket]: backend.bucket ?? "",
      [ATTR.namespace]: namespace,
      [ATTR.digest]: digest.toString(),
      ...(objectKey === undefined ? {} : { [ATTR.backendKey]: objectKey }),
    }, async (span) => {
      const found = await backend.stat(namespace, digest.hex);
      span.setAttribute(ATTR.exists, found !== null);
      return found;
    });
    if (!info) throw new HttpError(404);
    return sizeResponse(info.size);
  });
}
