/**
 * How a role calls other roles: {@linkcode startRoleCalls} gives the fetch functions every cluster
 * client of the role is built with. Without `tls.client` they are `tracedFetch` and the global
 * `fetch`; with it, the same calls go over the role's TLS client (`https`, the CAs, the client
 * certificate), so no call of a TLS role is sent in plaintext.
 *
 * @module
 */

import { startTlsClient, type TlsClient } from "../http/tls_client.ts";
import type { TlsConfig } from "../http/tls_config.ts";
import { tracedFetch } from "../tracing/mod.ts";
import type { RoleContext } from "./role.ts";

/** The fetch functions of a role's clients. */
export interface RoleCalls {
  /** `tracedFetch`, over TLS when the role has `tls.client`. */
  readonly fetch: typeof tracedFetch;
  /** Untraced `fetch` (health probes), over TLS likewise. */
  readonly plainFetch: typeof fetch;
  /** Stops the TLS client's file watch. */
  close(): Promise<void>;
}

/**
 * Starts the role's TLS client when `tls.client` is set.
 * @throws {import("../http/tls.ts").TlsFileError} for a missing or bad certificate, key or CA file
 */
export async function startRoleCalls(tls: TlsConfig, ctx: RoleContext): Promise<RoleCalls> {
  if (!tls.client) {
    return { fetch: tracedFetch, plainFetch: globalThis.fetch, close: () => Promise.resolve() };
  }
  const client: TlsClient = await startTlsClient(tls.client, { logger: ctx.logger });
  ctx.logger.info("calls to other roles use TLS", {
    name: tls.client.name,
    client_certificate: tls.client.identity?.cert,
  });
  return {
    fetch: client.wrap(tracedFetch),
    plainFetch: (input, init) =>
      client.transport(new URL(input instanceof Request ? input.url : input), init ?? {}),
    close: () => client.close(),
  };
}
