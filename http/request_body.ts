/**
 * A request body whose read failures are the client's: a body cut short of its `Content-Length`
 * (the client hung up) or a broken chunked encoding makes Deno's body stream throw, and a handler
 * that lets that through answers 500 as if the node had failed. {@linkcode requestBody} rethrows
 * those failures as {@linkcode RequestBodyError}, which upload handlers answer with a 4xx, so a
 * disk error while the bytes are written stays a 5xx.
 *
 * ```ts
 * import { requestBody, RequestBodyError } from "./request_body.ts";
 * try {
 *   for await (const chunk of requestBody(req) ?? []) write(chunk);
 * } catch (error) {
 *   if (error instanceof RequestBodyError) return new Response(error.message, { status: 400 });
 *   throw error;
 * }
 * ```
 *
 * @module
 */

/** The request body could not be read to its end (the client's fault, answered with a 4xx). */
export class RequestBodyError extends Error {
  /** @param cause what the body stream threw */
  constructor(cause: unknown) {
    super(`request body could not be read to its end: ${(cause as Error)?.message ?? cause}`, {
      cause,
    });
    this.name = "RequestBodyError";
  }
}

/** `req`'s body, whose read errors become {@linkcode RequestBodyError}; null without a body. */
export function requestBody(req: Request): ReadableStream<Uint8Array> | null {
  const body = req.body;
  if (body === null) return null;
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
      } catch (error) {
        controller.error(new RequestBodyError(error));
        return;
      }
      if (result.done) controller.close();
      else controller.enqueue(result.value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}
