/**
 * The build-index's listing routes: `GET /list/{prefix+}` (a ListResponse of backend names) and
 * `GET /repositories/{repo+}/tags` (a ListResponse of bare tags), with upstream's optional
 * `limit`/`offset` pagination.
 *
 * @module
 */

import { type Ctx, HttpError, type Router } from "../../http/router.ts";
import type { BuildIndexService } from "./service.ts";
import { encodeListResponse, LIST, LIST_ALL, REPOSITORY_TAGS } from "../../wire/tags.ts";

/**
 * A listing prefix or repository as the client sent it, refused (400) when a `.` or `..` segment or
 * a control character would make the backend list outside the tag tree (upstream passes it on).
 */
function listPath(value: string, what: string): string {
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) {
    throw new HttpError(400, `${what} contains control characters`);
  }
  if (value.split("/").some((segment) => segment === "." || segment === "..")) {
    throw new HttpError(
      400,
      `${what} ${JSON.stringify(value.slice(0, 200))} has an invalid path segment`,
    );
  }
  return value;
}

/** Page size when pagination is asked for without a `limit` (upstream's default). */
const DEFAULT_PAGE_SIZE = 250;

/** Reads `limit`/`offset` like upstream: unknown or repeated keys and `limit=0` are 400. */
function pagination(url: URL): { paginated: boolean; limit: number; offset: string } {
  const seen = new Set<string>();
  for (const key of url.searchParams.keys()) {
    if (key !== "limit" && key !== "offset") throw new HttpError(400, `invalid query key ${key}`);
    if (seen.has(key)) throw new HttpError(400, `query key ${key} repeated`);
    seen.add(key);
  }
  const rawLimit = url.searchParams.get("limit");
  let limit = DEFAULT_PAGE_SIZE;
  if (rawLimit !== null) {
    if (!/^\d+$/.test(rawLimit) || Number(rawLimit) === 0) {
      throw new HttpError(400, `invalid limit ${JSON.stringify(rawLimit)}`);
    }
    limit = Number(rawLimit);
  }
  return { paginated: seen.size > 0, limit, offset: url.searchParams.get("offset") ?? "" };
}

/**
 * Builds a ListResponse. Pages are cut from the sorted names; the continuation token is the last
 * name of the page, so a page boundary survives tags added in between.
 */
function listResponse(ctx: Ctx, names: string[], map: (n: string) => string = (n) => n): Response {
  const { paginated, limit, offset } = pagination(ctx.url);
  let page = names;
  let next = "";
  if (paginated) {
    const start = offset === "" ? 0 : names.findIndex((n) => n > offset);
    page = start < 0 ? [] : names.slice(start, start + limit);
    if (start >= 0 && start + limit < names.length) {
      const query = new URLSearchParams();
      if (ctx.url.searchParams.has("limit")) query.set("limit", String(limit));
      query.set("offset", page[page.length - 1]);
      next = `${ctx.url.pathname}?${query}`;
    }
  }
  const result = page.map(map);
  const body = {
    Links: { next, self: ctx.url.pathname + ctx.url.search },
    size: result.length,
    result,
  };
  return new Response(encodeListResponse(body), {
    headers: { "content-type": "application/json" },
  });
}

/** Registers the listing routes over `service` on `router`. */
export function registerListRoutes(router: Router, service: BuildIndexService): void {
  const list = async (ctx: Ctx, prefix: string) => listResponse(ctx, await service.list(prefix));
  router.route(LIST_ALL, (ctx) => list(ctx, ""));
  router.route(LIST, (ctx) => list(ctx, listPath(ctx.params.prefix, "prefix")));

  router.route(REPOSITORY_TAGS, async (ctx) => {
    const repo = listPath(ctx.params.repo, "repository");
    const names = await service.list(`${repo}/_manifests/tags`, repo);
    return listResponse(ctx, names, (n) => n.slice(n.lastIndexOf(":") + 1));
  });
}
