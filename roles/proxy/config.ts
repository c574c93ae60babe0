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

import { dirname, isAbsolute, resolve } from "node:path";
import { ConfigError, Fields, parseListen, type RawMap } from "../../common/config.ts";

/** The validated proxy configuration. */
export interface ProxyConfig {
  /** Listen address of the registry; port 0 picks a free one (tests). */
  listen: { host: string; port: number };
  /** Root of local state (absolute): `blobs/` and `sessions/`. */
  storageRoot: string;
  /** The origin cluster. */
  origin: { hosts: string[] };
  /** The build-index cluster. */
  buildIndex: { hosts: string[] };
  /** Upload session expiry. */
  upload: {
    /** Idle time after which a session is aborted. */
    ttlMs: number;
    /** How often idle sessions are pruned. */
    pruneIntervalMs: number;
  };
}

/** Options of {@linkcode parseProxyConfig}. */
export interface ParseProxyConfigOptions {
  /** The config file; a relative `storage.root` is resolved against its directory. */
  configPath?: string;
}

const TOP_KEYS = ["listen", "storage", "origin", "build_index", "upload"];

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
  const baseDir = options.configPath ? dirname(resolve(options.configPath)) : Deno.cwd();
  const top = new Fields(raw, "", TOP_KEYS);
  const listen = parseListen(top, flags, { port: 15000 });
  const root = top.map("storage", ["root"]).requiredString("root");
  const upload = top.map("upload", ["ttl", "prune_interval"]);
  const ttlMs = upload.duration("ttl", 60 * 60_000);
  const pruneIntervalMs = upload.duration("prune_interval", 5 * 60_000);
  if (pruneIntervalMs <= 0) throw new ConfigError(upload.key("prune_interval"), "must be positive");
  return {
    listen,
    storageRoot: isAbsolute(root) ? root : resolve(baseDir, root),
    origin: { hosts: top.map("origin", ["hosts"]).hostList("hosts", true) },
    buildIndex: { hosts: top.map("build_index", ["hosts"]).hostList("hosts", true) },
    upload: { ttlMs, pruneIntervalMs },
  };
}
