/**
 * Responses whose body is a file ({@linkcode FileBody}), and how the listener sends them.
 *
 * {@linkcode fileResponse} makes an ordinary `Response` (its body is the file's web stream, so an
 * in-process reader sees nothing special; through the role listener it has no body of its own) and
 * marks it; `http/serve.ts` recognises the mark
 * ({@linkcode fileBodyOf}) and sends the file with {@linkcode sendFileBody} instead of reading the
 * stream: the file is read straight into a few reused buffers, each written to the socket as it
 * is. The socket keeps a reference to a written chunk until its write completes (nothing is
 * copied), so a buffer goes back to the pool only from its write's callback; at most
 * {@linkcode SEND_DEPTH} writes are outstanding per response. Whoever tracks the body (the
 * request's body tracker, `tracing/http.ts`) waits on {@linkcode FileBody.onDone}.
 *
 * @module
 */

import type { ServerResponse } from "node:http";
import { FileBody } from "../storage/file_body.ts";
import type { Ctx } from "./router.ts";

/** Size of the buffers a file body is sent in. */
export const SEND_CHUNK = 1 << 20;
/** Writes a file response keeps outstanding: one being sent, the next ones read ahead. */
export const SEND_DEPTH = 3;
/** Free buffers the pool keeps between responses (the rest are left to the collector). */
const POOL_KEEP = 8;

const fileBodies = new WeakMap<Response, FileBody>();

/**
 * A response whose body is `body`; `init` should declare its `Content-Length`. For a request the
 * role listener serves (`ctx.responseEnds` set: `http/serve.ts` sends a file body from the file),
 * the response carries no web stream, only the mark: a stream and a body-ful `Response` cost a
 * cached GET ~7 µs, more than the rest of its response. For any other request (handled in-process)
 * the body is the file's stream.
 */
export function fileResponse(
  body: FileBody,
  init: ResponseInit = {},
  ctx?: Pick<Ctx, "responseEnds">,
): Response {
  const response = new Response(ctx?.responseEnds ? null : body.stream, init);
  fileBodies.set(response, body);
  return response;
}

/** The file body of a response made by {@linkcode fileResponse}, unless its stream was used. */
export function fileBodyOf(response: Response): FileBody | undefined {
  const body = fileBodies.get(response);
  if (body === undefined || response.bodyUsed || response.body?.locked) return undefined;
  return body;
}

/** Reused send buffers, shared by every response of the process. */
export class SendBufferPool {
  readonly #free: Uint8Array[] = [];
  /** Buffers allocated so far (a test's view of reuse). */
  allocated = 0;

  /** @param size bytes per buffer */
  constructor(readonly size: number = SEND_CHUNK) {}

  /** A buffer nobody holds. */
  take(): Uint8Array {
    const buf = this.#free.pop();
    if (buf !== undefined) return buf;
    this.allocated++;
    return new Uint8Array(this.size);
  }

  /** Returns a buffer whose last use (a socket write) has completed. */
  give(buf: Uint8Array): void {
    if (this.#free.length < POOL_KEEP) this.#free.push(buf);
  }
}

const sharedPool = new SendBufferPool();

/** What {@linkcode sendFileBody} writes to: a `node:http` response, or a test's stand-in. */
export type FileSink = Pick<
  ServerResponse,
  "write" | "end" | "once" | "off" | "destroy" | "destroyed"
>;

/**
 * Sends `body` on `res` (headers already written) and ends the response, then ends the body: with
 * an error when the client went away or the file failed, which also destroys the response.
 */
export async function sendFileBody(
  res: FileSink,
  body: FileBody,
  pool: SendBufferPool = sharedPool,
): Promise<void> {
  let outstanding = 0;
  let wake: (() => void) | undefined;
  let closed = false;
  const onClose = () => {
    closed = true;
    wake?.();
  };
  // Waits until at most `limit` writes are outstanding, then checks the client is still there.
  const settle = async (limit: number) => {
    while (outstanding > limit && !closed) {
      await new Promise<void>((resolve) => wake = resolve);
      wake = undefined;
    }
    assertOpen();
  };
  const assertOpen = () => {
    if (closed || res.destroyed) throw new Error("client closed the connection");
  };
  res.once("close", onClose);
  try {
    for (;;) {
      await settle(SEND_DEPTH - 1);
      const buf = pool.take();
      let n: number | null;
      try {
        n = await body.read(buf);
      } catch (error) {
        pool.give(buf);
        throw error;
      }
      if (n === null) {
        pool.give(buf);
        if (body.sent < body.length) {
          throw new Error(`file ended after ${body.sent} of ${body.length} bytes`);
        }
        break;
      }
      assertOpen();
      outstanding++;
      // The socket holds the chunk until this runs; a write that never completes (the connection
      // was destroyed) keeps its buffer out of the pool for good.
      res.write(buf.subarray(0, n), (error) => {
        outstanding--;
        if (!error) pool.give(buf);
        wake?.();
      });
    }
    // The body is done once its last byte has left (and every buffer is back).
    await settle(0);
    res.end();
    body.finish();
  } catch (error) {
    body.finish(error);
    res.destroy();
  } finally {
    res.off("close", onClose);
  }
}
