/**
 * Configuration of the build-index role: its YAML keys, defaults and validation.
 *
 * ```yaml
 * listen: { host: 127.0.0.1, port: 15004 }   # --host / --port override
 * storage:
 *   root: /var/cache/kraken/kraken-build-index   # tags/ (local tag cache) lives here
 * cluster:
 *   hosts: [bi1:15004, bi2:15004]  # every build-index of this cluster, self included
 *   self: bi1:15004                # optional: this node's entry (default: found by local address + port)
 *   duplicate_put_stagger: 20m     # neighbour k writes back after k × stagger
 * origin:
 *   hosts: [origin1:15002]         # the local origin cluster
 *   dns: origin.example:15002      # optional: what GET /origin answers (default: a random host)
 * tag_store:
 *   write_through: true            # false: write tags back through the persisted queue
 * writeback: { db: <storage.root>/build-index.db, retry_interval: 30s, poll_interval: 15s, workers: 4 }
 * tag_types:                       # first namespace regex matching the tag wins
 *   - { namespace: ".*", type: docker }
 * manifest_download: { attempts: 4, backoff: 500ms }
 * backends: [...]                  # storage/backend/config.ts
 * ```
 *
 * Relative paths (`storage.root`, `writeback.db`, `file` backend roots) are resolved against the
 * directory of the config file when the caller knows it, else against the working directory.
 *
 * @module
 */

import { dirname, isAbsolute, resolve } from "node:path";
import { ConfigError, Fields, parseListen, type RawMap } from "../../common/config.ts";
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
  /** Listen address; port 0 picks a free one (tests). */
  listen: { host: string; port: number };
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
  /** Root of local state (absolute); tag files live in `<root>/tags`. */
  storageRoot: string;
  /** Tag persistence. */
  tagStore: {
    /** Write tags to the backend inside the PUT (true) or through the queue (false). */
    writeThrough: boolean;
  };
  /** The persisted write-back queue. */
  writeback: {
    /** SQLite database file (absolute). */
    db: string;
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
  "listen",
  "storage",
  "cluster",
  "origin",
  "tag_store",
  "writeback",
  "tag_types",
  "manifest_download",
  "backends",
];

/** Options of {@linkcode parseBuildIndexConfig}. */
export interface ParseBuildIndexConfigOptions {
  /** The config file; relative paths in it are resolved against its directory. */
  configPath?: string;
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
      throw new ConfigError(
        f.key("namespace"),
        `invalid regular expression: ${(error as Error).message}`,
      );
    }
    const type = f.requiredString("type");
    if (type !== "docker" && type !== "default") {
      throw new ConfigError(
        f.key("type"),
        `must be docker or default, got ${JSON.stringify(type)}`,
      );
    }
    return { namespace, type };
  });
}

/**
 * Validates the build-index part of the YAML (everything but `tracing:`) and applies defaults.
 * @throws {ConfigError} naming the first invalid key
 */
export function parseBuildIndexConfig(
  raw: RawMap,
  flags: Record<string, string> = {},
  options: ParseBuildIndexConfigOptions = {},
): BuildIndexConfig {
  const baseDir = options.configPath ? dirname(resolve(options.configPath)) : Deno.cwd();
  const abs = (p: string) => isAbsolute(p) ? p : resolve(baseDir, p);
  const top = new Fields(raw, "", TOP_KEYS);
  const listen = parseListen(top, flags, { port: 15004 });
  const storageRoot = abs(top.map("storage", ["root"]).requiredString("root"));

  const cluster = top.map("cluster", ["hosts", "self", "duplicate_put_stagger"]);
  const clusterHosts = cluster.hostList("hosts", false);
  const self = cluster.has("self") ? cluster.string("self", "") : undefined;
  if (self !== undefined && !clusterHosts.includes(self)) {
    throw new ConfigError(cluster.key("self"), `${self} is not one of cluster.hosts`);
  }

  const origin = top.map("origin", ["hosts", "dns"]);
  const dns = origin.has("dns") ? origin.string("dns", "") : undefined;

  const tagStore = top.map("tag_store", ["write_through"]);
  const writeback = top.map("writeback", ["db", "retry_interval", "poll_interval", "workers"]);
  const download = top.map("manifest_download", ["attempts", "backoff"]);
  const pollIntervalMs = writeback.duration("poll_interval", 15_000);
  if (pollIntervalMs <= 0) {
    throw new ConfigError(writeback.key("poll_interval"), "must be positive");
  }

  let backends: BackendEntry[];
  try {
    backends = parseBackendsConfig(top.raw("backends"), { baseDir, fetch: tracedFetch });
  } catch (error) {
    if (error instanceof BackendConfigError) {
      throw new ConfigError(error.key, error.message.slice(error.key.length + 2));
    }
    throw error;
  }

  return {
    listen,
    storageRoot,
    cluster: {
      hosts: clusterHosts,
      self,
      duplicatePutStaggerMs: cluster.duration("duplicate_put_stagger", 20 * 60_000),
    },
    origin: { hosts: origin.hostList("hosts", true), dns },
    tagStore: { writeThrough: tagStore.bool("write_through", true) },
    writeback: {
      db: abs(writeback.string("db", resolve(storageRoot, "build-index.db"))),
      retryIntervalMs: writeback.duration("retry_interval", 30_000),
      pollIntervalMs,
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
