/**
 * The Google Cloud Storage JSON API calls of the `gcs` backend (`storage/backend/gcs.ts`), and the
 * OAuth2 token exchange of a service-account key. `{bucket}` is the bucket name and `{object}`
 * the object name percent-encoded as one segment (slashes included), as the JSON API wants.
 *
 * | Route | Answer |
 * |---|---|
 * | `GET /storage/v1/b/{bucket}` | the bucket's metadata, or 404 (readiness) |
 * | `GET /storage/v1/b/{bucket}/o/{object}` | the object's metadata (`size`), or 404 |
 * | `GET /storage/v1/b/{bucket}/o/{object}?alt=media` | the bytes (206 for a `Range`), or 404 |
 * | `GET /storage/v1/b/{bucket}/o?prefix=&maxResults=&pageToken=` | `{items: [{name}], nextPageToken}` |
 * | `POST /upload/storage/v1/b/{bucket}/o?uploadType=resumable&name=` | 200, `Location`: the session URI |
 * | `PUT {session}` with `Content-Range: bytes a-b/total` | 308 (`Range: bytes=0-n` stored so far), or 200/201 with the object |
 * | `PUT {session}` with `Content-Range: bytes *\/total`, no body | the same: the stored offset, or the finished object |
 * | `POST /upload/storage/v1/b/{bucket}/o?uploadType=media&name=` | 200 with the object (one-shot streams) |
 * | `DELETE /storage/v1/b/{bucket}/o/{object}` | 204 |
 * | `POST {token_uri}` (form `grant_type`, `assertion`) | `{access_token, expires_in}` |
 *
 * @example
 * ```ts
 * import { GCS_OBJECT_GET } from "./gcs.ts";
 * import { expand } from "./route.ts";
 * expand(GCS_OBJECT_GET, { bucket: "b", object: encodeURIComponent("docker/x") });
 * // "/storage/v1/b/b/o/docker%2Fx"
 * ```
 *
 * @module
 */

import { route } from "./route.ts";

/** A bucket's metadata. */
export const GCS_BUCKET_GET = route("GET", "/storage/v1/b/{bucket}");
/** An object's metadata, or (with `alt=media`) its bytes. */
export const GCS_OBJECT_GET = route("GET", "/storage/v1/b/{bucket}/o/{object}");
/** Deletes an object. */
export const GCS_OBJECT_DELETE = route("DELETE", "/storage/v1/b/{bucket}/o/{object}");
/** Object names under a prefix, one page. */
export const GCS_OBJECT_LIST = route("GET", "/storage/v1/b/{bucket}/o");
/** Starts a resumable upload (`uploadType=resumable`) or sends a whole object (`media`). */
export const GCS_UPLOAD_START = route("POST", "/upload/storage/v1/b/{bucket}/o");
/** A chunk of a resumable upload, or the query of its stored offset: the session URI. */
export const GCS_UPLOAD_CHUNK = route("PUT", "{session}");
/** The OAuth2 token exchange at a service account's `token_uri`. */
export const GCS_TOKEN = route("POST", "{token_uri}");
