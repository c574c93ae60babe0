/**
 * The registry of role implementations `main.ts` starts. A role that is not implemented yet maps to
 * `undefined`, and `main.ts` refuses to start it rather than pretending.
 *
 * @module
 */

import { originRole } from "./origin/mod.ts";
import type { RoleDefinition, RoleName } from "./role.ts";

export { ROLE_NAMES } from "./role.ts";
export type {
  ParseOptions,
  RoleContext,
  RoleDefinition,
  RoleName,
  RunningRole,
} from "./role.ts";

/** Role name → implementation (undefined while not implemented). */
export const ROLES: Record<RoleName, RoleDefinition<unknown> | undefined> = {
  agent: undefined,
  tracker: undefined,
  origin: originRole as RoleDefinition<unknown>,
  proxy: undefined,
  "build-index": undefined,
};
