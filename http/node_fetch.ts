/**
 * The one adapter of `node:http`/`node:https` to a `fetch` shape, for the two things Deno's own
 * `fetch` cannot do:
 *
 * - **A streamed body with the caller's `Content-Length`.** Deno's `fetch` drops that header and
 *   sends every stream chunked, which S3 (and most S3-compatible stores) refuse for
 *   `PutObject`/`UploadPart`; buffering a part instead would make memory grow with the part size.
 * - **A TLS agent**: `options.agent` (an `https.Agent` with CAs, a client certificate, and a
 *   verification name other than the URL's host, as upstream's `tls.name`), which
 *   `Deno.createHttpClient` cannot express. The roles' TLS client (`tls_client.ts`) and the
 *   backends' (`storage/backend/transport.ts`) send through it.
 *
 * A body given as bytes or a string gets its `Content-Length`; a stream is sent chunked unless
 * the caller sets one. `signal` is honoured (aborting destroys the socket, and a pending body read
 * fails with the reason), and backpressure is kept in both directions.
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

/** Options of {@linkcode nodeFetch}. */
export interface NodeFetchOptions {
  /**
   * The agent to send with (its connections, TLS settings, keep-alive): an `https.Agent` for
   * `https:` URLs, an `http.Agent` for `http:`. Default: the module's global agent.
   */
  agent?: http.Agent;
}

/** Statuses whose answer has no body (the Fetch standard's null-body statuses). */
const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

/** The body as bytes, `undefined` for none or a stream (sent as it comes). */
async function bodyBytes(body: BodyInit | null | undefined): Promise<Uint8Array | undefined> {
  if (body === null || body === undefined || body instanceof ReadableStream) return undefined;
  if (body instanceof Uint8Array) return body;
  if (typeof body === "string") return new TextEncoder().encode(body);
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) {
    return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  }
  return new Uint8Array(await new Response(body).arrayBuffer());
}

/** Resolves once `req` can take more, rejects when its connection closes first. */
function drained(req: http.ClientRequest): Promise<void> {
  return new Promise<void>((resolve, reject) => {
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

async function writeBody(req: http.ClientRequest, body: ReadableStream<Uint8Array>): Promise<void> {
  const reader = body.getReader();
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!req.write(value)) await drained(req);
    }
    req.end();
  } catch (error) {
    await reader.cancel(error).catch(() => {});
    req.destroy(error as Error);
  }
}

function responseBody(
  res: http.IncomingMessage,
  signal: AbortSignal | undefined,
): ReadableStream<Uint8Array> {
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
      // Destroying the request does not always end a response under Deno's node:http, so an
      // abort fails a pending read itself.
      const onAbort = () => {
        fail(signal!.reason);
        res.destroy();
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      res.on("close", () => signal?.removeEventListener("abort", onAbort));
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
 * Sends a request the way `fetch` would, over `node:http(s)` (see the module doc). Of `init`,
 * `method`, `headers`, `body` and `signal` are used; a `Content-Length` the caller sets on a
 * streamed body is sent as is.
 */
export async function nodeFetch(
  url: string | URL,
  init: RequestInit = {},
  options: NodeFetchOptions = {},
): Promise<Response> {
  const target = new URL(url);
  const method = (init.method ?? "GET").toUpperCase();
  const client = target.protocol === "https:" ? https : http;
  const signal = init.signal ?? undefined;
  signal?.throwIfAborted();
  const headers: Record<string, string> = {};
  new Headers(init.headers).forEach((value, key) => headers[key] = value);
  const stream = init.body instanceof ReadableStream ? init.body : undefined;
  const bytes = await bodyBytes(init.body);
  if (bytes) headers["content-length"] = String(bytes.length);
  else if (!stream && method !== "GET" && method !== "HEAD") headers["content-length"] = "0";
  signal?.throwIfAborted();
  return await new Promise<Response>((resolve, reject) => {
    const req = client.request(target, { method, headers, agent: options.agent });
    // Under Deno's node:http, a kept-alive connection that the server closes before answering
    // ends without an error on the request (it would wait for the caller's timeout): fail it.
    let answered = false;
    req.on("socket", (socket) => {
      const onClose = () => {
        if (!answered) req.destroy(new Error("socket hang up: closed before the response"));
      };
      socket.once("close", onClose);
      req.once("close", () => socket.off("close", onClose));
    });
    const onAbort = () => req.destroy(signal?.reason as Error);
    signal?.addEventListener("abort", onAbort, { once: true });
    req.on("error", (error) => {
      signal?.removeEventListener("abort", onAbort);
      reject(signal?.aborted ? signal.reason : error);
    });
    req.on("response", (res) => {
      answered = true;
      res.on("close", () => signal?.removeEventListener("abort", onAbort));
      const responseHeaders = new Headers();
      for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
        responseHeaders.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
      }
      const status = res.statusCode ?? 502;
      const empty = method === "HEAD" || NULL_BODY_STATUS.has(status);
      if (empty) res.resume();
      resolve(
        new Response(empty ? null : responseBody(res, signal), {
          status,
          statusText: res.statusMessage,
          headers: responseHeaders,
        }),
      );
    });
    if (stream) void writeBody(req, stream);
    else req.end(bytes);
  });
}
