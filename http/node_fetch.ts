/**
 * A `fetch` over `node:http`/`node:https` that streams a request body with the `Content-Length`
 * the caller sets. Deno's `fetch` drops that header and sends every stream chunked, which S3 (and
 * most S3-compatible stores) refuse for `PutObject`/`UploadPart`; buffering a part in memory instead
 * would make memory grow with the part size. Used as the `transport` of `tracedFetch` by the S3
 * backend. Honours `signal` (aborting destroys the socket, and a pending body read fails with the
 * reason) and keeps backpressure in both directions.
 *
 * ```ts
 * import { nodeFetch } from "./node_fetch.ts";
 * const res = await nodeFetch(url, { method: "PUT", body: stream, headers: { "content-length": "5" } });
 * ```
 *
 * @module
 */

import http from "node:http";
import https from "node:https";

function headerObject(init: HeadersInit | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  new Headers(init).forEach((value, key) => out[key] = value);
  return out;
}

async function writeBody(req: http.ClientRequest, body: ReadableStream<Uint8Array>): Promise<void> {
  const reader = body.getReader();
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!req.write(value)) {
        await new Promise<void>((resolve, reject) => {
          const onDrain = () => {
            req.off("close", onClose);
            resolve();
          };
          const onClose = () => {
            req.off("drain", onDrain);
            reject(new Error("connection closed while sending the body"));
          };
          req.once("drain", onDrain);
          req.once("close", onClose);
        });
      }
    }
    req.end();
  } catch (error) {
    await reader.cancel(error).catch(() => {});
    req.destroy(error as Error);
  }
}

function responseBody(res: http.IncomingMessage): ReadableStream<Uint8Array> {
  // Once the consumer cancelled or the body ended, later socket events are ignored.
  let settled = false;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      res.on("data", (chunk: Uint8Array) => {
        if (settled) return;
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if ((controller.desiredSize ?? 0) <= 0) res.pause();
      });
      res.on("end", () => {
        if (settled) return;
        settled = true;
        controller.close();
      });
      const fail = (error: Error) => {
        if (settled) return;
        settled = true;
        controller.error(error);
      };
      res.on("error", fail);
      res.on("close", () => fail(new Error("connection closed before the body ended")));
      res.pause();
    },
    pull() {
      res.resume();
    },
    cancel() {
      settled = true;
      res.destroy();
    },
  }, { highWaterMark: 4 });
}

/**
 * Sends a request the way `fetch` would, but with the caller's `Content-Length` on a streamed body
 * (see the module doc). Only `method`, `headers`, `body` (stream, bytes or string) and `signal` of
 * `init` are used.
 */
export function nodeFetch(url: string, init: RequestInit = {}): Promise<Response> {
  const target = new URL(url);
  const method = (init.method ?? "GET").toUpperCase();
  const client = target.protocol === "https:" ? https : http;
  const signal = init.signal ?? undefined;
  return new Promise<Response>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const req = client.request(target, { method, headers: headerObject(init.headers) });
    const onAbort = () => req.destroy(signal?.reason as Error);
    signal?.addEventListener("abort", onAbort, { once: true });
    req.on("error", (error) => {
      signal?.removeEventListener("abort", onAbort);
      reject(signal?.aborted ? signal.reason : error);
    });
    req.on("response", (res) => {
      res.on("close", () => signal?.removeEventListener("abort", onAbort));
      const headers = new Headers();
      for (const [key, value] of Object.entries(res.headers)) {
        if (value === undefined) continue;
        for (const v of Array.isArray(value) ? value : [value]) headers.append(key, v);
      }
      const status = res.statusCode ?? 502;
      const empty = method === "HEAD" || status === 204 || status === 304;
      if (empty) res.resume();
      resolve(
        new Response(empty ? null : responseBody(res), {
          status,
          statusText: res.statusMessage,
          headers,
        }),
      );
    });
    const body = init.body;
    if (body === undefined || body === null) {
      req.end();
    } else if (body instanceof ReadableStream) {
      void writeBody(req, body);
    } else if (body instanceof Uint8Array || typeof body === "string") {
      req.end(body);
    } else {
      req.destroy(new TypeError("nodeFetch: body must be a stream, bytes or a string"));
    }
  });
}
