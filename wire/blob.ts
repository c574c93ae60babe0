/**
 * The origin's blob and upload API (kraken-wire.md §1.4), which the origin's blob server
 * registers and `cluster/blob_client.ts` (agents, proxies, trackers, other origins) calls, plus
 * the JSON body of the duplicate commit.
 *
 * Uploads are three requests on one family: `POST …/uploads` starts one (the origin answers its
 * id in `Location`), `PATCH …/uploads/{uid}` sends a `Content-Range` chunk, `PUT …/uploads/{uid}`
 * commits. The public family writes back and replicates; the internal one only stores; the
 * duplicate commit is how a replica receives a blob, with a delayed write-back.
 *
 * @example
 * ```ts
 * import { BLOB_DOWNLOAD } from "./blob.ts";
 * import { expand } from "./route.ts";
 * expand(BLOB_DOWNLOAD, { namespace: "library%2Fubuntu", digest: "sha256:ab" });
 * // "/namespace/library%2Fubuntu/blobs/sha256:ab"
 * ```
 *
 * @module
 */

import { route } from "./route.ts";

const PUBLIC = "/namespace/{namespace}/blobs/{digest}";
const INTERNAL = "/internal/blobs/{digest}";
const STAT = "/internal/namespace/{namespace}/blobs/{digest}";

/** The ring's replica set of a digest, in the `Origin-Locations` header. */
export const BLOB_LOCATIONS = route("GET", "/blobs/{digest}/locations");
/** Downloads a blob (202 while the origin fetches it from its backend). */
export const BLOB_DOWNLOAD = route("GET", PUBLIC);
/** Starts a backend fetch of a blob without waiting for it. */
export const BLOB_PREFETCH = route("POST", `${PUBLIC}/prefetch`);
/**
 * Sends a cached blob to a remote origin cluster (`{remote}`: its `host:port`, unescaped) with
 * the public upload protocol; a blob not cached yet is fetched from the backend first (202).
 */
export const REPLICATE_TO_REMOTE = route("POST", `${PUBLIC}/remote/{remote}`);
/** Starts a public upload (`?size=` optional). */
export const UPLOAD_START = route("POST", `${PUBLIC}/uploads`);
/** Sends one chunk of a public upload. */
export const UPLOAD_PATCH = route("PATCH", `${PUBLIC}/uploads/{uid}`);
/** Commits a public upload: write-back and replication to the other replicas. */
export const UPLOAD_COMMIT = route("PUT", `${PUBLIC}/uploads/{uid}`);
/** Starts an internal upload (store only). */
export const INTERNAL_UPLOAD_START = route("POST", `${INTERNAL}/uploads`);
/** Sends one chunk of an internal upload. */
export const INTERNAL_UPLOAD_PATCH = route("PATCH", `${INTERNAL}/uploads/{uid}`);
/** Commits an internal upload. */
export const INTERNAL_UPLOAD_COMMIT = route("PUT", `${INTERNAL}/uploads/{uid}`);
/** Deletes a blob from the origin's cache. */
export const BLOB_DELETE = route("DELETE", INTERNAL);
/** Regenerates a blob's metainfo. */
export const METAINFO_REGENERATE = route("POST", `${INTERNAL}/metainfo`);
/** Stats a blob (`?local=true`: this origin's cache only); the size is the Content-Length. */
export const BLOB_STAT = route("HEAD", STAT);
/** A blob's metainfo from the origin. */
export const ORIGIN_METAINFO = route("GET", `${STAT}/metainfo`);
/** Commits a public upload on a replica, body {@linkcode encodeDuplicateCommit}. */
export const DUPLICATE_COMMIT = route(
  "PUT",
  "/internal/duplicate/namespace/{namespace}/blobs/{digest}/uploads/{uid}",
);

/** A duplicate commit body that is not `{"Delay": <integer ns>}`. */
export class DuplicateCommitError extends Error {
  /** @param message what is wrong */
  constructor(message: string) {
    super(message);
    this.name = "DuplicateCommitError";
  }
}

/** The duplicate commit body: Go's `time.Duration` (integer ns) under its field name `Delay`. */
export function encodeDuplicateCommit(delayMs: number): string {
  return JSON.stringify({ Delay: Math.round(delayMs * 1e6) });
}

/**
 * Reads a duplicate commit body (already parsed from JSON) into the delay in ms; keys match
 * case-insensitively as Go's do, an absent `Delay` is 0 and a negative one counts as 0.
 *
 * @throws {DuplicateCommitError} when the body is not an object or the delay not integer ns.
 */
export function parseDuplicateCommit(body: unknown): number {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new DuplicateCommitError("json decode: duplicate commit body must be an object");
  }
  const entry = Object.entries(body).find(([k]) => k.toLowerCase() === "delay");
  const ns = entry?.[1] ?? 0;
  if (typeof ns !== "number" || !Number.isInteger(ns)) {
    throw new DuplicateCommitError(
      `json decode: Delay must be integer nanoseconds, got ${JSON.stringify(ns)}`,
    );
  }
  return Math.max(0, ns / 1e6);
}
