/**
 * What the proxy's registry handler modules share: the clients they run on, the route helper that
 * turns thrown errors into registry JSON errors, and the blob lookups and uploads several handlers
 * make. The routes themselves live in `base.ts`, `tags.ts`, `manifests.ts`, `uploads.ts` and
 * `blobs.ts`; `server.ts` registers them in that order.
 *
 * Committed blobs and manifests are uploaded to the origin cluster with the namespace literally
 * `TODO` ({@linkcode PUSH_NAMESPACE}), as upstream's proxy does; origins and their backend regexes
 * must accept it.
 *
 * @module
 */

import type { Logger } from "../../common/log.ts";
import { type BlobSource, isNotFound } from "../../cluster/blob_client.ts";
import { type ListResponse, type PutOptions, tagRefusal } from "../../cluster/tag_client.ts";
import type { Ctx, Handler, Router } from "../../http/router.ts";
import { RegistryError, registryErrorResponse, validateRepoName } from "../../registry/errors.ts";
import type { BlobStore } from "../../storage/blob_store.ts";
import { readManifestBytes } from "../../registry/manifest.ts";
import { type Digest, digestOfBytes } from "../../storage/digest.ts";
import type { MetricsRegistry } from "../../tracing/mod.ts";
import type { UploadSessions } from "./upload_sessions.ts";

/** The origin namespace every push uploads to (upstream's registry driver hard-codes it). */
export const PUSH_NAMESPACE = "TODO";

/** The origin-cluster calls the proxy makes (an `OriginClusterClient` fits). */
export interface ProxyOrigin {
  /** Size of a blob, or null when absent. */
  stat(namespace: string, digest: Digest): Promise<{ size: number } | null>;
  /** The blob's bytes. */
  downloadBlob(namespace: string, digest: Digest): Promise<ReadableStream<Uint8Array>>;
  /** Uploads a blob (traced as `origin.store_blob`). */
  uploadBlob(namespace: string, digest: Digest, source: BlobSource): Promise<void>;
}

/** The build-index calls the proxy makes (a `TagClusterClient` fits). */
export interface ProxyTags {
  /** Points a tag at a manifest digest. */
  put(tag: string, digest: Digest, options?: PutOptions): Promise<void>;
  /** The digest of a tag, or null. */
  get(tag: string): Promise<Digest | null>;
  /** Backend names under a prefix. */
  list(prefix: string): Promise<ListResponse>;
}

/** What the registry handler modules run on. */
export interface RegistryDeps {
  /** Staged uploads and cached blobs. */
  store: BlobStore;
  /** Upload session bookkeeping. */
  sessions: UploadSessions;
  /** The origin cluster. */
  origin: ProxyOrigin;
  /** The build-index cluster. */
  tags: ProxyTags;
  /** Logger. */
  logger: Logger;
  /** The role's metrics (`TracingRuntime.roleMetrics`). */
  metrics: MetricsRegistry;
}

/** Registers one registry route. */
export type RegistryRoute = (method: string, route: string, handler: Handler) => void;

/**
 * A route registrar for `router` whose handlers' thrown errors become registry JSON errors (5xx
 * are also logged and kept for the server span).
 */
export function registryRoutes(router: Router, logger: Logger): RegistryRoute {
  return (method, route, handler) =>
    router.on(method, route, async (ctx) => {
      try {
        return await handler(ctx);
      } catch (error) {
        const response = registryErrorResponse(error, ctx.req.method);
        if (response.status >= 500) {
          ctx.state.error = error;
          logger.error("registry request failed", { route: ctx.route, error });
        }
        return response;
      }
    });
}

/** The validated `{name}` parameter. */
export function nameParam(ctx: Ctx): string {
  return validateRepoName(ctx.params.name);
}

/** Size of a blob: local cache first, then the origin cluster; any origin failure counts as absent. */
export async function blobSize(
  deps: RegistryDeps,
  name: string,
  digest: Digest,
): Promise<number | null> {
  const local = await deps.store.stat(digest);
  if (local) return local.size;
  try {
    return (await deps.origin.stat(name, digest))?.size ?? null;
  } catch (error) {
    deps.logger.warn("origin stat failed; treating blob as absent", {
      digest: digest.toString(),
      error,
    });
    return null;
  }
}

/** Uploads a cached blob to the origin; on failure it leaves the cache so a retry re-uploads. */
export async function pushToOrigin(
  deps: RegistryDeps,
  digest: Digest,
  source: BlobSource,
): Promise<void> {
  try {
    await deps.origin.uploadBlob(PUSH_NAMESPACE, digest, source);
  } catch (error) {
    await deps.store.delete(digest).catch(() => {});
    throw new RegistryError(
      "UNKNOWN",
      `upload of ${digest} to the origin cluster failed: ${(error as Error).message}`,
      undefined,
      500,
    );
  }
}

/** Manifest bytes from the cache, else from the origin cluster (verified, then cached). */
export async function loadManifest(
  deps: RegistryDeps,
  name: string,
  digest: Digest,
): Promise<Uint8Array | null> {
  const local = await deps.store.open(digest).catch(() => null);
  if (local) return await readManifestBytes(local.stream);
  let bytes: Uint8Array;
  try {
    bytes = await readManifestBytes(await deps.origin.downloadBlob(name, digest));
  } catch (error) {
    if (isNotFound(error)) return null;
    throw new RegistryError("UNAVAILABLE", `origin cluster: ${(error as Error).message}`);
  }
  const actual = await digestOfBytes(bytes);
  if (!actual.equals(digest)) {
    throw new RegistryError("UNKNOWN", `origin returned ${actual} for manifest ${digest}`);
  }
  await deps.store.putBlob(digest, bytes);
  return bytes;
}

/**
 * Points build-index name `tag` (`repo:tag`) at `digest`, replicated to remote clusters. A tag
 * build-index refused is that 4xx `MANIFEST_INVALID`; any other failure a 500.
 * @throws {RegistryError}
 */
export async function putTag(deps: RegistryDeps, tag: string, digest: Digest): Promise<void> {
  try {
    await deps.tags.put(tag, digest, { replicate: true });
  } catch (error) {
    const refusal = tagRefusal(error);
    if (refusal) {
      throw new RegistryError("MANIFEST_INVALID", refusal.message, { tag }, refusal.status);
    }
    throw new RegistryError(
      "UNKNOWN",
      `tagging ${tag} in build-index failed: ${(error as Error).message}`,
    );
  }
}

/** The 201 answer to a blob that now exists. */
export function blobCreated(name: string, digest: Digest): Response {
  return new Response(null, {
    status: 201,
    headers: {
      location: `/v2/${name}/blobs/${digest}`,
      "docker-content-digest": digest.toString(),
      "content-length": "0",
    },
  });
}

/** `BLOB_UNKNOWN` for `digest`. */
export function blobUnknown(digest: Digest): RegistryError {
  return new RegistryError("BLOB_UNKNOWN", "blob unknown to registry", {
    digest: digest.toString(),
  });
}
