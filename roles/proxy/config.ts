/**
 * Configuration of the proxy role: its YAML keys, defaults and validation.
 *
 * ```yaml
 * listen: { host: 127.0.0.1, port: 15000 }   # registry listener; --host / --port override
 * storage:
 *   root: /var/cache/kraken/kraken-proxy     # blobs/ (staged uploads + cache) and sessions/
 * origin:
 *   hosts: [origin1:15002]       # the origin cluster blobs are pushed to
 * build_index:
 *   hosts: [build-index:15004]   # where tags are published
 * upload:
 *   ttl: 1h                      # an upload session idle this long is aborted
 *   prune_interval: 5m           # how often idle sessions are looked for
 * ```
 *
 * A relative `storage.root` is resolved against the directory of the config file when the caller
 * knows it, else against the working directory.
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import type { RawMap } from "../../common/config.ts";
import {
  applyFlags,
  duration,
  type Infer,
  listen,
  LISTEN_FLAGS,
  object,
  path,
} from "../../common/schema.ts";
import { listenerLimitsSchema } from "../../http/listener_config.ts";
import { tlsSchema } from "../../http/tls_config.ts";
import { hostListSchema } from "../../cluster/hostlist_config.ts";

const fields = object({
  listen: listen({ host: "127.0.0.1", port: 15000 }),
  tls: tlsSchema,
  http: listenerLimitsSchema,
  storage: object({
    root: path().describe(
      "`blobs/` holds staged uploads and the verified blob cache. `sessions/` holds one small " +
        "JSON file per upload session.",
    ),
  }),
  origin: object({ hosts: hostListSchema().describe("The origin cluster (a host list).") }),
  build_index: object({
    hosts: hostListSchema().describe("The build-index cluster (a host list)."),
  }),
  upload: object({
    ttl: duration().default("1h")
      .describe("An upload session idle this long is aborted and its staged bytes deleted."),
    prune_interval: duration({ positive: true }).default("5m")
      .describe("How often idle sessions are looked for."),
  }, { rename: { ttl: "ttlMs", prune_interval: "pruneIntervalMs" } }),
}, { rename: { build_index: "buildIndex" } });

/** The proxy's keys (everything but `tracing:`), defaults beside them. */
export const proxyConfigSchema = fields.map(({ storage, ...rest }) => ({
  ...rest,
  storageRoot: storage.root,
}));

/** The validated proxy configuration. */
export type ProxyConfig = Infer<typeof proxyConfigSchema>;

/** Options of {@linkcode parseProxyConfig}. */
export interface ParseProxyConfigOptions {
  /** The config file; a relative `storage.root` is resolved against its directory. */
  configPath?: string;
}

/**
 * Validates the proxy part of the YAML (everything but `tracing:`), applies `--host` / `--port`
 * and defaults.
 * @throws {ConfigError} naming the first invalid key
 */
export function parseProxyConfig(
  raw: RawMap,
  flags: Record<string, string> = {},
  options: ParseProxyConfigOptions = {},
): ProxyConfig {
  const baseDir = options.configPath ? dirname(resolve(options.configPath)) : undefined;
  return proxyConfigSchema.parse(applyFlags(fields, raw, flags, LISTEN_FLAGS), "", { baseDir });
}
