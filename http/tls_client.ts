/**
 * The TLS side of a role's calls to other roles: {@linkcode startTlsClient} turns the `tls.client`
 * settings into a fetch-shaped transport over `node:https` that verifies servers against the CAs
 * (plus the system roots) and the configured `name`, presents the client certificate, and never
 * falls back to plaintext. {@linkcode TlsClient.wrap} makes a `tracedFetch`-shaped function call
 * `https` wherever the cluster clients build `http://host:port` URLs, as upstream's clients switch
 * the scheme when they have a TLS config.
 *
 * Requests go through `node_fetch.ts` with the role's `https.Agent`: `Deno.createHttpClient`
 * cannot verify a server against a name other than the URL's host (upstream's `tls.name`, Go's
 * ServerName).
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
import tls from "node:tls";
import type { Logger } from "../common/log.ts";
import { loadCas, loadKeyPair, TlsFileWatcher } from "./tls.ts";
import type { ClientTlsConfig } from "./tls_config.ts";
import { nodeFetch } from "./node_fetch.ts";

/** A fetch over one `https.Agent`: the transport `tracedFetch` calls for `https` URLs. */
export type Transport = (url: string | URL, init: RequestInit) => Promise<Response>;

/** The options every `tracedFetch`-shaped function takes (a transport among them). */
interface TransportOptions extends RequestInit {
  /** The transport to send the request with (default the global `fetch`). */
  transport?: (url: string, init: RequestInit) => Promise<Response>;
}

/**
 * The `https.Agent` options of a `tls.client` side, read from its files: the CAs besides the system
 * roots, the client certificate, TLS 1.2 minimum, and `name` as SNI and verification name. `key`
 * is the dotted key of the block, for messages (`tls`, `backends[0].backend.testfs.tls`).
 * @throws {import("./tls.ts").TlsFileError} when a file is missing or bad
 */
export function tlsAgentOptions(config: ClientTlsConfig, key = "tls"): https.AgentOptions {
  const ca = loadCas(config.cas, `${key}.cas`);
  const identity = config.identity ? loadKeyPair(config.identity, `${key}.client`) : undefined;
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
  let agent = new https.Agent(tlsAgentOptions(config));
  const files = [...config.cas];
  if (config.identity) {
    files.push(config.identity.cert, config.identity.key);
    if (config.identity.passphrase) files.push(config.identity.passphrase);
  }
  const watcher = await TlsFileWatcher.start({
    files,
    onChange: (reason) => {
      try {
        // Requests in flight finish on the old agent; its idle connections close on the server's
        // idle timeout.
        agent = new https.Agent(tlsAgentOptions(config));
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
  const transport: Transport = (url, init) => nodeFetch(toHttps(url), init, { agent });
  return {
    transport,
    wrap: (fetch) => (input, opts) => fetch(toHttps(input), { ...opts, transport } as typeof opts),
    async close() {
      await watcher.stop();
      agent.destroy();
    },
  };
}
