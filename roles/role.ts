/**
 * What a role is to `main.ts`: a config parser with defaults and validation, and a start function
 * returning something that can be stopped.
 *
 * Every role under `roles/<role>/` has the same shape:
 *
 * - `config.ts` — the role's configuration: one schema (`common/schema.ts`) with each key's type,
 *   default and description, the config type inferred from it, and its parser.
 * - handler modules, one per concern (`uploads.ts`, `tags.ts`, `health.ts`, …), each exporting a
 *   `register…Routes(router, deps)` that adds its own routes to the router.
 * - `server.ts` — `create<Role>Router(deps)`: the middleware (the tracing runtime's
 *   `serverMiddleware`) and the handler modules' routes, plus `/metrics` from the runtime.
 * - `mod.ts` — `start<Role>(config, ctx, deps?)`, which builds the role's parts from the config
 *   (or takes them from `deps`, as tests do), serves the router and returns a
 *   {@linkcode RunningRole}; and `<role>Role`, the {@linkcode RoleDefinition} `main.ts` runs.
 *
 * A role reaches tracing only through {@linkcode RoleContext.tracing}; nothing in `tracing/` is
 * per-process state, so several roles started in one test process stay apart.
 *
 * @module
 */

import type { Logger } from "../common/log.ts";
import type { RawMap } from "../common/config.ts";
import type { Schema } from "../common/schema.ts";
import type { TracingRuntime } from "../tracing/mod.ts";

/** The names `--role` accepts. */
export const ROLE_NAMES = ["agent", "tracker", "origin", "proxy", "build-index"] as const;

/** One of {@linkcode ROLE_NAMES}. */
export type RoleName = typeof ROLE_NAMES[number];

/** What a starting role gets from `main.ts`. */
export interface RoleContext {
  /** The role's logger (stamps trace ids). */
  logger: Logger;
  /** The tracing runtime: the routers' server middleware, `/metrics`, flush. */
  tracing: TracingRuntime;
  /** `--key=value` flags beyond `--role` and `--config`, for per-process overrides. */
  flags: Record<string, string>;
}

/** A started role. */
export interface RunningRole {
  /** Stops serving and releases resources; pending work is finished or persisted. */
  stop(): Promise<void>;
}

/** What `parseConfig` knows about where the configuration came from. */
export interface ParseOptions {
  /** The config file; relative paths in it are resolved against its directory. */
  configPath?: string;
}

/** A role implementation. */
export interface RoleDefinition<C = unknown> {
  /** The role's keys (everything but `tracing:`); `docs/<role>.md`'s key table is generated from it. */
  configSchema: Schema<unknown>;
  /** Validates the role's part of the YAML (everything but `tracing:`), applying defaults. */
  parseConfig(raw: RawMap, flags: Record<string, string>, options?: ParseOptions): C;
  /** Starts the role's servers. */
  start(config: C, ctx: RoleContext): Promise<RunningRole>;
}
