/**
 * The registry of role implementations `main.ts` starts: one {@linkcode RoleDefinition} per name of
 * {@linkcode ROLE_NAMES}.
 *
 * @module
 */

import { agentRole } from "./agent/mod.ts";
import { buildIndexRole } from "./build-index/mod.ts";
import { originRole } from "./origin/mod.ts";
import { proxyRole } from "./proxy/mod.ts";
import type { RoleDefinition, RoleName } from "./role.ts";
import { trackerRole } from "./tracker/mod.ts";

export { ROLE_NAMES } from "./role.ts";
export type { ParseOptions, RoleContext, RoleDefinition, RoleName, RunningRole } from "./role.ts";

/** Role name → implementation. */
export const ROLES: Record<RoleName, RoleDefinition<unknown>> = {
  agent: agentRole as RoleDefinition<unknown>,
  tracker: trackerRole as RoleDefinition<unknown>,
  origin: originRole as RoleDefinition<unknown>,
  proxy: proxyRole as RoleDefinition<unknown>,
  "build-index": buildIndexRole as RoleDefinition<unknown>,
};
