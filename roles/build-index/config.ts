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
 *   name: zone1                    # optional: src_cluster of replication spans (default: self)
 *   duplicate_put_stagger: 20m     # neighbour k writes back after k × stagger
 *   duplicate_replicate_stagger: 20m  # neighbour k's replication tasks wait k × stagger
 * origin:
 *   hosts: [origin1:15002]         # the local origin cluster
 *   dns: origin.example:15002      # optional: what GET /origin answers (default: a random host)
 * tag_store:
 *   write_through: true            # false: write tags back through the persisted queue
 * writeback: { db: <storage.root>/build-index.db, retry_interval: 30s, max_retry_interval: 5m,
 *              poll_interval: 15s, workers: 4 }
 * remotes:                         # remote build-index → tag regexes replicated to it
 *   build-index-zone2:80: ["namespace_foo/.*"]      # upstream's shape: the key is the address
 *   zone3: { tags: ["^library/"], hosts: { dns: bi.zone3.example:15004 } }  # named, host list
 * tag_replication: { retry_interval: 30s, max_retry_interval: 5m, poll_interval: 15s, workers: 4 }
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

import { dirname, resolve } from "node:path";
import { ConfigError, type RawMap } from "../../common/config.ts";
import {
  applyFlags,
  bool,
  duration,
  hostPort,
  type Infer,
  int,
  list,
  listen,
  LISTEN_FLAGS,
  object,
  oneOf,
  path,
  record,
  regex,
  string,
} from "../../common/schema.ts";
import {
  backendAuthSchema,
  backendsSchema,
  buildBackendEntries,
} from "../../storage/backend/config.ts";
import { retryQueueSchema, writebackSchema } from "../../storage/writeback_config.ts";
import { tracedFetch } from "../../tracing/mod.ts";
import { listenerLimitsSchema } from "../../http/listener_config.ts";
import { tlsSchema } from "../../http/tls_config.ts";
import { type HostListConfig, hostListSchema, staticHosts } from "../../cluster/hostlist_config.ts";

const tagRegex = regex().map((source) => new RegExp(source));

/** A `remotes:` value: upstream's list of tag regexes, or tag regexes with a host list. */
interface RemoteEntry {
  /** Tags replicated to the remote. */
  tags: RegExp[];
  /** Its build-indexes; absent in upstream's shape, where the key is the address. */
  hosts?: HostListConfig;
}

const remoteSchema = object({
  tags: list(tagRegex, { nonEmpty: true }),
  hosts: hostListSchema(),
}).map((entry): RemoteEntry => entry)
  .orList(list(tagRegex).map((tags): RemoteEntry => ({ tags })), "list of regexes or mapping");

const tagTypeSchema = object({
  namespace: regex().map((source) => new RegExp(source))
    .describe("Matched anywhere in the tag (unanchored, like Go's `regexp.MatchString`)."),
  type: oneOf(["docker", "default"]).describe(
    "`docker`: the manifest and everything it references; `default`: the digest alone.",
  ),
});

/** One `tag_types` rule. */
export type TagTypeRule = Infer<typeof tagTypeSchema>;

/** How a tag's dependencies are found. */
export type TagType = TagTypeRule["type"];

const fields = object({
  listen: listen({ host: "127.0.0.1", port: 15004 }),
  tls: tlsSchema,
  http: listenerLimitsSchema,
  storage: object({
    root: path().describe("Local state. Tag files go in `<root>/tags`."),
  }),
  cluster: object({
    hosts: hostListSchema().optional("no other build-index").describe(
      "Every build-index of this cluster, this one included (a host list). Each accepted tag " +
        "is duplicated to all of them except this node.",
    ),
    self: string().optional("detected").describe(
      "This node's entry in `cluster.hosts`. If unset, an entry counts as this node when it has " +
        "the listen port and a local address (loopback, hostname or interface address). An " +
        "entry not in `cluster.hosts` is an error.",
    ),
    name: string().optional("`cluster.self`, else this node's `host:port`").describe(
      "This cluster's name in replication spans (`src_cluster`).",
    ),
    duplicate_put_stagger: duration().default("20m")
      .describe("Neighbour _k_ (1, 2, …, random order) delays its write-back by _k_ × this."),
    duplicate_replicate_stagger: duration().default("20m").describe(
      "Neighbour _k_ (1, 2, …, random order) holds its copies of a tag's replication tasks " +
        "back by _k_ × this.",
    ),
  }, {
    rename: {
      duplicate_put_stagger: "duplicatePutStaggerMs",
      duplicate_replicate_stagger: "duplicateReplicateStaggerMs",
    },
  }).map((c, key) => {
    const hosts = c.hosts && staticHosts(c.hosts);
    if (c.self !== undefined && hosts !== undefined && !hosts.includes(c.self)) {
      throw new ConfigError(`${key}.self`, `${c.self} is not one of cluster.hosts`);
    }
    return c;
  }),
  origin: object({
    hosts: hostListSchema().describe("The local origin cluster (a host list)."),
    dns: string().optional("`origin.hosts.dns`, else one random `origin.hosts` entry")
      .describe("What `GET /origin` answers."),
  }),
  tag_store: object({
    write_through: bool().default(true).describe(
      "`true` writes the backend inside the PUT (3 attempts, and the PUT fails if they all " +
        "fail). `false` queues a persisted write-back task instead.",
    ),
  }, { rename: { write_through: "writeThrough" } }),
  writeback: writebackSchema(
    "`<storage.root>/build-index.db`",
    "SQLite file of the write-back queue (upstream's `writeback_task` table, namespace = " +
      "name = tag).",
  ),
  remotes: record(remoteSchema)
    .map((remotes, key) => {
      const out: Record<string, { tags: RegExp[]; hosts: HostListConfig }> = {};
      for (const [name, entry] of Object.entries(remotes)) {
        if (entry.hosts) out[name] = { tags: entry.tags, hosts: entry.hosts };
        else {
          hostPort().parse(name, `${key}.${name}`);
          out[name] = { tags: entry.tags, hosts: { kind: "static", hosts: [name] } };
        }
      }
      return out;
    })
    .default({}).describe(
      "Remote clusters a tag put with `replicate=true` (or `POST /remotes/tags/{tag}`) is " +
        "replicated to, when one of their regexes matches anywhere in the tag. Upstream's shape " +
        "`<build-index host:port>: [regex, ...]`, or `<name>: {tags: [regex, ...], hosts: <host " +
        "list>}` (a list of `host:port`, `{static: [...]}` or `{dns: name:port, ttl}`). The key " +
        "is the task's destination and the spans' `dst_cluster`.",
    ),
  tag_replication: retryQueueSchema("replication task").describe(
    "The persisted replication queue (upstream's `replicate_tag_task` table, in the " +
      "`writeback.db` file).",
  ),
  tag_types: list(tagTypeSchema).default([{ namespace: ".*", type: "docker" }]).describe(
    "Ordered rules. The first regex that matches anywhere in the tag decides how dependencies " +
      "are found. No match → the put fails with 500.",
  ),
  manifest_download: object({
    attempts: int({ min: 1 }).default(4).describe(
      "Attempts to download the manifest during dependency resolution. Not-found and " +
        "unreachable origins are retried.",
    ),
    backoff: duration().default("500ms")
      .describe("First wait between those attempts. It doubles each time, up to 30 s."),
  }, { rename: { backoff: "backoffMs" } }),
  auth: backendAuthSchema,
  backends: backendsSchema.describe(
    "Namespace → backend mapping; the namespace is the tag string. Use `name_path: docker_tag` " +
      "for the registry layout `.../repositories/<repo>/_manifests/tags/<tag>/current/link`.",
  ),
}, {
  rename: {
    tag_store: "tagStore",
    tag_types: "tagTypes",
    manifest_download: "manifestDownload",
    tag_replication: "tagReplication",
  },
});

/** The build-index keys (everything but `tracing:`), defaults beside them. */
export const buildIndexConfigSchema = fields.map((
  { storage, writeback, backends, auth, ...rest },
) => ({
  ...rest,
  storageRoot: storage.root,
  writeback: { ...writeback, db: writeback.db ?? resolve(storage.root, "build-index.db") },
  backends: buildBackendEntries(backends, { fetch: tracedFetch, auth })
    .map(({ namespace, backend }) => ({ namespace, backend })),
}));

/** The validated build-index configuration. */
export type BuildIndexConfig = Infer<typeof buildIndexConfigSchema>;

/** Options of {@linkcode parseBuildIndexConfig}. */
export interface ParseBuildIndexConfigOptions {
  /** The config file; relative paths in it are resolved against its directory. */
  configPath?: string;
}

/**
 * Validates the build-index part of the YAML (everything but `tracing:`) and applies defaults and
 * the `--host` / `--port` flags.
 * @throws {ConfigError} naming the first invalid key
 */
export function parseBuildIndexConfig(
  raw: RawMap,
  flags: Record<string, string> = {},
  options: ParseBuildIndexConfigOptions = {},
): BuildIndexConfig {
  const baseDir = options.configPath ? dirname(resolve(options.configPath)) : undefined;
  return buildIndexConfigSchema.parse(applyFlags(fields, raw, flags, LISTEN_FLAGS), "", {
    baseDir,
  });
}
