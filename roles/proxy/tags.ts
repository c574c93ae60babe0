/**
 * The registry's listings, from build-index: `GET /v2/_catalog` (repositories) and
 * `GET /v2/{name}/tags/list` (a repository's tags), both with `n`/`last` pagination and a
 * `Link: <…>; rel="next"` header when more follow (`registry/listing.ts`, shared with the agent).
 *
 * @module
 */

import { catalogResponse, tagListPrefix, tagListResponse } from "../../registry/listing.ts";
import { nameParam, type ProxyTags, type RegistryRoute } from "./registry.ts";

/** Registers the catalog and tag-list routes over the build-index client `tags`. */
export function registerTagRoutes(on: RegistryRoute, tags: ProxyTags): void {
  on("GET", "/v2/_catalog", async (ctx) => catalogResponse((await tags.list("")).result, ctx.url));

  on("GET", "/v2/{name+}/tags/list", async (ctx) => {
    const name = nameParam(ctx);
    return tagListResponse(name, (await tags.list(tagListPrefix(name))).result, ctx.url);
  });
}
