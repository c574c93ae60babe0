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
 * becomes build-index `PUT /tags/<name:tag>/digest/<d>?replicate=true`. A manifest with a `subject`
 * is checked and recorded as a referrer (`referrers.ts`) and answered with `OCI-Subject`.
 *
 * @module
 */

import { bytesSource } from "../../cluster/blob_client.ts";
import { requestBody, RequestBodyError } from "../../http/request_body.ts";
import type { Ctx } from "../../http/router.ts";
import { parseReference, RegistryError } from "../../registry/errors.ts";
import {
  ManifestError,
  parseManifest,
  readManifestBytes,
  storedReferences,
} from "../../registry/manifest.ts";
import { digestOfBytes } from "../../storage/digest.ts";
import { ATTR, setAttributes, SPAN, withSpan } from "../../tracing/mod.ts";
import { recordReferrer, SubjectCheck } from "./referrers.ts";
import {
  blobSize,
  loadManifest,
  nameParam,
  PUSH_NAMESPACE,
  pushToOrigin,
  putTag,
  type RegistryDeps,
  type RegistryRoute,
} from "./registry.ts";

function manifestUnknown(name: string, reference: string): RegistryError {
  return new RegistryError("MANIFEST_UNKNOWN", "manifest unknown", { name, reference });
}

/** Registers the manifest routes. */
export function registerManifestRoutes(on: RegistryRoute, deps: RegistryDeps): void {
  const { store, tags } = deps;
  const subjects = new SubjectCheck(deps);

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
    const bytes = await loadManifest(deps, name, digest);
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
    const { digest, subject } = await withSpan(
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
        // Foreign layers with `urls` are fetched from there by clients: the cluster need not have them.
        const required = storedReferences(manifest);
        const sizes = await Promise.all(required.map((d) => blobSize(deps, name, d)));
        const missing = required.filter((_, i) => sizes[i] === null);
        if (missing.length > 0) {
          throw new RegistryError(
            "MANIFEST_BLOB_UNKNOWN",
            `blob unknown to registry: ${missing.length} referenced blob(s) missing`,
            { digest: missing[0].toString(), missing: missing.map(String) },
          );
        }
        const subject = manifest.subject?.digest;
        if (subject) await subjects.check(name, subject);
        await store.putBlob(digest, bytes);
        await pushToOrigin(deps, digest, bytesSource(bytes));
        await Promise.all([
          ref.tag ? putTag(deps, `${name}:${ref.tag}`, digest) : undefined,
          subject ? recordReferrer(deps, name, subject, digest) : undefined,
        ]);
        return { digest, subject };
      },
    );
    const headers: Record<string, string> = {
      location: `/v2/${name}/manifests/${digest}`,
      "docker-content-digest": digest.toString(),
      "content-length": "0",
    };
    if (subject) headers["oci-subject"] = subject.toString();
    return new Response(null, { status: 201, headers });
  });

  on("DELETE", "/v2/{name+}/manifests/{reference}", () => {
    throw new RegistryError("UNSUPPORTED", "manifest deletion is not supported");
  });
}
