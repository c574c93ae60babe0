/**
 * The testfs storage server's protocol (upstream `lib/backend/testfs`, kraken-wire.md §1.7):
 * the routes that `storage/backend/testfs_server.ts` serves and `storage/backend/testfs.ts`
 * calls. `{path+}` is a slash-separated path under the server's root, each segment
 * path-escaped.
 *
 * | Route | Answer |
 * |---|---|
 * | `HEAD /files/{path+}` | 200 + `Size` header, or 404 |
 * | `GET /files/{path+}` | the bytes, or 404 |
 * | `POST /files/{path+}` | 200 once the body is stored |
 * | `GET /list/{path+}` | JSON array of paths relative to the root (`null` when empty) |
 *
 * @example
 * ```ts
 * import { TESTFS_STAT } from "./testfs.ts";
 * import { expand } from "./route.ts";
 * expand(TESTFS_STAT, { path: "blobs/ab/cd" }); // "/files/blobs/ab/cd"
 * ```
 *
 * @module
 */

import { route } from "./route.ts";

const FILES = "/files/{path+}";

/** Size of a stored file, in the `Size` header. */
export const TESTFS_STAT = route("HEAD", FILES);
/** A stored file's bytes. */
export const TESTFS_DOWNLOAD = route("GET", FILES);
/** Stores the body as a file. */
export const TESTFS_UPLOAD = route("POST", FILES);
/** Files under a directory. */
export const TESTFS_LIST = route("GET", "/list/{path+}");
/** Liveness. */
export const TESTFS_HEALTH = route("GET", "/health");
