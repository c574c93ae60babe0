/**
 * The registry's listings, from build-index: `GET /v2/_catalog` (repositories) and
 * `GET /v2/{name}/tags/list` (a repository's tags), both with `n`/`last` pagination and a
 * `Link: <…>; rel="next"` header when more follow.
 *
 * @module
 */

import { RegistryError } from "../../registry/errors.ts";
import { nameParam, type ProxyTags, type RegistryRoute } from "./registry.ts";

/** `n` and `last` of the listing endpoints. */
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

/** Registers the catalog and tag-list routes over the build-index client `tags`. */
export function registerTagRoutes(on: RegistryRoute, tags: ProxyTags): void {
  on("GET", "/v2/_catalog", async (ctx) => {
    const { n, last } = pageParams(ctx.url);
    const names = (await tags.list("")).result;
    const repos = [...new Set(names.map((t) => t.slice(0, t.lastIndexOf(":"))))].sort();
    const { page, next } = paginate(repos, n, last);
    const headers: Record<string, string> = { "content-type": "application/json; charset=utf-8" };
    if (next) headers.link = `</v2/_catalog?n=${n}&last=${encodeURIComponent(next)}>; rel="next"`;
    return new Response(JSON.stringify({ repositories: page }), { headers });
  });

  on("GET", "/v2/{name+}/tags/list", async (ctx) => {
    const name = nameParam(ctx);
    const { n, last } = pageParams(ctx.url);
    const listed = (await tags.list(`${name}/_manifests/tags`)).result;
    const all = listed
      .filter((t) => t.slice(0, t.lastIndexOf(":")) === name)
      .map((t) => t.slice(t.lastIndexOf(":") + 1))
      .sort();
    if (all.length === 0) {
      throw new RegistryError("NAME_UNKNOWN", "repository name not known to registry", { name });
    }
    const { page, next } = paginate(all, n, last);
    const headers: Record<string, string> = { "content-type": "application/json; charset=utf-8" };
    if (next) {
      headers.link = `</v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(next)}>; rel="next"`;
    }
    return new Response(JSON.stringify({ name, tags: page }), { headers });
  });
}
