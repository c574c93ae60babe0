/**
 * The tracker role: answers agents' announces with the peers and origins that hold a torrent,
 * and proxies metainfo from the origin cluster (kraken-wire.md §1.3, §2).
 *
 * `main.ts` uses {@linkcode trackerRole}; tests start {@linkcode startTrackerServer} directly.
 *
 * @module
 */

import type { RoleDefinition } from "../role.ts";
import { parseTrackerConfig, type TrackerConfig } from "./config.ts";
import { startTrackerServer } from "./server.ts";

export { parseTrackerConfig, type TrackerConfig } from "./config.ts";
export { startTrackerServer, type TrackerDeps, type TrackerServer } from "./server.ts";

/** The tracker {@linkcode RoleDefinition}. */
export const trackerRole: RoleDefinition<TrackerConfig> = {
  parseConfig: parseTrackerConfig,
  async start(config, ctx) {
    const server = await startTrackerServer(config, { logger: ctx.logger });
    return { stop: () => server.stop() };
  },
};
