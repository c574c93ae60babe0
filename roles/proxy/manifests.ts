/**
 * The registry's manifest routes:
 *
 * | Method | Route | What happens |
 * |---|---|---|
 * | PUT | `/v2/{name}/manifests/{reference}` | validate, check blobs, store as blob, tag in build-index |
 * | HEAD/GET | `/v2/{name}/manifests/{reference}` | by tag (build-index) or digest |
 * | DELETE | `/v2/{name}/manifests/{reference}` | `UNSUPPORTED` |
 *
 * A manifest PUT is `proxy.put_manifest` › `origin.store_blob`, `build_index.put_tag`; a tag
 * becomes build-index `PUT /tags/<name:tag>/digest/<d>?replicate=true`.
 *
 * @module
 */

import { bytesSource, isNotFound } from "../../cluster/blob_client.ts";
import { tagRefusal } from "../../cluster/tag_client.ts";
import { requestBody, RequestBodyError } from "../../http/request_body.ts";
import type { Ctx } from "../../http/router.ts";
import { parseReference, RegistryError } from "../../registry/errors.ts";
import { ManifestError, parseManifest, readManifestBytes } from "../../registry/manifest.ts";
import { type Digest, digestOfBytes } from "../../storage/digest.ts";
import { ATTR, setAttributes, SPAN, withSpan } from "../../tracing/mod.ts";
import {
  blobSize,
  nameParam,
  PUSH_NAMESPACE,
  pushToOrigin,
  type RegistryDeps,
  type RegistryRoute,
} from "./registry.ts";

function manifestUnknown(name: string, reference: string): RegistryError {
  return new RegistryError("MANIFEST_UNKNOWN", "manifest unknown", { name, reference });
}

/** Registers the manifest routes. */
export function registerManifestRoutes(on: RegistryRoute, deps: RegistryDeps): void {
  const { store, origin, tags } = deps;

  /** Manifest bytes from the cache, else from the origin cluster (verified, then cached). */
  const loadManifest = async (name: string, digest: Digest): Promise<Uint8Array | null> => {
    const local = await store.open(digest).catch(() => null);
    if (local) return await readManifestBytes(local.stream);
    let bytes: Uint8Array;
    try {
      bytes = await readManifestBytes(await origin.downloadBlob(name, digest));
    } catch (error) {
      if (isNotFound(error)) return null;
      throw new RegistryError("UNAVAILABLE", `origin cluster: ${(error as Error).message}`);
    }
    const actual = await digestOfBytes(bytes);
    if (!actual.equals(digest)) {
      throw new RegistryError("UNKNOWN", `origin returned ${actual} for manifest ${digest}`);
    }
    await store.putBlob(digest, bytes);
    return bytes;
  };

  const getManifest = async (ctx: Ctx) => {
    const name = nameParam(ctx);
    const ref = parseReference(
      ctx.params.reference,
      (message) => new RegistryError("MANIFEST_UNKNOWN", message, { name }),
    );
    let digest = ref.digest;
    if (!digest) {
      const found = await tags.get(`${name}:${ref.tag}`);
      if (!found) throw manifestUnknown(name, ctx.params.reference);
      digest = found;
    }
    const bytes = await loadManifest(name, digest);
    if (!bytes) throw manifestUnknown(name, ctx.params.reference);
    let mediaType: string;
    try {
      mediaType = parseManifest(bytes).mediaType;
    } catch {
      mediaType = "application/octet-stream";
    }
    return new Response(ctx.req.method === "HEAD" ? null : bytes as Uint8Array<ArrayBuffer>, {
      headers: {
        "content-type": mediaType,
        "content-length": String(bytes.length),
        "docker-content-digest": digest.toString(),
        etag: `"${digest}"`,
      },
    });
  };

  on("GET", "/v2/{name+}/manifests/{reference}", getManifest);

  on("PUT", "/v2/{name+}/manifests/{reference}", async (ctx) => {
    const name = nameParam(ctx);
    const ref = parseReference(ctx.params.reference);
    const digest = await withSpan(
      SPAN.proxyPutManifest,
      {
        [ATTR.repo]: name,
        [ATTR.manifestReference]: ctx.params.reference,
        [ATTR.namespace]: PUSH_NAMESPACE,
      },
      async () => {
        let bytes: Uint8Array;
        let manifest;
        try {
          bytes = await readManifestBytes(requestBody(ctx.req) ?? new Blob().stream());
          manifest = parseManifest(bytes, ctx.req.headers.get("content-type"));
        } catch (error) {
          if (error instanceof ManifestError || error instanceof RequestBodyError) {
            throw new RegistryError("MANIFEST_INVALID", error.message);
          }
          throw error;
        }
        const digest = await digestOfBytes(bytes);
        setAttributes({
          [ATTR.digest]: digest.toString(),
          [ATTR.manifestMediaType]: manifest.mediaType,
          [ATTR.manifestReferences]: manifest.references.length,
        });
        if (ref.digest && !ref.digest.equals(digest)) {
          throw new RegistryError(
            "DIGEST_INVALID",
            `manifest digest is ${digest}, not ${ref.digest}`,
            {
              expected: ref.digest.toString(),
              actual: digest.toString(),
            },
          );
        }
        const sizes = await Promise.all(manifest.references.map((d) => blobSize(deps, name, d)));
        const missing = manifest.references.filter((_, i) => sizes[i] === null);
        if (missing.length > 0) {
          throw new RegistryError(
            "MANIFEST_BLOB_UNKNOWN",
            `blob unknown to registry: ${missing.length} referenced blob(s) missing`,
            { digest: missing[0].toString(), missing: missing.map(String) },
          );
        }
        await store.putBlob(digest, bytes);
        await pushToOrigin(deps, digest, bytesSource(bytes));
        if (ref.tag) {
          try {
            await tags.put(`${name}:${ref.tag}`, digest, { replicate: true });
          } catch (error) {
            const refusal = tagRefusal(error);
            if (refusal) {
              throw new RegistryError("MANIFEST_INVALID", refusal.message, {
                tag: ref.tag,
              }, refusal.status);
            }
            throw new RegistryError(
              "UNKNOWN",
              `tagging ${name}:${ref.tag} in build-index failed: ${(error as Error).message}`,
            );
          }
        }
        return digest;
      },
    );
    return new Response(null, {
      status: 201,
      headers: {
        location: `/v2/${name}/manifests/${digest}`,
        "docker-content-digest": digest.toString(),
        "content-length": "0",
      },
    });
  });

  on("DELETE", "/v2/{name+}/manifests/{reference}", () => {
    throw new RegistryError("UNSUPPORTED", "manifest deletion is not supported");
  });
}
