/**
 * Configuration of the build-index role: its YAML keys, defaults and validation.
 *
 * ```yaml
 * port: 15004                      # listen port (--port overrides)
 * hostname: 0.0.0.0                # listen address (--hostname overrides)
 * cluster:
 *   hosts: [bi1:15004, bi2:15004]  # every build-index of this cluster, self included
 *   self: bi1:15004                # optional: this node's entry (default: found by local address + port)
 *   duplicate_put_stagger: 20m     # neighbour k writes back after k × stagger
 * origin:
 *   hosts: [origin1:15002]         # the local origin cluster
 *   dns: origin.example:15002      # optional: what GET /origin answers (default: a random host)
 * tag_store:
 *   root: /var/cache/kraken/kraken-build-index/tags
 *   write_through: true            # false: write tags back through the persisted queue
 * localdb:
 *   source: /var/cache/kraken/kraken-build-index/build-index.db
 * writeback: { retry_interval: 30s, poll_retries_interval: 15s, workers: 4 }
 * tag_types:                       # first namespace regex matching the tag wins
 *   - { namespace: ".*", type: docker }
 * manifest_download: { attempts: 4, backoff: 500ms }
 * backends: [...]                  # storage/backend/config.ts
 * ```
 *
 * @module
 */

import { ConfigError, Fields, parseHostPort, type RawMap } from "../../common/config.ts";
import type { BackendEntry } from "../../storage/backend/backend.ts";
import { BackendConfigError, parseBackendsConfig } from "../../storage/backend/config.ts";
import { tracedFetch } from "../../tracing/mod.ts";

/** How a tag's dependencies are found. */
export type TagType = "docker" | "default";

/** One `tag_types` rule. */
export interface TagTypeRule {
  /** Matched anywhere in the tag (unanchored, like Go's `regexp.MatchString`). */
  namespace: RegExp;
  /** `docker`: the manifest and what it references; `default`: the digest alone. */
  type: TagType;
}

/** The validated build-index configuration. */
export interface BuildIndexConfig {
  /** Listen address. */
  hostname: string;
  /** Listen port (0 picks a free one, for tests). */
  port: number;
  /** This build-index cluster. */
  cluster: {
    /** Every build-index of the cluster, `host:port`, this one included. */
    hosts: string[];
    /** This node's entry in `hosts`, when automatic detection cannot find it. */
    self?: string;
    /** Neighbour k gets `delay = k × stagger` for its write-back. */
    duplicatePutStaggerMs: number;
  };
  /** The local origin cluster. */
  origin: {
    /** Origin hosts, `host:port`. */
    hosts: string[];
    /** Address `GET /origin` reports (default: one random host). */
    dns?: string;
  };
  /** Local tag cache. */
  tagStore: {
    /** Directory of tag files. */
    root: string;
    /** Write tags to the backend inside the PUT (true) or through the queue (false). */
    writeThrough: boolean;
  };
  /** SQLite file of the persisted write-back queue. */
  localdb: { source: string };
  /** Write-back queue tuning. */
  writeback: {
    /** Minimum time between attempts of a failed task. */
    retryIntervalMs: number;
    /** How often failed tasks are scanned. */
    pollIntervalMs: number;
    /** Concurrent write-backs. */
    workers: number;
  };
  /** Dependency resolution rules, first match wins. */
  tagTypes: TagTypeRule[];
  /** Retries of the manifest download during dependency resolution. */
  manifestDownload: {
    /** Attempts in all (upstream: 4). */
    attempts: number;
    /** First wait, doubled after each attempt (upstream: 500 ms). */
    backoffMs: number;
  };
  /** Storage backends by namespace (the tag string is the namespace). */
  backends: BackendEntry[];
}

const TOP_KEYS = [
  "port",
  "hostname",
  "cluster",
  "origin",
  "tag_store",
  "localdb",
  "writeback",
  "tag_types",
  "manifest_download",
  "backends",
];

/** Top-level keys `--key=value` flags may override, with how to read the flag. */
const FLAG_KEYS: Record<string, (value: string, key: string) => unknown> = {
  port: (value, key) => {
    if (!/^\d+$/.test(value)) throw new ConfigError(key, "must be a port number");
    return Number(value);
  },
  hostname: (value) => value,
};

/** Applies `--port` / `--hostname` flags over the YAML; any other flag is an error. */
function applyFlags(raw: RawMap, flags: Record<string, string>): RawMap {
  const out = { ...raw };
  for (const [name, value] of Object.entries(flags)) {
    const read = FLAG_KEYS[name];
    if (!read) {
      throw new ConfigError(`--${name}`, `unknown flag (allowed: ${Object.keys(FLAG_KEYS).join(", ")})`);
    }
    out[name] = read(value, `--${name}`);
  }
  return out;
}

function hostList(fields: Fields, name: string, required: boolean): string[] {
  const hosts = fields.stringList(name, []);
  if (required && hosts.length === 0) throw new ConfigError(fields.key(name), "needs at least one host:port");
  hosts.forEach((h, i) => parseHostPort(h, `${fields.key(name)}[${i}]`));
  return hosts;
}

function parseTagTypes(raw: unknown): TagTypeRule[] {
  if (raw === undefined || raw === null) return [{ namespace: /.*/, type: "docker" }];
  if (!Array.isArray(raw)) throw new ConfigError("tag_types", "must be a list");
  return raw.map((entry, i) => {
    const f = new Fields(entry, `tag_types[${i}]`, ["namespace", "type"]);
    const source = f.requiredString("namespace");
    let namespace: RegExp;
    try {
      namespace = new RegExp(source);
    } catch (error) {
      throw new ConfigError(f.key("namespace"), `invalid regular expression: ${(error as Error).message}`);
    }
    const type = f.requiredString("type");
    if (type !== "docker" && type !== "default") {
      throw new ConfigError(f.key("type"), `must be docker or default, got ${JSON.stringify(type)}`);
    }
    return { namespace, type };
  });
}

/**
 * Validates the build-index part of the YAML (everything but `tracing:`) and applies defaults.
 * @throws {ConfigError} naming the first invalid key
 */
export function parseBuildIndexConfig(raw: RawMap, flags: Record<string, string> = {}): BuildIndexConfig {
  const top = new Fields(applyFlags(raw, flags), "", TOP_KEYS);
  const port = top.int("port", 15004);
  if (port > 65535) throw new ConfigError("port", "must be at most 65535");

  const cluster = top.map("cluster", ["hosts", "self", "duplicate_put_stagger"]);
  const clusterHosts = hostList(cluster, "hosts", false);
  const self = cluster.has("self") ? cluster.string("self", "") : undefined;
  if (self !== undefined && !clusterHosts.includes(self)) {
    throw new ConfigError(cluster.key("self"), `${self} is not one of cluster.hosts`);
  }

  const origin = top.map("origin", ["hosts", "dns"]);
  const dns = origin.has("dns") ? origin.string("dns", "") : undefined;

  const tagStore = top.map("tag_store", ["root", "write_through"]);
  const localdb = top.map("localdb", ["source"]);
  const writeback = top.map("writeback", ["retry_interval", "poll_retries_interval", "workers"]);
  const download = top.map("manifest_download", ["attempts", "backoff"]);

  let backends: BackendEntry[];
  try {
    backends = parseBackendsConfig(top.raw("backends"), {
      fetch: (input, init) => tracedFetch(String(input), init),
    });
  } catch (error) {
    if (error instanceof BackendConfigError) {
      throw new ConfigError(error.key, error.message.slice(error.key.length + 2));
    }
    throw error;
  }

  return {
    hostname: top.string("hostname", "0.0.0.0"),
    port,
    cluster: {
      hosts: clusterHosts,
      self,
      duplicatePutStaggerMs: cluster.duration("duplicate_put_stagger", 20 * 60_000),
    },
    origin: { hosts: hostList(origin, "hosts", true), dns },
    tagStore: {
      root: tagStore.string("root", "/var/cache/kraken/kraken-build-index/tags"),
      writeThrough: tagStore.bool("write_through", true),
    },
    localdb: {
      source: localdb.string("source", "/var/cache/kraken/kraken-build-index/build-index.db"),
    },
    writeback: {
      retryIntervalMs: writeback.duration("retry_interval", 30_000),
      pollIntervalMs: writeback.duration("poll_retries_interval", 15_000),
      workers: writeback.int("workers", 4, 1),
    },
    tagTypes: parseTagTypes(top.raw("tag_types")),
    manifestDownload: {
      attempts: download.int("attempts", 4, 1),
      backoffMs: download.duration("backoff", 500),
    },
    backends,
  };
}
