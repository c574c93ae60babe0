/**
 * Middleware several roles share.
 *
 * @module
 */

import type { Logger } from "../common/log.ts";
import type { Middleware } from "./router.ts";

/** Logs every 5xx answer once, with method, route template, status and the error thrown. */
export function logServerErrors(logger: Pick<Logger, "error">): Middleware {
  return async (ctx, next) => {
    const res = await next();
    if (res.status >= 500) {
      logger.error("request failed", {
        method: ctx.req.method,
        route: ctx.route,
        status: res.status,
        error: ctx.state.error,
      });
    }
    return res;
  };
}
