/**
 * Responses whose body is a few bytes in memory (an announce's JSON), and how the listener sends
 * them. For a request the role listener serves (`ctx.responseEnds` set), {@linkcode bytesResponse}
 * makes a `Response` with no body of its own, only a mark ({@linkcode bytesBodyOf}): `http/serve.ts`
 * writes the bytes in one write. A body-ful `Response` costs ~4.7 µs to build in Deno, and the
 * listener would read it back through a stream. For any other request (handled in-process) the
 * `Response` carries the bytes as usual.
 *
 * @module
 */

import type { Ctx } from "./router.ts";

const byteBodies = new WeakMap<Response, Uint8Array>();
const encoder = new TextEncoder();

/** A response whose body is `body` (a string is sent as UTF-8). */
export function bytesResponse(
  body: Uint8Array | string,
  init: ResponseInit = {},
  ctx?: Pick<Ctx, "responseEnds">,
): Response {
  if (!ctx?.responseEnds) return new Response(body as BodyInit, init);
  const response = new Response(null, init);
  byteBodies.set(response, typeof body === "string" ? encoder.encode(body) : body);
  return response;
}

/** The bytes of a response made by {@linkcode bytesResponse} for the listener, if it is one. */
export function bytesBodyOf(response: Response): Uint8Array | undefined {
  return byteBodies.get(response);
}
