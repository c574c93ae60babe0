/**
 * The build-index role: maps `repo:tag` to manifest digests, checks that a tag's manifest and
 * everything it references exist in the origin cluster, persists tags on disk and in a storage
 * backend, and duplicates them to neighbour build-indexes (kraken-wire.md §1.5, §7).
 *
 * `main.ts` uses {@linkcode buildIndexRole}; tests start {@linkcode startBuildIndexServer} directly.
 *
 * @module
 */

import { OriginClusterClient } from "../../cluster/blob_client.ts";
import type { RoleDefinition } from "../role.ts";
import { type BuildIndexConfig, parseBuildIndexConfig } from "./config.ts";
import { startBuildIndexServer } from "./server.ts";

export { type BuildIndexConfig, parseBuildIndexConfig } from "./config.ts";
export { type BuildIndexDeps, type BuildIndexServer, startBuildIndexServer } from "./server.ts";

/** The build-index {@linkcode RoleDefinition}. */
export const buildIndexRole = {
  parseConfig: parseBuildIndexConfig,
  async start(config, ctx) {
    const origin = new OriginClusterClient({ hosts: config.origin.hosts });
    const server = await startBuildIndexServer(config, { origin, logger: ctx.logger });
    return { stop: () => server.stop() };
  },
} satisfies RoleDefinition<BuildIndexConfig>;
