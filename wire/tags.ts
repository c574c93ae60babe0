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
/** Schedules the replication of a stored tag to every remote whose regex matches it. */
export const TAG_REPLICATE = route("POST", "/remotes/tags/{tag}");
/** Schedules a neighbour's replication tasks, body {@linkcode encodeDuplicateReplicate}. */
export const DUPLICATE_TAG_REPLICATE = route(
  "POST",
  "/internal/duplicate/remotes/tags/{tag}/digest/{digest}",
);

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

/** A duplicate replicate body: the tag's dependencies and the tasks' delay. */
export interface DuplicateReplicate {
  /** `sha256:<hex>` strings, the tagged digest among them. */
  dependencies: string[];
  /** Delay before the tasks may run, ms. */
  delayMs: number;
}

/** The duplicate replicate body: `{"dependencies": [...], "delay": <integer ns>}`. */
export function encodeDuplicateReplicate(body: DuplicateReplicate): string {
  return JSON.stringify({
    dependencies: body.dependencies,
    delay: Math.round(body.delayMs * 1e6),
  });
}

/**
 * Reads a duplicate replicate body (already parsed from JSON). Keys match case-insensitively as
 * Go's do; absent dependencies are none (Go's `null`), an absent delay is 0.
 *
 * @throws {TagWireError} when the body is not an object, the dependencies not a list of strings
 * or the delay not a non-negative number of nanoseconds.
 */
export function parseDuplicateReplicate(body: unknown): DuplicateReplicate {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new TagWireError("json decode: duplicate replicate body must be an object");
  }
  const field = (name: string) => Object.entries(body).find(([k]) => k.toLowerCase() === name)?.[1];
  const deps = field("dependencies") ?? [];
  if (!Array.isArray(deps) || deps.some((d) => typeof d !== "string")) {
    throw new TagWireError("json decode: dependencies must be a list of digest strings");
  }
  const ns = field("delay") ?? 0;
  if (typeof ns !== "number" || !Number.isFinite(ns) || ns < 0) {
    throw new TagWireError("json decode: delay must be a non-negative number of nanoseconds");
  }
  return { dependencies: deps, delayMs: ns / 1e6 };
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
