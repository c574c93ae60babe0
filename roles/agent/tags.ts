/**
 * Tag resolution on the agent: `repo:tag` → manifest digest through build-index, traced as
 * `agent.resolve_tag`, and the agent server's `GET /tags/{tag}` (200 `sha256:<hex>`, 404, the
 * build-index's own 4xx and message when it refused the tag, or 500 `get tag: …` when it could not
 * be asked). The registry resolves manifest tags the same way.
 *
 * @module
 */

import { tagRefusal } from "../../cluster/tag_client.ts";
import { HttpError, type Router } from "../../http/router.ts";
import type { Digest } from "../../storage/digest.ts";
import { ATTR, SPAN, withSpan } from "../../tracing/mod.ts";

/** What resolves `repo:tag` to a manifest digest (a build-index cluster client). */
export interface TagResolver {
  /** The digest, or null when the tag is unknown. */
  get(tag: string): Promise<Digest | null>;
}

/**
 * Resolves `repo:tag` in span `agent.resolve_tag` (attributes `tag`, `exists`, and `digest` when found).
 * @throws whatever the resolver throws
 */
export function resolveTag(tags: TagResolver, tag: string): Promise<Digest | null> {
  return withSpan(SPAN.agentResolveTag, { [ATTR.tag]: tag }, async (span) => {
    const digest = await tags.get(tag);
    span.setAttribute(ATTR.exists, digest !== null);
    if (digest) span.setAttribute(ATTR.digest, digest.toString());
    return digest;
  });
}

/** Registers `GET /tags/{tag}` over `tags`. */
export function registerTagRoutes(router: Router, tags: TagResolver): void {
  router.get("/tags/{tag}", async (ctx) => {
    let digest: Digest | null;
    try {
      digest = await resolveTag(tags, ctx.params.tag);
    } catch (error) {
      const refusal = tagRefusal(error);
      if (refusal) throw new HttpError(refusal.status, `get tag: ${refusal.message}`);
      throw new HttpError(500, `get tag: ${(error as Error).message}`);
    }
    if (digest === null) throw new HttpError(404);
    return new Response(digest.toString());
  });
}
