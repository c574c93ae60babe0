/**
 * The registry listings both registries answer from build-index names (`repo:tag`):
 * `GET /v2/_catalog` (repositories) and `GET /v2/<name>/tags/list` (a repository's tags), with
 * `n`/`last` pagination and a `Link: <…>; rel="next"` header when more follow.
 *
 * Build-index also holds records that are not tags (referrer records, `registry/referrers.ts`);
 * their tag part contains `/`, which no registry tag can, so {@linkcode isRegistryTag} keeps them
 * out of tag lists.
 *
 * ```ts
 * import { tagListResponse } from "./listing.ts";
 * const res = tagListResponse("library/app", ["library/app:v1", "library/app:v2"], url);
 * ```
 *
 * @module
 */

import { RegistryError } from "./errors.ts";

const JSON_TYPE = { "content-type": "application/json; charset=utf-8" };

/** `n` and `last` of the listing endpoints (`n = 0` means everything). */
function pageParams(url: URL): { n: number; last: string } {
  const rawN = url.searchParams.get("n");
  if (rawN !== null && !/^[1-9]\d*$/.test(rawN)) {
    throw new RegistryError(
      "UNSUPPORTED",
      `invalid page size n=${JSON.stringify(rawN)}`,
      undefined,
      400,
    );
  }
  return { n: rawN === null ? 0 : Number(rawN), last: url.searchParams.get("last") ?? "" };
}

/** One page of sorted `items` after `last`; `n = 0` means everything. */
function paginate(items: string[], n: number, last: string): { page: string[]; next?: string } {
  const rest = last === "" ? items : items.filter((i) => i > last);
  if (n === 0 || rest.length <= n) return { page: rest };
  const page = rest.slice(0, n);
  return { page, next: page[page.length - 1] };
}

/** Whether the tag part of a build-index name is a registry tag (not a referrer record). */
export function isRegistryTag(tag: string): boolean {
  return !tag.includes("/");
}

/** The repository and tag of a build-index name `repo:tag`. */
export function splitTagName(name: string): { repo: string; tag: string } {
  const at = name.lastIndexOf(":");
  return { repo: name.slice(0, at), tag: name.slice(at + 1) };
}

/** The `GET /v2/_catalog` answer over every build-index name. */
export function catalogResponse(names: string[], url: URL): Response {
  const { n, last } = pageParams(url);
  const repos = [...new Set(names.map((t) => splitTagName(t).repo))].sort();
  const { page, next } = paginate(repos, n, last);
  const headers: Record<string, string> = { ...JSON_TYPE };
  if (next) headers.link = `</v2/_catalog?n=${n}&last=${encodeURIComponent(next)}>; rel="next"`;
  return new Response(JSON.stringify({ repositories: page }), { headers });
}

/**
 * The `GET /v2/<name>/tags/list` answer over the build-index names listed under
 * `<name>/_manifests/tags`.
 * @throws {RegistryError} `NAME_UNKNOWN` when the repository has no tag; `UNSUPPORTED` (400) for a bad `n`
 */
export function tagListResponse(name: string, names: string[], url: URL): Response {
  const { n, last } = pageParams(url);
  const all = names.map(splitTagName)
    .filter((t) => t.repo === name && isRegistryTag(t.tag))
    .map((t) => t.tag)
    .sort();
  if (all.length === 0) {
    throw new RegistryError("NAME_UNKNOWN", "repository name not known to registry", { name });
  }
  const { page, next } = paginate(all, n, last);
  const headers: Record<string, string> = { ...JSON_TYPE };
  if (next) {
    headers.link = `</v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(next)}>; rel="next"`;
  }
  return new Response(JSON.stringify({ name, tags: page }), { headers });
}

/** The build-index listing prefix of a repository's tags. */
export function tagListPrefix(name: string): string {
  return `${name}/_manifests/tags`;
}
