/**
 * The build-index's tag API (kraken-wire.md §1.5): its routes, which the build-index server
 * registers and `cluster/tag_client.ts` (proxies, agents, neighbour build-indexes) calls, the
 * ListResponse JSON and the duplicate put's body.
 *
 * Tags travel path-escaped (`repo%3Atag`, `%2F` for slashes); `{prefix+}` and `{repo+}` take the
 * rest of the path.
 *
 * @example
 * ```ts
 * import { encodeListResponse, parseListResponse, TAG_GET } from "./tags.ts";
 * TAG_GET.spanName; // "GET /tags/{tag}"
 * const text = encodeListResponse({ Links: { next: "", self: "/list/" }, size: 1, result: ["r:t"] });
 * parseListResponse(text).result; // ["r:t"]
 * ```
 *
 * @module
 */

import { route } from "./route.ts";

/** Points a tag at a digest (`?replicate=true` also replicates it to remote clusters). */
export const TAG_PUT = route("PUT", "/tags/{tag}/digest/{digest}");
/** Whether a tag is in the build-index's storage backend. */
export const TAG_HEAD = route("HEAD", "/tags/{tag}");
/** The digest a tag points at, as text. */
export const TAG_GET = route("GET", "/tags/{tag}");
/** Backend names (`repo:tag`) under a prefix, paginated with `limit`/`offset`. */
export const LIST = route("GET", "/list/{prefix+}");
/** {@linkcode LIST} with an empty prefix. */
export const LIST_ALL = route("GET", "/list/");
/** The bare tags of one repository (deprecated upstream). */
export const REPOSITORY_TAGS = route("GET", "/repositories/{repo+}/tags");
/** The address of the origin cluster behind the build-index. */
export const ORIGIN_ADDRESS = route("GET", "/origin");
/** Stores a tag from a neighbour, body {@linkcode encodeDuplicatePut}. */
export const DUPLICATE_TAG_PUT = route("PUT", "/internal/duplicate/tags/{tag}/digest/{digest}");

/** The JSON body of {@linkcode LIST} and {@linkcode REPOSITORY_TAGS} (upstream `tagmodels.ListResponse`). */
export interface ListResponse {
  /** Pagination links; `next` is empty on the last page. */
  Links: { next: string; self: string };
  /** Number of entries in `result`. */
  size: number;
  /** `repo:tag` names (or bare tags for the repository listing). */
  result: string[];
}

/** A tag API body that does not have its protocol's shape. */
export class TagWireError extends Error {
  /** @param message what is wrong */
  constructor(message: string) {
    super(message);
    this.name = "TagWireError";
  }
}

/** A ListResponse as the build-index writes it, newline ended. */
export function encodeListResponse(body: ListResponse): string {
  return JSON.stringify(body) + "\n";
}

/**
 * Reads a ListResponse body; missing parts read as empty, as Go encodes an empty result as null.
 *
 * @throws {TagWireError} when the text is not JSON.
 */
export function parseListResponse(text: string): ListResponse {
  let body: Partial<ListResponse> | null;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw new TagWireError(`bad JSON: ${error}`);
  }
  return {
    Links: { next: body?.Links?.next ?? "", self: body?.Links?.self ?? "" },
    size: Number(body?.size ?? 0),
    result: Array.isArray(body?.result) ? body.result.map(String) : [],
  };
}

/** The duplicate put body: the write-back delay as integer nanoseconds under `delay`. */
export function encodeDuplicatePut(delayMs: number): string {
  return JSON.stringify({ delay: Math.round(delayMs * 1e6) });
}

/**
 * Reads a duplicate put body (already parsed from JSON) into the delay in ms; an absent `delay`
 * is 0.
 *
 * @throws {TagWireError} when the delay is not a non-negative number of nanoseconds.
 */
export function parseDuplicatePut(body: unknown): number {
  const ns = (body as { delay?: unknown } | null)?.delay ?? 0;
  if (typeof ns !== "number" || !Number.isFinite(ns) || ns < 0) {
    throw new TagWireError("json decode: delay must be a non-negative number of nanoseconds");
  }
  return ns / 1e6;
}
