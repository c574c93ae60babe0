/**
 * Route parameters that several roles parse the same way.
 *
 * @module
 */

import { type Digest, DigestError, parseDigest, parseDigestLoose } from "../storage/digest.ts";
import type { Ctx } from "./router.ts";
import { HttpError } from "./router.ts";

/**
 * The `{digest}` parameter: strictly `sha256:<hex>`, or with `loose` also bare hex (the agent's blob
 * API, as upstream). Anything else is a 400 whose body says why.
 */
export function digestParam(ctx: Ctx, options: { loose?: boolean } = {}): Digest {
  try {
    return options.loose ? parseDigestLoose(ctx.params.digest) : parseDigest(ctx.params.digest);
  } catch (error) {
    if (error instanceof DigestError) throw new HttpError(400, error.message);
    throw error;
  }
}
