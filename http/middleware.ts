/**
 * Middleware several roles share.
 *
 * @module
 */

import type { Middleware } from "./router.ts";

/** The part of a logger this module needs. */
export interface ErrorLogger {
  /** Logs a failure. */
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** Logs every 5xx answer once, with method, route template, status and the error thrown. */
export function logServerErrors(logger: ErrorLogger): Middleware {
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
