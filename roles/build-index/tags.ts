/**
 * The build-index's tag routes (kraken-wire.md §1.5):
 *
 * | Method | Route | Answer |
 * |---|---|---|
 * | PUT | `/tags/{tag}/digest/{digest}[?replicate=]` | put tag; 500 with upstream's messages; 400 bad `replicate` |
 * | HEAD | `/tags/{tag}` | backend only: 200 / 404 |
 * | GET | `/tags/{tag}` | disk, then backend: 200 `sha256:<hex>` / 404 |
 * | PUT | `/internal/duplicate/tags/{tag}/digest/{digest}` | `{"delay": ns}`: store from a neighbour; 400 bad body |
 * | POST | `/remotes/tags/{tag}` | schedule the tag's replication again; 404 unknown tag |
 * | POST | `/internal/duplicate/remotes/tags/{tag}/digest/{digest}` | `{"dependencies": [...], "delay": ns}`: a neighbour's replication tasks; 400 bad body |
 *
 * @module
 */

import { type Ctx, HttpError, type Router } from "../../http/router.ts";
import { digestParam } from "../../storage/digest_param.ts";
import { type Digest, parseDigest } from "../../storage/digest.ts";
import { type BuildIndexService, PutTagError } from "./service.ts";
import { InvalidTagError, validateTag } from "./tag_store.ts";
import {
  DUPLICATE_TAG_PUT,
  DUPLICATE_TAG_REPLICATE,
  parseDuplicatePut,
  parseDuplicateReplicate,
  TAG_GET,
  TAG_HEAD,
  TAG_PUT,
  TAG_REPLICATE,
  TagWireError,
} from "../../wire/tags.ts";

/** Go's `strconv.ParseBool` spellings. */
const GO_TRUE = new Set(["1", "t", "T", "TRUE", "true", "True"]);
const GO_FALSE = new Set(["0", "f", "F", "FALSE", "false", "False"]);

function tagParam(ctx: Ctx): string {
  try {
    return validateTag(ctx.params.tag);
  } catch (error) {
    if (error instanceof InvalidTagError) throw new HttpError(400, error.message);
    throw error;
  }
}

/** Registers the tag routes over `service` on `router`. */
export function registerTagRoutes(router: Router, service: BuildIndexService): void {
  router.route(TAG_PUT, async (ctx) => {
    const tag = tagParam(ctx);
    const digest = digestParam(ctx);
    const raw = ctx.url.searchParams.get("replicate");
    if (raw !== null && !GO_TRUE.has(raw) && !GO_FALSE.has(raw)) {
      throw new HttpError(400, `invalid replicate value ${JSON.stringify(raw)}`);
    }
    try {
      await service.putTag(tag, digest, raw !== null && GO_TRUE.has(raw));
    } catch (error) {
      if (error instanceof PutTagError) throw new HttpError(error.status, error.message);
      throw error;
    }
    return new Response(null, { status: 200 });
  });

  router.route(TAG_HEAD, async (ctx) => {
    const found = await service.hasTag(tagParam(ctx));
    if (!found) throw new HttpError(404);
    return new Response(null, { status: 200 });
  });

  router.route(TAG_GET, async (ctx) => {
    const digest = await service.getTag(tagParam(ctx));
    if (!digest) throw new HttpError(404);
    return new Response(digest.toString());
  });

  router.route(TAG_REPLICATE, async (ctx) => {
    try {
      await service.replicateTag(tagParam(ctx));
    } catch (error) {
      if (error instanceof PutTagError) throw new HttpError(error.status, error.message);
      throw error;
    }
    return new Response(null, { status: 200 });
  });
}

/** Registers the neighbour-duplication route over `service` on `router`. */
export function registerDuplicateRoutes(router: Router, service: BuildIndexService): void {
  router.route(DUPLICATE_TAG_PUT, async (ctx) => {
    const tag = tagParam(ctx);
    const digest = digestParam(ctx);
    let delayMs: number;
    try {
      delayMs = parseDuplicatePut(await ctx.req.json());
    } catch (error) {
      if (error instanceof TagWireError) throw new HttpError(400, error.message);
      throw new HttpError(400, `json decode: ${(error as Error).message}`);
    }
    try {
      await service.duplicatePut(tag, digest, delayMs);
    } catch (error) {
      if (error instanceof PutTagError) throw new HttpError(error.status, error.message);
      throw error;
    }
    return new Response(null, { status: 200 });
  });

  router.route(DUPLICATE_TAG_REPLICATE, async (ctx) => {
    const tag = tagParam(ctx);
    const digest = digestParam(ctx);
    let deps: Digest[];
    let delayMs: number;
    try {
      const body = parseDuplicateReplicate(await ctx.req.json());
      deps = body.dependencies.map((d) => parseDigest(d));
      delayMs = body.delayMs;
    } catch (error) {
      throw new HttpError(400, `json decode: ${(error as Error).message}`);
    }
    try {
      service.duplicateReplicate(tag, digest, deps, delayMs);
    } catch (error) {
      if (error instanceof PutTagError) throw new HttpError(error.status, error.message);
      throw error;
    }
    return new Response(null, { status: 200 });
  });
}
