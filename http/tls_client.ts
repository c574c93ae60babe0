/**
 * The TLS side of a role's calls to other roles: {@linkcode startTlsClient} turns the `tls.client`
 * settings into a fetch-shaped transport over `node:https` that verifies servers against the CAs
 * (plus the system roots) and the configured `name`, presents the client certificate, and never
 * falls back to plaintext. {@linkcode TlsClient.wrap} makes a `tracedFetch`-shaped function call
 * `https` wherever the cluster clients build `http://host:port` URLs, as upstream's clients switch
 * the scheme when they have a TLS config.
 *
 * Why `node:https` and not `Deno.createHttpClient`: the latter cannot verify a server against a
 * name other than the URL's host (upstream's `tls.name`, Go's ServerName); it was ~20% faster on a
 * 64 MiB GET in the same run (docs/performance.md).
 *
 * ```ts
 * const tls = await startTlsClient(config.tls.client, { logger });
 * const fetch = tls.wrap(tracedFetch);           // give it to the cluster clients
 * await tls.close();
 * ```
 *
 * @module
 */

import https from "node:https";
import { Readable } from "node:stream";
import tls from "node:tls";
import type { Logger } from "../common/log.ts";
import { loadCas, loadKeyPair, TlsFileWatcher } from "./tls.ts";
import type { ClientTlsConfig } from "./tls_config.ts";

/** A fetch over one `https.Agent`: the transport `tracedFetch` calls for `https` URLs. */
export type Transport = (url: string | URL, init: RequestInit) => Promise<Response>;

/** The options every `tracedFetch`-shaped function takes (a transport among them). */
interface TransportOptions extends RequestInit {
  /** The transport to send the request with (default the global `fetch`). */
  transport?: (url: string, init: RequestInit) => Promise<Response>;
}

const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

async function requestBytes(body: BodyInit | null | undefined): Promise<Uint8Array | undefined> {
  if (body === null || body === undefined) return undefined;
  if (body instanceof Uint8Array) return body;
  if (typeof body === "string") return new TextEncoder().encode(body);
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) {
    return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  }
  if (body instanceof ReadableStream) return undefined;
  return new Uint8Array(await new Response(body).arrayBuffer());
}

/** Sends one request with `agent`; resolves with the response once its headers arrived. */
function send(agent: https.Agent, url: URL, init: RequestInit): Promise<Response> {
  const method = (init.method ?? "GET").toUpperCase();
  const signal = init.signal ?? undefined;
  return new Promise<Response>((resolve, reject) => {
    signal?.throwIfAborted();
    void (async () => {
      const headers: Record<string, string> = {};
      new Headers(init.headers).forEach((value, name) => headers[name] = value);
      const stream = init.body instanceof ReadableStream ? init.body : undefined;
      const bytes = await requestBytes(init.body);
      if (bytes) headers["content-length"] = String(bytes.length);
      else if (!stream && method !== "GET" && method !== "HEAD") headers["content-length"] = "0";
      const req = https.request(url, { method, headers, agent }, (res) => {
        const responseHeaders = new Headers();
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
          responseHeaders.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
        }
        const status = res.statusCode ?? 500;
        const nullBody = method === "HEAD" || NULL_BODY_STATUS.has(status);
        if (nullBody) res.resume();
        resolve(
          new Response(nullBody ? null : Readable.toWeb(res) as ReadableStream<Uint8Array>, {
            status,
            statusText: res.statusMessage,
            headers: responseHeaders,
          }),
        );
      });
      const onAbort = () => req.destroy(signal?.reason ?? new Error("aborted"));
      signal?.addEventListener("abort", onAbort, { once: true });
      req.once("close", () => signal?.removeEventListener("abort", onAbort));
      req.once("error", reject);
      if (!stream) {
        req.end(bytes);
        return;
      }
      const reader = stream.getReader();
      try {
        while (true) {
          const { done, value } = await reader.read();
          if (done) break;
          if (!req.write(value)) {
            await new Promise<void>((r) => {
              const done = () => {
                req.off("drain", done);
                req.off("close", done);
                r();
              };
              req.on("drain", done);
              req.on("close", done);
            });
          }
          if (req.destroyed) break;
        }
        req.end();
      } catch (error) {
        req.destroy(error as Error);
      } finally {
        reader.releaseLock();
      }
    })().catch(reject);
  });
}

/** The agent options of a `tls.client` side, read from its files. */
async function agentOptions(config: ClientTlsConfig): Promise<https.AgentOptions> {
  const ca = await loadCas(config.cas, "tls.cas");
  const identity = config.identity ? await loadKeyPair(config.identity, "tls.client") : undefined;
  const name = config.name;
  return {
    keepAlive: true,
    // The system roots as well as ours, as upstream's client pool.
    ca: ca.length > 0 ? [...tls.rootCertificates, ...ca] : undefined,
    cert: identity?.cert,
    key: identity?.key,
    minVersion: "TLSv1.2",
    rejectUnauthorized: true,
    ...(name === undefined ? {} : {
      servername: name,
      checkServerIdentity: (_host: string, cert: tls.PeerCertificate) =>
        tls.checkServerIdentity(name, cert),
    }),
  };
}

/** A role's TLS client: the transport and the wrapper for `tracedFetch`-shaped functions. */
export interface TlsClient {
  /** Sends a request over TLS (an `http:` URL is sent as `https:`). */
  readonly transport: Transport;
  /** `fetch` with `http:` URLs rewritten to `https:` and sent with {@linkcode transport}. */
  wrap<O extends TransportOptions>(
    fetch: (input: string | URL, options?: O) => Promise<Response>,
  ): (input: string | URL, options?: O) => Promise<Response>;
  /** Stops watching the files and closes idle connections. */
  close(): Promise<void>;
}

/** Options of {@linkcode startTlsClient}. */
export interface TlsClientOptions {
  /** Logs reloads. */
  logger: Logger;
}

/**
 * Loads the client certificate and CAs and starts watching them (file changes, SIGHUP); a reload
 * applies to new connections, a failed one is logged and the previous settings stay.
 * @throws {import("./tls.ts").TlsFileError} when a file is missing or bad (a start-up error)
 */
export async function startTlsClient(
  config: ClientTlsConfig,
  options: TlsClientOptions,
): Promise<TlsClient> {
  let agent = new https.Agent(await agentOptions(config));
  const files = [...config.cas];
  if (config.identity) {
    files.push(config.identity.cert, config.identity.key);
    if (config.identity.passphrase) files.push(config.identity.passphrase);
  }
  const watcher = await TlsFileWatcher.start({
    files,
    onChange: async (reason) => {
      try {
        // Requests in flight finish on the old agent; its idle connections close on the server's
        // idle timeout.
        agent = new https.Agent(await agentOptions(config));
        options.logger.info("TLS client certificate reloaded", { reason });
      } catch (error) {
        options.logger.error("TLS client reload failed; the previous settings stay", {
          reason,
          error,
        });
      }
    },
  });
  const toHttps = (input: string | URL): URL => {
    const url = new URL(input);
    if (url.protocol === "http:") url.protocol = "https:";
    return url;
  };
  const transport: Transport = (url, init) => send(agent, toHttps(url), init);
  return {
    transport,
    wrap: (fetch) => (input, opts) => fetch(toHttps(input), { ...opts, transport } as typeof opts),
    async close() {
      await watcher.stop();
      agent.destroy();
    },
  };
}
