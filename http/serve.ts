/**
 * The HTTP listener every role serves on: `node:http` underneath, a web `Request` handed to the
 * router, and the listener limits of {@linkcode ListenerLimits} enforced per connection.
 *
 * Why not `Deno.serve`: it has no header-read or idle timeout (a client sending headers at 1 byte/s
 * holds its connection forever), no connection cap, and a fixed header limit past which it resets
 * or answers 400. Here each connection is watched from accept: its request headers must be complete
 * within `headerTimeoutMs`, a keep-alive wait ends after `idleTimeoutMs`, connections beyond
 * `maxConnections` get 503 and are closed, and request headers beyond `maxHeaderBytes` (the
 * parser's own limit, set to ours) get 431 with a message. Each closure is counted in
 * {@linkcode ListenerStats} and reported through `onLimit` (the role counts it on `/metrics` and
 * logs it at a bounded rate, `roles/listen.ts`).
 *
 * It also keeps the body of GET requests, for the tracker's announce v1 (`GET /announce` carrying a
 * JSON body, kraken-wire.md §1.3): the body of a GET is read first (bounded) and is available
 * through {@linkcode getRequestBody}. Other methods stream their bodies. A response whose body fits
 * in one chunk is sent with `Content-Length`, larger ones chunked; a file body
 * (`http/file_response.ts`) is sent from the file through reused buffers. A client that goes away
 * cancels (or ends) the response body so its span still ends. Every response's end (the body bytes
 * written, or why not all were) is reported to the {@linkcode ResponseEnds} the handler was given,
 * so the request metrics and the server span need not wrap the body to see it.
 *
 * @module
 */

import http from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { concatBytes } from "../common/bytes.ts";
import { bytesBodyOf } from "./bytes_response.ts";
import { fileBodyOf, sendFileBody } from "./file_response.ts";
import { ResponseEnds } from "./response_ends.ts";
import type { ListenerInfo } from "./router.ts";
import { DEFAULT_LISTENER_LIMITS, type ListenerLimits } from "./listener_config.ts";

export { DEFAULT_LISTENER_LIMITS, type ListenerLimits } from "./listener_config.ts";

/** Largest GET body read (an announce is a few hundred bytes). */
export const MAX_GET_BODY_BYTES = 64 * 1024;

const getBodies = new WeakMap<Request, Uint8Array>();

/** The body of a GET request received by {@linkcode serveHttp}, if it had one. */
export function getRequestBody(req: Request): Uint8Array | undefined {
  return getBodies.get(req);
}

/**
 * A request handler (the router's `handle`): with the request, the client's address, the URL
 * already parsed, and where the listener reports each response's end, so the handler may wait for
 * it.
 */
export type HttpHandler = (req: Request, info: Required<ListenerInfo>) => Promise<Response>;

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
  /** Timeouts and caps (default {@linkcode DEFAULT_LISTENER_LIMITS}). */
  limits?: ListenerLimits;
  /** Called when a limit closes a connection (the role logs it, rate-limited). */
  onLimit?: (reason: CloseReason, detail: Record<string, unknown>) => void;
  /** Serve TLS with this certificate (plaintext without it). */
  tls?: ServeTlsOptions;
  /** Called when a non-GET/HEAD request is refused for want of a verified client certificate. */
  onClientRefused?: (detail: Record<string, unknown>) => void;
}

/** The TLS side of a listener. */
export interface ServeTlsOptions {
  /** Certificate chain, PEM. */
  cert: string;
  /** Private key, unencrypted PEM. */
  key: string;
  /** CAs that verify client certificates, PEM. */
  ca: string[];
  /** Apply the client-certificate rule to 127.0.0.1 callers too. */
  verifyLoopback?: boolean;
}

/** The oldest TLS version a listener accepts (upstream's nginx: TLS 1.2 only). */
export const MIN_TLS_VERSION = "TLSv1.2";

/**
 * The caller upstream's nginx rule exempts from client certificates: `$remote_addr = "127.0.0.1"`,
 * exactly (its listeners are IPv4 only). On a dual-stack listener the same caller shows as
 * `::ffff:127.0.0.1`; `::1` and the rest of 127/8 are not exempt, as upstream.
 */
const LOOPBACK = new Set(["127.0.0.1", "::ffff:127.0.0.1"]);

/**
 * Upstream's client-verification rule: over TLS, a request other than GET/HEAD from a caller
 * other than loopback must come on a connection whose client certificate verified against the CA.
 * Returns why a request is refused, or undefined when it may proceed.
 */
export function clientCertificateProblem(
  socket: TLSSocket,
  method: string,
  verifyLoopback: boolean,
): string | undefined {
  if (method === "GET" || method === "HEAD") return undefined;
  if (!verifyLoopback && LOOPBACK.has(socket.remoteAddress ?? "")) return undefined;
  if (socket.authorized) return undefined;
  const peer = socket.getPeerCertificate?.();
  if (!peer || Object.keys(peer).length === 0) return "no client certificate presented";
  const subject = typeof peer.subject === "object" && peer.subject?.CN
    ? `CN=${peer.subject.CN}`
    : "the client certificate";
  return `${subject} does not verify against tls.cas (${socket.authorizationError ?? "unknown"})`;
}

/** Why a listener closed a connection on its own. */
export type CloseReason =
  | "header_timeout"
  | "idle_timeout"
  | "max_connections"
  | "header_too_large"
  | "tls_handshake";

/** The reasons of {@linkcode CloseReason}, in the order they are rendered. */
export const CLOSE_REASONS: readonly CloseReason[] = [
  "header_timeout",
  "idle_timeout",
  "max_connections",
  "header_too_large",
  "tls_handshake",
];

/** Connection counters of one listener. */
export class ListenerStats {
  /** Connections open now. */
  open = 0;
  /** Connections the listener closed, by reason. */
  readonly closed: Record<CloseReason, number> = {
    header_timeout: 0,
    idle_timeout: 0,
    max_connections: 0,
    header_too_large: 0,
    tls_handshake: 0,
  };
}

/** A running listener. */
export interface HttpServer {
  /** The bound address. */
  readonly addr: Deno.NetAddr;
  /** This listener's connection counters. */
  readonly stats: ListenerStats;
  /** `https` when the listener serves TLS, else `http`. */
  readonly scheme: "http" | "https";
  /** Replaces the certificate (and client CAs) for new connections; TLS listeners only. */
  setTls(tls: ServeTlsOptions): void;
  /** Stops accepting, waits (bounded) for requests in flight, closes every connection. */
  shutdown(): Promise<void>;
}

/**
 * The request headers as name/value pairs for `RequestInit.headers`: a `Headers` object there is
 * copied through the web IDL iterator path, several times dearer than pairs (~13 µs a request).
 */
function headerPairs(raw: http.IncomingHttpHeaders): [string, string][] {
  const pairs: [string, string][] = [];
  for (const name in raw) {
    const value = raw[name];
    if (Array.isArray(value)) { for (const v of value) pairs.push([name, v]); }
    else if (value !== undefined) pairs.push([name, value]);
  }
  return pairs;
}

/**
 * Whether a request has a body to read: only with `Content-Length` (other than 0) or
 * `Transfer-Encoding` (RFC 9112 §6.3), as the parser decides. Most GETs have none, and reading an
 * empty body still costs a stream iterator.
 */
function hasBody(raw: http.IncomingHttpHeaders): boolean {
  const length = raw["content-length"];
  return raw["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
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

/**
 * Sends `response` and reports its end to `ends`: the bytes of the body written, and an error when
 * the body failed or the client went away before it was all written.
 */
async function sendResponse(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  response: Response,
  ends: ResponseEnds,
): Promise<void> {
  const written = { bytes: 0 };
  let error: unknown;
  try {
    await writeResponse(req, res, response, written);
  } catch (failure) {
    error = failure;
    throw failure;
  } finally {
    ends.report(response, error, written.bytes);
  }
}

/** The client went away before the whole body was written. */
class ClientGoneError extends Error {
  /** `bytes`: what was written before. */
  constructor(bytes: number) {
    super(`client closed the connection after ${bytes} bytes of the response body`);
    this.name = "ClientGoneError";
  }
}

// Writes the response, counting the body bytes written; rejects when the body could not all be.
async function writeResponse(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  response: Response,
  written: { bytes: number },
): Promise<void> {
  const headers: string[] = [];
  for (const [name, value] of response.headers) headers.push(name, value);
  // A file or bytes response the listener sends has no body of its own (`fileResponse`,
  // `bytesResponse`).
  const file = fileBodyOf(response);
  const bytes = file === undefined ? bytesBodyOf(response) : undefined;
  if ((!response.body && file === undefined && bytes === undefined) || req.method === "HEAD") {
    await response.body?.cancel();
    file?.finish(new Error("response body cancelled"));
    res.writeHead(response.status, headers);
    res.end();
    return;
  }
  if (bytes !== undefined) {
    if (!response.headers.has("content-length")) headers.push("content-length", `${bytes.length}`);
    res.writeHead(response.status, headers);
    res.end(bytes);
    written.bytes = bytes.length;
    return;
  }
  if (file !== undefined) {
    if (!response.headers.has("content-length")) headers.push("content-length", `${file.length}`);
    res.writeHead(response.status, headers);
    await sendFileBody(res, file);
    written.bytes = file.sent;
    return;
  }
  const reader = response.body!.getReader();
  try {
    const first = await reader.read();
    const second = first.done ? first : await reader.read();
    if (second.done) {
      // The whole body arrived at once: send it with an exact Content-Length, as Go does.
      const body = first.value ?? new Uint8Array(0);
      if (!response.headers.has("content-length")) headers.push("content-length", `${body.length}`);
      res.writeHead(response.status, headers);
      res.end(body);
      written.bytes = body.length;
      return;
    }
    res.writeHead(response.status, headers);
    let ok = await writeChunk(res, first.value!);
    if (ok) written.bytes += first.value!.length;
    ok = ok && await writeChunk(res, second.value);
    if (ok) written.bytes += second.value.length;
    while (ok) {
      const { done, value } = await reader.read();
      if (done) break;
      ok = await writeChunk(res, value);
      if (ok) written.bytes += value.length;
    }
    if (ok) {
      res.end();
      return;
    }
    const gone = new ClientGoneError(written.bytes);
    await reader.cancel(gone);
    throw gone;
  } finally {
    reader.releaseLock();
  }
}

function rawResponse(status: string, message: string): string {
  const body = new TextEncoder().encode(message);
  return `HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\n` +
    `content-length: ${body.length}\r\n\r\n${message}`;
}

/**
 * Per-connection watch: a clock runs while a new connection owes us its first request's headers and
 * while a connection idles between requests; none runs while a request is being handled, however
 * long its body takes. The headers of a later request on the connection, from its first byte, are
 * timed by `node:http` itself (`headersTimeout`, set in {@linkcode serveHttp}): its parser reads the
 * socket, so the first byte after a keep-alive wait is not seen here, and the idle clock runs on
 * until that request's headers are complete (one that starts late in the wait may be closed as
 * idle first).
 *
 * A phase only moves its deadline; one timer per connection checks the deadline when it fires and
 * sleeps again for what is left, and is set anew only when the deadline comes before it. A
 * keep-alive connection then costs no timer calls per request (a timer set and cleared costs ~2 µs,
 * and a request would otherwise arm two).
 */
class ConnectionWatch {
  #timer: ReturnType<typeof setTimeout> | undefined;
  // When the pending timer fires (a `performance.now()` reading); meaningful while `#timer` is set.
  #timerAt = 0;
  #phase: "headers" | "busy" | "idle" = "headers";
  // When the waiting phase's time is up (a `performance.now()` reading).
  #deadline = 0;
  #requests = 0;

  constructor(
    readonly socket: Socket,
    readonly limits: ListenerLimits,
    readonly onExpire: (reason: CloseReason) => void,
  ) {
    this.#arm("headers");
    socket.once("close", () => this.#clear());
  }

  /** A request's headers are complete (or, after a keep-alive wait, the next request's are). */
  requestStarted(): void {
    this.#requests++;
    // A pending timer finds the connection busy when it fires and stops.
    this.#phase = "busy";
  }

  /** A response finished; the connection waits for the next request, if it stays open. */
  requestDone(): void {
    if (--this.#requests > 0 || this.socket.destroyed) return;
    this.#arm("idle");
  }

  #arm(phase: "headers" | "idle"): void {
    this.#phase = phase;
    const ms = phase === "headers" ? this.limits.headerTimeoutMs : this.limits.idleTimeoutMs;
    this.#deadline = performance.now() + ms;
    if (this.#timer === undefined || this.#timerAt > this.#deadline) this.#schedule();
  }

  #schedule(): void {
    this.#clear();
    const now = performance.now();
    this.#timerAt = Math.max(this.#deadline, now + 1);
    this.#timer = setTimeout(() => this.#fire(), this.#timerAt - now);
  }

  #fire(): void {
    this.#timer = undefined;
    if (this.socket.destroyed || this.#phase === "busy") return;
    if (performance.now() < this.#deadline) {
      this.#schedule();
      return;
    }
    this.onExpire(this.#phase === "headers" ? "header_timeout" : "idle_timeout");
    this.socket.destroy();
  }

  #clear(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/**
 * The body of `req` as a web stream. A client that closes its sending side before the body is
 * complete (the connection is half-open, so the answer can still reach it) makes the stream fail,
 * as `Deno.serve`'s does, instead of waiting forever for bytes that cannot come.
 */
function requestBodyStream(req: http.IncomingMessage): ReadableStream<Uint8Array> {
  const chunks = (req as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  let received = 0;
  let fail!: (error: Error) => void;
  const failed = new Promise<never>((_, reject) => fail = reject);
  failed.catch(() => {});
  const onEnd = () => {
    if (!req.complete) {
      fail(new Error(`client closed the connection after ${received} bytes of the request body`));
    }
  };
  req.socket.once("end", onEnd);
  const done = () => req.socket.off("end", onEnd);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = await Promise.race([chunks.next(), failed]);
        if (next.done) {
          done();
          controller.close();
          return;
        }
        received += next.value.length;
        controller.enqueue(next.value);
      } catch (error) {
        done();
        controller.error(error);
      }
    },
    async cancel() {
      done();
      await chunks.return?.();
    },
  });
}

/** Starts listening; resolves once bound. */
export function serveHttp(options: ServeHttpOptions): Promise<HttpServer> {
  const graceMs = options.shutdownGraceMs ?? 10_000;
  const limits = options.limits ?? DEFAULT_LISTENER_LIMITS;
  const onLimit = options.onLimit ?? (() => {});
  const stats = new ListenerStats();
  const watches = new WeakMap<Socket, ConnectionWatch>();
  const ends = new ResponseEnds();
  let inFlight = 0;
  let stopping = false;
  let idle: (() => void) | undefined;
  let bound: Deno.NetAddr;

  const tlsOptions = options.tls;
  // node's own header clock, from the first byte of each request: it sees the bytes of a request
  // after a keep-alive wait, which reach its parser and not our listeners. Checked every tenth of
  // the timeout (at most once a second), so a slow sender is closed within 10% of it.
  const headerClock = {
    headersTimeout: limits.headerTimeoutMs,
    requestTimeout: 0,
    connectionsCheckingInterval: Math.min(1000, Math.max(10, limits.headerTimeoutMs / 10)),
  };
  const secureContext = (tls: ServeTlsOptions) => ({
    cert: tls.cert,
    key: tls.key,
    ca: tls.ca.length > 0 ? tls.ca : undefined,
  });
  const onRequest = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const watch = watches.get(req.socket);
    if (!watch) {
      // A connection refused by the cap that still got a request parsed.
      res.destroy();
      return;
    }
    inFlight++;
    watch.requestStarted();
    res.once("close", () => watch.requestDone());
    try {
      if (stopping) res.setHeader("connection", "close");
      const method = req.method ?? "GET";
      const target = req.url ?? "/";
      const base = `${tlsOptions ? "https" : "http"}://${
        bound.hostname.includes(":") ? `[${bound.hostname}]` : bound.hostname
      }:${bound.port}`;
      let url: URL;
      try {
        url = new URL(target.startsWith("/") ? target : "/", base);
        if (req.headers.host) url.host = req.headers.host;
      } catch {
        url = new URL("/", base);
      }
      const headers = headerPairs(req.headers);
      const remote: Deno.NetAddr = {
        transport: "tcp",
        hostname: req.socket.remoteAddress ?? "",
        port: req.socket.remotePort ?? 0,
      };
      if (tlsOptions) {
        const problem = clientCertificateProblem(
          req.socket as TLSSocket,
          method,
          tlsOptions.verifyLoopback ?? false,
        );
        if (problem !== undefined) {
          options.onClientRefused?.({
            remote: remote.hostname,
            method,
            path: url.pathname,
            problem,
          });
          res.writeHead(403, { "content-type": "text/plain; charset=utf-8", connection: "close" });
          res.end(`${method} over TLS needs a verified client certificate: ${problem}`);
          return;
        }
      }
      let request: Request;
      if (method === "GET" || method === "HEAD") {
        const body = hasBody(req.headers)
          ? await readBounded(req, MAX_GET_BODY_BYTES)
          : new Uint8Array(0);
        if (body === null) {
          res.writeHead(413, { "content-type": "text/plain; charset=utf-8" });
          res.end(`request body larger than ${MAX_GET_BODY_BYTES} bytes`);
          return;
        }
        request = new Request(url, { method, headers });
        if (body.length > 0) getBodies.set(request, body);
      } else {
        // The signal says the client left before the whole answer. Aborting after a whole answer
        // too would build an AbortError (a DOMException with its stack) per request for no reader.
        const controller = new AbortController();
        res.on("close", () => {
          if (!res.writableFinished) controller.abort();
        });
        request = new Request(url, {
          method,
          headers,
          body: requestBodyStream(req),
          signal: controller.signal,
          duplex: "half",
        } as RequestInit);
      }
      let response: Response;
      try {
        response = await options.handler(request, { remote, url, responseEnds: ends });
      } catch (error) {
        response = new Response((error as Error)?.message ?? "internal error", { status: 500 });
      }
      await sendResponse(req, res, response, ends);
    } catch {
      res.destroy();
    } finally {
      inFlight--;
      if (stopping) {
        server.closeIdleConnections();
        if (inFlight === 0) idle?.();
      }
    }
  };
  const server: http.Server = tlsOptions
    ? https.createServer({
      ...secureContext(tlsOptions),
      ...headerClock,
      maxHeaderSize: limits.maxHeaderBytes,
      minVersion: MIN_TLS_VERSION,
      // Asked for, never required at the handshake: the rule above refuses per request, as nginx.
      requestCert: true,
      rejectUnauthorized: false,
    }, onRequest)
    : http.createServer({ maxHeaderSize: limits.maxHeaderBytes, ...headerClock }, onRequest);

  // `ConnectionWatch` times the first headers and the keep-alive waits; node's request timeout is
  // off so a long upload or download is never cut.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 0;
  // A client may close its sending side and still read the answer (a 400 for a body it cut short).
  (server as unknown as { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;

  // Over TLS the connection the requests arrive on is the TLS socket; until its handshake is done
  // the raw socket owes us bytes under the same header timeout.
  const handshakes = new Map<string, Socket>();
  const peerKey = (socket: Socket) => `${socket.remoteAddress}|${socket.remotePort}`;
  if (tlsOptions) {
    server.on("connection", (raw: Socket) => {
      const key = peerKey(raw);
      handshakes.set(key, raw);
      const timer = setTimeout(() => {
        if (handshakes.get(key) !== raw || raw.destroyed) return;
        stats.closed.header_timeout++;
        onLimit("header_timeout", { limit_ms: limits.headerTimeoutMs, remote: raw.remoteAddress });
        raw.destroy();
      }, limits.headerTimeoutMs);
      raw.once("close", () => {
        clearTimeout(timer);
        if (handshakes.get(key) === raw) handshakes.delete(key);
      });
    });
    server.on("tlsClientError", (error: Error, socket: Socket) => {
      stats.closed.tls_handshake++;
      onLimit("tls_handshake", { remote: socket?.remoteAddress, error: error.message });
    });
  }

  server.on(tlsOptions ? "secureConnection" : "connection", (socket: Socket) => {
    handshakes.delete(peerKey(socket));
    if (stats.open >= limits.maxConnections) {
      stats.closed.max_connections++;
      onLimit("max_connections", { limit: limits.maxConnections });
      socket.end(rawResponse(
        "503 Service Unavailable",
        `too many connections: this listener serves at most ${limits.maxConnections} ` +
          "(http.max_connections)",
      ));
      return;
    }
    stats.open++;
    socket.once("close", () => stats.open--);
    watches.set(
      socket,
      new ConnectionWatch(socket, limits, (reason) => {
        stats.closed[reason]++;
        onLimit(reason, {
          limit_ms: reason === "header_timeout" ? limits.headerTimeoutMs : limits.idleTimeoutMs,
          remote: socket.remoteAddress,
        });
      }),
    );
  });

  server.on("clientError", (error: Error & { code?: string }, socket: Socket) => {
    if (socket.destroyed || !socket.writable || error.code === "ECONNRESET") {
      socket.destroy();
      return;
    }
    if (error.code === "ERR_HTTP_REQUEST_TIMEOUT") {
      // node's header clock ran out: closed without an answer, as when the first request's runs out.
      stats.closed.header_timeout++;
      onLimit("header_timeout", { limit_ms: limits.headerTimeoutMs, remote: socket.remoteAddress });
      socket.destroy();
    } else if (error.code === "HPE_HEADER_OVERFLOW") {
      stats.closed.header_too_large++;
      onLimit("header_too_large", {
        limit_bytes: limits.maxHeaderBytes,
        remote: socket.remoteAddress,
      });
      socket.end(rawResponse(
        "431 Request Header Fields Too Large",
        `request headers larger than ${limits.maxHeaderBytes} bytes (http.max_header_size)`,
      ));
    } else {
      socket.end(rawResponse("400 Bad Request", `malformed request: ${error.message}`));
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
        stats,
        scheme: tlsOptions ? "https" : "http",
        setTls(tls) {
          if (!tlsOptions) throw new Error("setTls on a plaintext listener");
          (server as https.Server).setSecureContext(secureContext(tls));
        },
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
