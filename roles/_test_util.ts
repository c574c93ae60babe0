/**
 * Test helper for starting roles in-process: a {@linkcode RoleContext} with its own tracing
 * runtime, so several roles in one test process share no state.
 *
 * @module
 */

import type { Logger } from "../common/log.ts";
import { initTracing, parseTracingConfig, type TracingRuntime } from "../tracing/mod.ts";
import type { RoleContext, RoleName } from "./role.ts";

/** Options of {@linkcode testRoleContext}. */
export interface TestRoleContextOptions {
  /** The role's logger. */
  logger: Logger;
  /** A runtime the test set up (to collect spans); default: a disabled one of its own. */
  tracing?: TracingRuntime;
  /** `--key=value` flags. Default none. */
  flags?: Record<string, string>;
}

/** A context for `start*` of one role, as `main.ts` would build it. */
export function testRoleContext(role: RoleName, options: TestRoleContextOptions): RoleContext {
  const tracing = options.tracing ??
    initTracing(parseTracingConfig({ enabled: false }, role, {}), {
      role,
      logger: options.logger,
    });
  return { logger: options.logger, tracing, flags: options.flags ?? {} };
}
