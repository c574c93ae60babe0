/**
 * The Docker Registry HTTP API v2 calls Kraken makes as a client of a foreign registry (the
 * `registry_blob` and `registry_tag` backends, `storage/backend/registry.ts`): the version check
 * that yields the auth challenge, and blob/manifest reads. `{name+}` is the repository (slashes
 * kept), `{digest}` is `sha256:<hex>`, `{reference}` a tag or a digest.
 *
 * | Route | Answer |
 * |---|---|
 * | `GET /v2/` | 200, or 401 with `WWW-Authenticate` (the auth challenge) |
 * | `HEAD /v2/{name+}/blobs/{digest}` | 200 + `Content-Length`, or 404 |
 * | `GET /v2/{name+}/blobs/{digest}` | the bytes (maybe after a redirect), or 404 |
 * | `HEAD /v2/{name+}/manifests/{reference}` | 200 + `Content-Length`, or 404 |
 * | `GET /v2/{name+}/manifests/{reference}` | the manifest, or 404 |
 * | `GET {realm}` (the token service) | `{"token": …, "expires_in": …}` |
 *
 * @example
 * ```ts
 * import { REGISTRY_MANIFEST_GET } from "./registry.ts";
 * import { expand } from "./route.ts";
 * expand(REGISTRY_MANIFEST_GET, { name: "library/ubuntu", reference: "22.04" });
 * // "/v2/library/ubuntu/manifests/22.04"
 * ```
 *
 * @module
 */

import { route } from "./route.ts";

/** The version check; an auth-enabled registry answers 401 with its challenge. */
export const REGISTRY_PING = route("GET", "/v2/");
/** Whether a blob is in a repository, and its size. */
export const REGISTRY_BLOB_STAT = route("HEAD", "/v2/{name+}/blobs/{digest}");
/** A blob's bytes. */
export const REGISTRY_BLOB_GET = route("GET", "/v2/{name+}/blobs/{digest}");
/** Whether a manifest exists, and its size. */
export const REGISTRY_MANIFEST_STAT = route("HEAD", "/v2/{name+}/manifests/{reference}");
/** A manifest's bytes. */
export const REGISTRY_MANIFEST_GET = route("GET", "/v2/{name+}/manifests/{reference}");
/**
 * The token service of a bearer challenge: its URL is the challenge's `realm`, so the template is
 * only the span name (`GET {realm}`), never expanded.
 */
export const REGISTRY_TOKEN = route("GET", "{realm}");
