/**
 * An HTTP listener that keeps the body of GET requests, for the tracker's announce v1
 * (`GET /announce` carrying a JSON body, kraken-wire.md §1.3).
 *
 * `Deno.serve` discards the body of a GET request and a web `Request` cannot carry one, so this
 * listener runs on `node:http` and hands the router a web `Request` as usual; the body of a GET is
 * read first (bounded) and is available through {@linkcode getRequestBody}. Other methods stream
 * their bodies. A response whose body fits in one chunk is sent with `Content-Length`, larger ones
 * chunked; a client that goes away cancels the response body so its span still ends.
 *
 * @module
 */

import http from "node:http";
import { concatBytes } from "../../common/bytes.ts";

/** Largest GET body read (an announce is a few hundred bytes). */
export const MAX_GET_BODY_BYTES = 64 * 1024;

const getBodies = new WeakMap<Request, Uint8Array>();

/** The body of a GET request received by {@linkcode serveHttp}, if it had one. */
export function getRequestBody(req: Request): Uint8Array | undefined {
  return getBodies.get(req);
}

/** A request handler (the router's). */
export type HttpHandler = (req: Request, remote: Deno.NetAddr) => Promise<Response>;

/** Options for {@linkcode serveHttp}. */
export interface ServeHttpOptions {
  /** Listen address. */
  hostname: string;
  /** Listen port (0 picks a free one). */
  port: number;
  /** Handles every request. */
  handler: HttpHandler;
  /** How long {@linkcode HttpServer.shutdown} waits for requests in flight (default 10 s). */
  shutdownGraceMs?: number;
}

/** A running listener. */
export interface HttpServer {
  /** The bound address. */
  readonly addr: Deno.NetAddr;
  /** Stops accepting, waits (bounded) for requests in flight, closes every connection. */
  shutdown(): Promise<void>;
}

function toHeaders(raw: http.IncomingHttpHeaders): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw)) {
    if (Array.isArray(value)) { for (const v of value) headers.append(name, v); }
    else if (value !== undefined) headers.set(name, value);
  }
  return headers;
}

async function readBounded(req: http.IncomingMessage, limit: number): Promise<Uint8Array | null> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Uint8Array).length;
    if (size > limit) return null;
    chunks.push(chunk as Uint8Array);
  }
  return concatBytes(chunks);
}

/** Writes `chunk`, waiting for the socket to drain; false when the client has gone. */
function writeChunk(res: http.ServerResponse, chunk: Uint8Array): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  if (res.write(chunk)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      res.off("drain", onDrain);
      res.off("close", onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    res.on("drain", onDrain);
    res.on("close", onClose);
  });
}

async function sendResponse(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  response: Response,
): Promise<void> {
  const headers: string[] = [];
  for (const [name, value] of response.headers) headers.push(name, value);
  if (!response.body || req.method === "HEAD") {
    await response.body?.cancel();
    res.writeHead(response.status, headers);
    res.end();
    return;
  }
  const reader = response.body.getReader();
  try {
    const first = await reader.read();
    const second = first.done ? first : await reader.read();
    if (second.done) {
      // The whole body arrived at once: send it with an exact Content-Length, as Go does.
      const body = first.value ?? new Uint8Array(0);
      if (!response.headers.has("content-length")) headers.push("content-length", `${body.length}`);
      res.writeHead(response.status, headers);
      res.end(body);
      return;
    }
    res.writeHead(response.status, headers);
    let ok = await writeChunk(res, first.value!) && await writeChunk(res, second.value);
    while (ok) {
      const { done, value } = await reader.read();
      if (done) break;
      ok = await writeChunk(res, value);
    }
    if (ok) res.end();
    else await reader.cancel(new Error("client closed the connection"));
  } finally {
    reader.releaseLock();
  }
}

/** Starts listening; resolves once bound. */
export function serveHttp(options: ServeHttpOptions): Promise<HttpServer> {
  const graceMs = options.shutdownGraceMs ?? 10_000;
  let inFlight = 0;
  let stopping = false;
  let idle: (() => void) | undefined;
  let bound: Deno.NetAddr;

  const server = http.createServer(async (req, res) => {
    inFlight++;
    try {
      if (stopping) res.setHeader("connection", "close");
      const method = req.method ?? "GET";
      const target = req.url ?? "/";
      const base = `http://${
        bound.hostname.includes(":") ? `[${bound.hostname}]` : bound.hostname
      }:${bound.port}`;
      let url: URL;
      try {
        url = new URL(target.startsWith("/") ? target : "/", base);
        if (req.headers.host) url.host = req.headers.host;
      } catch {
        url = new URL("/", base);
      }
      const headers = toHeaders(req.headers);
      const remote: Deno.NetAddr = {
        transport: "tcp",
        hostname: req.socket.remoteAddress ?? "",
        port: req.socket.remotePort ?? 0,
      };
      let request: Request;
      if (method === "GET" || method === "HEAD") {
        const body = await readBounded(req, MAX_GET_BODY_BYTES);
        if (body === null) {
          res.writeHead(413, { "content-type": "text/plain; charset=utf-8" });
          res.end(`request body larger than ${MAX_GET_BODY_BYTES} bytes`);
          return;
        }
        request = new Request(url, { method, headers });
        if (body.length > 0) getBodies.set(request, body);
      } else {
        const controller = new AbortController();
        res.on("close", () => controller.abort());
        request = new Request(url, {
          method,
          headers,
          body: ReadableStream.from(req as AsyncIterable<Uint8Array>),
          signal: controller.signal,
          duplex: "half",
        } as RequestInit);
      }
      let response: Response;
      try {
        response = await options.handler(request, remote);
      } catch (error) {
        response = new Response((error as Error)?.message ?? "internal error", { status: 500 });
      }
      await sendResponse(req, res, response);
    } catch {
      res.destroy();
    } finally {
      inFlight--;
      if (stopping) {
        server.closeIdleConnections();
        if (inFlight === 0) idle?.();
      }
    }
  });

  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.hostname, () => {
      server.off("error", reject);
      const address = server.address() as { address: string; port: number };
      bound = { transport: "tcp", hostname: address.address, port: address.port };
      resolve({
        addr: bound,
        async shutdown() {
          if (stopping) return;
          stopping = true;
          const closed = new Promise<void>((r) => server.close(() => r()));
          server.closeIdleConnections();
          if (inFlight > 0) {
            let timer: ReturnType<typeof setTimeout> | undefined;
            await Promise.race([
              new Promise<void>((r) => idle = r),
              new Promise<void>((r) => timer = setTimeout(r, graceMs)),
            ]);
            clearTimeout(timer);
          }
          server.closeAllConnections();
          await closed;
        },
      });
    });
  });
}
