/**
 * The proxy role: takes `docker push` (Docker Registry HTTP API v2 write path), uploads blobs and
 * manifests to the origin cluster (namespace `TODO`, as upstream) and publishes tags to build-index
 * (kraken-wire.md §1.6).
 *
 * `main.ts` uses {@linkcode proxyRole}; tests start {@linkcode startProxyServer} directly.
 *
 * @module
 */

import { OriginClusterClient } from "../../cluster/blob_client.ts";
import { TagClusterClient } from "../../cluster/tag_client.ts";
import type { RoleDefinition } from "../role.ts";
import { parseProxyConfig, type ProxyConfig } from "./config.ts";
import { startProxyServer } from "./server.ts";

export { parseProxyConfig, type ProxyConfig } from "./config.ts";
export { PUSH_NAMESPACE } from "./registry.ts";
export { type ProxyDeps, type ProxyServer, startProxyServer } from "./server.ts";

/** The proxy {@linkcode RoleDefinition}. */
export const proxyRole = {
  parseConfig: parseProxyConfig,
  async start(config, ctx) {
    const server = await startProxyServer(config, {
      origin: new OriginClusterClient({ hosts: config.origin.hosts }),
      tags: new TagClusterClient({ hosts: config.buildIndex.hosts }),
      logger: ctx.logger,
    });
    return { stop: () => server.stop() };
  },
} satisfies RoleDefinition<ProxyConfig>;
