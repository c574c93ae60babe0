/**
 * Configuration of the proxy role: its YAML keys, defaults and validation.
 *
 * ```yaml
 * port: 15000                    # registry listen port (--port overrides)
 * hostname: 0.0.0.0              # listen address (--hostname overrides)
 * store:
 *   root: /var/cache/kraken/kraken-proxy   # blobs/ (staged uploads + cache) and sessions/
 * origin:
 *   hosts: [origin1:15002]       # the origin cluster blobs are pushed to
 * build_index:
 *   hosts: [build-index:15004]   # where tags are published
 * upload:
 *   ttl: 1h                      # an upload session idle this long is aborted
 *   prune_interval: 5m           # how often idle sessions are looked for
 * ```
 *
 * @module
 */

import { ConfigError, Fields, parseHostPort, type RawMap } from "../../common/config.ts";

/** The validated proxy configuration. */
export interface ProxyConfig {
  /** Listen address. */
  hostname: string;
  /** Listen port (0 picks a free one, for tests). */
  port: number;
  /** Local storage. */
  store: {
    /** Directory for staged uploads, cached blobs and session files. */
    root: string;
  };
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

const TOP_KEYS = ["port", "hostname", "store", "origin", "build_index", "upload"];

/** Applies `--port` / `--hostname` flags over the YAML; any other flag is an error. */
function applyFlags(raw: RawMap, flags: Record<string, string>): RawMap {
  const out = { ...raw };
  for (const [name, value] of Object.entries(flags)) {
    if (name === "port") {
      if (!/^\d+$/.test(value)) throw new ConfigError("--port", "must be a port number");
      out.port = Number(value);
    } else if (name === "hostname") {
      out.hostname = value;
    } else {
      throw new ConfigError(`--${name}`, "unknown flag (allowed: port, hostname)");
    }
  }
  return out;
}

function hostList(fields: Fields): string[] {
  const hosts = fields.stringList("hosts", []);
  if (hosts.length === 0) throw new ConfigError(fields.key("hosts"), "needs at least one host:port");
  hosts.forEach((h, i) => parseHostPort(h, `${fields.key("hosts")}[${i}]`));
  return hosts;
}

/**
 * Validates the proxy part of the YAML (everything but `tracing:`) and applies defaults.
 * @throws {ConfigError} naming the first invalid key
 */
export function parseProxyConfig(raw: RawMap, flags: Record<string, string> = {}): ProxyConfig {
  const top = new Fields(applyFlags(raw, flags), "", TOP_KEYS);
  const port = top.int("port", 15000);
  if (port > 65535) throw new ConfigError("port", "must be at most 65535");
  const store = top.map("store", ["root"]);
  const upload = top.map("upload", ["ttl", "prune_interval"]);
  const ttlMs = upload.duration("ttl", 60 * 60_000);
  const pruneIntervalMs = upload.duration("prune_interval", 5 * 60_000);
  if (pruneIntervalMs <= 0) throw new ConfigError(upload.key("prune_interval"), "must be positive");
  return {
    hostname: top.string("hostname", "0.0.0.0"),
    port,
    store: { root: store.string("root", "/var/cache/kraken/kraken-proxy") },
    origin: { hosts: hostList(top.map("origin", ["hosts"])) },
    buildIndex: { hosts: hostList(top.map("build_index", ["hosts"])) },
    upload: { ttlMs, pruneIntervalMs },
  };
}
