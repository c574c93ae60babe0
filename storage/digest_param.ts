/**
 * The `{digest}` route parameter of the blob APIs, parsed the way every Kraken server does. It
 * lives with the digests rather than in `http/`, which knows nothing about what its routes carry.
 *
 * @module
 */

import type { Ctx } from "../http/router.ts";
import { HttpError } from "../http/router.ts";
import { type Digest, DigestError, parseDigest, parseDigestLoose } from "./digest.ts";

/** Options of {@linkcode digestParam}. */
export interface DigestParamOptions {
  /** Also accept bare hex (the agent's blob API, as upstream). Default false. */
  loose?: boolean;
}

/**
 * The `{digest}` parameter: strictly `sha256:<hex>`, or with `loose` also bare hex. Anything else
 * is a 400 whose body says why.
 */
export function digestParam(ctx: Ctx, options: DigestParamOptions = {}): Digest {
  try {
    return options.loose ? parseDigestLoose(ctx.params.digest) : parseDigest(ctx.params.digest);
  } catch (error) {
    if (error instanceof DigestError) throw new HttpError(400, error.message);
    throw error;
  }
}
