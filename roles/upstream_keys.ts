/**
 * Upstream Kraken's configuration keys, per role, and what this node does with each: the one place
 * that lets a YAML file written for a Go Kraken node of the same role start this node.
 *
 * - keys we implement under another name are moved to ours (`metainfogen` → `metainfo`,
 *   `castore.cache_dir` → `storage.root`, `trackerserver.listener` → `listen`, …);
 * - keys that only configure upstream machinery this node does not have (`nginx`, `zap`, the
 *   embedded docker registry, bandwidth limiters, in-memory caches) are dropped with one warning
 *   line each;
 * - keys we cannot honour and that change behaviour are refused, naming the key (unless the value
 *   is what this node does anyway, e.g. `peer_id_factory: addr_hash` on an origin).
 *
 * Keys spelled the same in both (`backends`, `tag_types`, `tag_store`, `hashring.max_replica`,
 * `peerstore.redis.*`, `originstore.*`, `scheduler.seeder_tti`, `tls`, …) need no row. The schema
 * of each role (`roles/<role>/config.ts`) still validates everything after the rewrite, so a
 * foreign key without a row is refused as an unknown key. `docs/interop.md`'s mapping table is
 * generated from these tables (`deno task docs:config`).
 *
 * @module
 */

import { dirname } from "node:path";
import { ConfigError, isMap, parseHostPort, type RawMap } from "../common/config.ts";
import { applyKeyRules, type KeyRule, type KeyRulesResult } from "../common/key_map.ts";
import type { RoleName } from "./role.ts";

const NO_NGINX = "no nginx in front: this node terminates HTTP (and TLS) itself";
const LOGGING = "logs are JSON lines on stderr; KRAKEN_LOG_LEVEL sets the level";
const NO_BANDWIDTH = "bandwidth limiting is not implemented (transfers are not throttled)";
const HEALTH_DEFAULTS = "health checks use upstream's default thresholds";

/**
 * upstream's `listener: {net, addr}` as our `listen: {host, port}`: `tcp` with `host:port` or
 * `:port` (all interfaces). A `unix` listener sits behind upstream's nginx and is handled by an
 * ignore rule before this.
 */
function listenerToListen(value: unknown, key: string): unknown {
  if (!isMap(value)) throw new ConfigError(key, "must be a mapping with net and addr");
  if (value.net !== undefined && value.net !== "tcp") {
    throw new ConfigError(`${key}.net`, `must be tcp or unix, got ${JSON.stringify(value.net)}`);
  }
  const addr = String(value.addr ?? "");
  const all = addr.startsWith(":");
  const { hostname, port } = parseHostPort(all ? `0.0.0.0${addr}` : addr, `${key}.addr`);
  return { host: hostname, port };
}

const isUnixListener = (value: unknown) => isMap(value) && value.net === "unix";

/** The listener rows of a role: `<block>.listener` → `listen`. */
function listenerRules(block: string, flag: string): KeyRule[] {
  return [
    {
      key: `${block}.listener`,
      when: isUnixListener,
      ignore:
        `a unix socket behind upstream's nginx; this node listens on TCP listen.port (${flag})`,
    },
    {
      key: `${block}.listener`,
      to: "listen",
      convert: listenerToListen,
      note: "`listen.host`, `listen.port` (`net: tcp` only)",
    },
  ];
}

/**
 * upstream's store directories (`upload_dir`/`download_dir` and `cache_dir`) as our one
 * `storage.root`: they must be siblings, whose parent becomes the root (this node keeps its own
 * `cache/`, `uploads/`, … under it).
 */
function storeDirsToRoot(dirKeys: readonly string[]) {
  return (value: unknown, key: string): unknown => {
    if (!isMap(value)) throw new ConfigError(key, "must be a mapping");
    const unknown = Object.keys(value).filter((k) => !dirKeys.includes(k));
    if (unknown.length > 0) {
      throw new ConfigError(`${key}.${unknown[0]}`, `unknown key (allowed: ${dirKeys.join(", ")})`);
    }
    const parents = new Set<string>();
    for (const k of dirKeys) {
      const dir = value[k];
      if (dir === undefined || dir === null) continue;
      if (typeof dir !== "string" || dir === "") {
        throw new ConfigError(`${key}.${k}`, "must be a non-empty string");
      }
      parents.add(dirname(dir.replace(/\/+$/, "")));
    }
    if (parents.size === 0) throw new ConfigError(`${key}.cache_dir`, "is required");
    if (parents.size > 1) {
      throw new ConfigError(
        key,
        `${dirKeys.join(" and ")} must be in one directory (it becomes storage.root), got ` +
          [...parents].join(", "),
      );
    }
    return { root: [...parents][0] };
  };
}

const isFalse = (value: unknown) => value === false || value === null;

/** `cache_cleanup` and the I/O tuning keys of every upstream store block. */
function storeRules(block: string, dirKeys: readonly string[], cleanup: boolean): KeyRule[] {
  return [
    ...(cleanup ? [] : [{
      key: `${block}.upload_cleanup`,
      ignore: "idle upload files are removed by this node's own upload expiry",
    }]),
    {
      key: `${block}.cache_cleanup`,
      ignore: "the cache is not evicted by age here (blobs stay until deleted)",
    },
    { key: `${block}.download_cleanup`, ignore: "failed downloads are deleted at once here" },
    { key: `${block}.read_part_size`, ignore: "I/O buffer tuning" },
    { key: `${block}.write_part_size`, ignore: "I/O buffer tuning" },
    { key: `${block}.capacity`, ignore: "an in-memory index size of upstream's store" },
    { key: `${block}.memory_cache`, ignore: "upstream's in-memory write cache is not implemented" },
    { key: `${block}.volumes`, ignore: "blobs are not spread over volumes (storage.root only)" },
    {
      key: `${block}.skip_hash_verification`,
      refuse: "digests are always verified before a blob is committed",
      accept: isFalse,
      accepted: "`false`",
    },
    {
      key: block,
      to: "storage",
      convert: storeDirsToRoot(dirKeys),
      note: `\`storage.root\`: the parent directory of ${
        dirKeys.map((k) => `\`${k}\``).join(" and ")
      }`,
    },
  ];
}

/** upstream's `writeback` / `persistedretry` keys beside the ones spelled as ours. */
const WRITEBACK: KeyRule[] = [
  { key: "localdb.source", to: "writeback.db" },
  { key: "writeback.poll_retries_interval", to: "writeback.poll_interval" },
  { key: "writeback.num_incoming_workers", to: "writeback.workers" },
  ...[
    "num_retry_workers",
    "incoming_buffer",
    "retry_buffer",
    "max_task_throughput",
    "sync_retry_backoff",
    "workqueue_metrics_emit_interval",
    "testing",
  ].map((k): KeyRule => ({
    key: `writeback.${k}`,
    ignore: "upstream's in-memory queue tuning; the queue here is the SQLite table alone",
  })),
];

/** Keys every upstream role has. */
const COMMON: KeyRule[] = [
  { key: "zap", ignore: LOGGING },
  { key: "logging", ignore: LOGGING },
  { key: "nginx", ignore: NO_NGINX },
  // upstream's tally reporters: statsd is ours too (tracing.statsd), M3's thrift one is not.
  {
    key: "metrics.backend",
    when: (v) => v === "statsd",
    to: "tracing.statsd.enabled",
    convert: () => true,
    note: "`tracing.statsd.enabled: true` (`backend: statsd`)",
  },
  { key: "metrics.statsd.host_port", to: "tracing.statsd.addr" },
  { key: "metrics.statsd.prefix", to: "tracing.statsd.prefix" },
  {
    key: "metrics.backend",
    ignore: "only statsd is sent (M3's thrift reporter is not implemented); /metrics serves all",
  },
  {
    key: "metrics.m3",
    ignore: "M3's thrift reporter is not implemented: point tracing.statsd at M3's statsd port",
  },
];

/** upstream's `backends[]` rows beside ours, and its backend manager. */
const BACKENDS: KeyRule[] = [
  { key: "backends[].bandwidth", ignore: NO_BANDWIDTH },
  { key: "backend_manager", ignore: "upstream's backend manager only configures its logging" },
];

const HEALTHCHECK_DEFAULT = { fails: 3, passes: 2, timeout: "3s", interval: "10s" };

/** An active health-check block: accepted when it says what this node does (upstream's defaults). */
function activeHealthCheck(key: string): KeyRule {
  return {
    key,
    refuse: "other health-check thresholds are not implemented (fails 3, passes 2, 3s timeout)",
    accept: (value) => {
      if (!isMap(value)) return value === null;
      const flat: Record<string, unknown> = { ...value };
      for (const nested of ["filter", "monitor"]) {
        if (isMap(value[nested])) Object.assign(flat, value[nested]);
        delete flat[nested];
      }
      return Object.entries(flat).every(([k, v]) =>
        (HEALTHCHECK_DEFAULT as Record<string, unknown>)[k] === v
      );
    },
    accepted: "upstream's defaults (`fails: 3`, `passes: 2`, `timeout: 3s`, `interval: 10s`)",
  };
}

const PASSIVE_HEALTHCHECK = (key: string): KeyRule => ({
  key,
  ignore: `${HEALTH_DEFAULTS} (3 failures in 5 min exclude a host for 5 min)`,
});

/** Each role's rows; main.ts applies them before the role's schema (see the module doc). */
export const UPSTREAM_KEYS: Readonly<Record<RoleName, readonly KeyRule[]>> = {
  agent: [
    ...COMMON,
    ...storeRules("store", ["download_dir", "cache_dir"], false),
    {
      key: "registry.docker",
      ignore: "upstream's embedded docker/distribution settings; the registry here is built in " +
        "and listens on registry.port (--agent-registry-port)",
    },
    { key: "allowed_cidrs", to: "registry.allowed_cidrs" },
    { key: "peer_id_factory", to: "peer.peer_id_factory" },
    { key: "scheduler.conn.handshake_timeout", to: "scheduler.handshake_timeout" },
    { key: "scheduler.conn.bandwidth", ignore: NO_BANDWIDTH },
    { key: "scheduler.conn.sender_buffer_size", ignore: "in-memory message buffer tuning" },
    { key: "scheduler.conn.receiver_buffer_size", ignore: "in-memory message buffer tuning" },
    { key: "scheduler.connstate.max_open_conn", to: "scheduler.max_open_conn" },
    { key: "scheduler.connstate.blacklist_duration", to: "scheduler.blacklist_duration" },
    {
      key: "scheduler.connstate.max_mutual_conn",
      ignore: "mutual connections are bounded by max_open_conn only",
    },
    {
      key: "scheduler.connstate.disable_blacklist",
      refuse: "the blacklist cannot be disabled",
      accept: isFalse,
      accepted: "`false`",
    },
    {
      key: "scheduler.dispatch.piece_request_min_timeout",
      to: "scheduler.piece_request_min_timeout",
    },
    {
      key: "scheduler.dispatch.piece_request_timeout_per_mb",
      to: "scheduler.piece_request_timeout_per_mb",
    },
    { key: "scheduler.dispatch.pipeline_limit", to: "scheduler.pipeline_limit" },
    { key: "scheduler.dispatch.origin_pipeline_limit", to: "scheduler.origin_pipeline_limit" },
    {
      key: "scheduler.dispatch.piece_request_policy",
      refuse: "pieces are requested rarest first only",
      accept: (v) => v === "rarest_first",
      accepted: "`rarest_first`",
    },
    { key: "scheduler.dispatch.endgame_threshold", ignore: "the endgame threshold is fixed" },
    {
      key: "scheduler.dispatch.disable_endgame",
      refuse: "endgame cannot be disabled",
      accept: isFalse,
      accepted: "`false`",
    },
    { key: "scheduler.log", ignore: LOGGING },
    { key: "scheduler.torrentlog", ignore: "no torrent log; downloads are traced instead" },
    ...["conn_tti", "conn_ttl", "preemption_interval", "emit_stats_interval", "probe_timeout"]
      .map((k): KeyRule => ({
        key: `scheduler.${k}`,
        ignore: "connection preemption and scheduler self-stats are not implemented",
      })),
    {
      key: "scheduler.disable_preemption",
      ignore: "connection preemption is not implemented (as if true)",
    },
    { key: "network_event", ignore: "no network event log; downloads are traced instead" },
    PASSIVE_HEALTHCHECK("tracker.healthcheck"),
    {
      key: "tracker.hashring",
      ignore: "the tracker ring uses upstream's defaults (max_replica 3)",
    },
    PASSIVE_HEALTHCHECK("build_index.healthcheck"),
    {
      key: "agentserver",
      ignore: "readiness answers are not cached (each /readiness asks the dependencies)",
    },
    { key: "registry_backup", ignore: "no backup registry" },
    { key: "container_runtime", ignore: "preloading into a container runtime is not implemented" },
    { key: "docker_daemon", ignore: "preloading into a container runtime is not implemented" },
  ],
  origin: [
    ...COMMON,
    { key: "verbose", ignore: LOGGING },
    { key: "cluster", to: "hashring.hosts" },
    {
      key: "hashring.membership_wait_timeout",
      ignore: "start-up does not wait for DNS membership: the first resolution must list this node",
    },
    {
      key: "hashring.membership_wait_interval",
      ignore: "start-up does not wait for DNS membership: the first resolution must list this node",
    },
    activeHealthCheck("healthcheck"),
    ...listenerRules("blobserver", "--port / --blobserver-port"),
    { key: "blobserver.duplicate_write_back_stagger", to: "duplicate_write_back_stagger" },
    { key: "castore.upload_cleanup.disabled", ignore: "upload expiry cannot be disabled" },
    { key: "castore.upload_cleanup.ttl", ignore: "upload expiry is by idle time (tti) only" },
    ...["aggressive_threshold", "aggressive_ttL", "aggressive_lower_threshold"].map((
      k,
    ): KeyRule => ({
      key: `castore.upload_cleanup.${k}`,
      ignore: "upload expiry does not depend on disk usage",
    })),
    { key: "castore.upload_cleanup", to: "upload_cleanup" },
    ...storeRules("castore", ["upload_dir", "cache_dir"], true),
    { key: "metainfogen", to: "metainfo" },
    {
      key: "peer_id_factory",
      refuse: "an origin's peer id is always addr_hash",
      accept: (v) => v === "addr_hash",
      accepted: "`addr_hash`",
    },
    { key: "scheduler", ignore: "the origin seeds with fixed scheduler settings" },
    { key: "network_event", ignore: "no network event log; transfers are traced instead" },
    { key: "blobrefresh", ignore: "backend fetches are not size-limited" },
    ...BACKENDS,
    ...WRITEBACK,
  ],
  tracker: [
    ...COMMON,
    ...listenerRules("trackerserver", "--port"),
    { key: "trackerserver.announce_interval", to: "announce_interval" },
    { key: "trackerserver.announce_limit", to: "handout.max_peers" },
    {
      key: "trackerserver.get_metainfo_limit",
      ignore: "metainfo requests are not rate-limited per digest",
    },
    { key: "peerhandoutpolicy.priority", to: "handout.policy" },
    {
      key: "peerstore.redis.enabled",
      to: "peerstore.type",
      convert: (v) => v === true ? "redis" : "memory",
      note: "`peerstore.type` (`true` → `redis`, else `memory`)",
    },
    { key: "peerstore.local.ttl", to: "peerstore.ttl" },
    { key: "origin.hosts", to: "origins.hosts" },
    activeHealthCheck("origin.healthcheck"),
  ],
  proxy: [
    ...COMMON,
    ...listenerRules("server", "--port"),
    {
      key: "server.prefetch_min_blob_size",
      ignore: "blobs are not prefetched into the proxy on manifest pulls",
    },
    {
      key: "server.prefetch_max_blob_size",
      ignore: "blobs are not prefetched into the proxy on manifest pulls",
    },
    ...storeRules("castore", ["upload_dir", "cache_dir"], false),
    {
      key: "registry.docker",
      ignore: "upstream's embedded docker/distribution settings; the registry here is built in " +
        "and listens on listen.port",
    },
    {
      key: "registryoverride",
      ignore: "the registry-override listener (catalog from build-index) is not implemented",
    },
    activeHealthCheck("origin.healthcheck"),
    activeHealthCheck("build_index.healthcheck"),
  ],
  "build-index": [
    ...COMMON,
    ...listenerRules("tagserver", "--port"),
    { key: "tagserver.duplicate_put_stagger", to: "cluster.duplicate_put_stagger" },
    { key: "tagserver.cache", ignore: "tag lookups are not cached in memory" },
    ...storeRules("store", ["upload_dir", "cache_dir"], false),
    {
      key: "tag_types[].root",
      ignore: "not a key of upstream's tag_types (Go ignores it too)",
    },
    activeHealthCheck("origin.healthcheck"),
    activeHealthCheck("cluster.healthcheck"),
    ...BACKENDS,
    ...WRITEBACK,
  ],
};

/**
 * Rewrites a role's YAML (with its `tracing:` block, which has no upstream counterpart) from
 * upstream's keys into ours; see the module doc.
 * @throws {ConfigError} naming a refused key
 */
export function translateUpstreamKeys(role: RoleName, raw: RawMap): KeyRulesResult {
  return applyKeyRules(UPSTREAM_KEYS[role], raw);
}
