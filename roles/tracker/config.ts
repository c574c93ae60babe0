/**
 * The tracker's YAML configuration: keys, defaults (upstream's) and validation that names the key.
 *
 * ```yaml
 * listen: { host: 0.0.0.0, port: 15003 }     # --host / --port override
 * origins:
 *   hosts: [origin1:15002, origin2:15002]    # origin cluster: metainfo and the origin store
 * announce_interval: 3s                      # sent to agents as their announce period
 * handout:
 *   policy: completeness                     # or default (kraken-wire.md §2.3)
 *   max_peers: 50                            # peers taken from the peer store per announce
 * peerstore:
 *   type: memory                             # or redis, shared by the trackers of a cluster
 *   ttl: 5h                                  # memory: an announce keeps a peer listed this long
 *   redis:
 *     addr: 127.0.0.1:14001                  # required when type is redis
 *     peer_set_window_size: 1h
 *     max_peer_set_windows: 5
 *     dial_timeout: 5s
 *     read_timeout: 30s
 *     write_timeout: 30s
 *     max_idle_conns: 10
 *     max_active_conns: 500
 *     idle_conn_timeout: 60s
 * originstore:
 *   locations_ttl: 10s
 *   locations_error_ttl: 1s
 *   origin_context_ttl: 10s
 *   origin_unavailable_ttl: 1m
 *   timeout: 5s                              # per /internal/peercontext request
 * ```
 *
 * @module
 */

import { ConfigError, Fields, parseHostPort, parsePort, type RawMap } from "../../common/config.ts";
import { HANDOUT_POLICIES, type HandoutPolicyName } from "./policy.ts";

/** Settings of the Redis peer store. */
export interface RedisStoreConfig {
  /** `host:port` of the Redis server. */
  addr: string;
  /** Peer set window, ms (a whole number of seconds). */
  windowSizeMs: number;
  /** Windows a peer set lives for and reads look at. */
  maxWindows: number;
  /** Connect timeout, ms. */
  dialTimeoutMs: number;
  /** Reply timeout, ms. */
  readTimeoutMs: number;
  /** Write timeout, ms. */
  writeTimeoutMs: number;
  /** Idle connections kept. */
  maxIdle: number;
  /** Connections open at once. */
  maxActive: number;
  /** Idle connections older than this are closed, ms. */
  idleTimeoutMs: number;
}

/** The validated tracker configuration. */
export interface TrackerConfig {
  /** Listen address; port 0 picks a free port (tests). */
  listen: { host: string; port: number };
  /** The origin cluster. */
  origins: { hosts: string[] };
  /** Announce period handed to agents, ms (sent as nanoseconds). */
  announceIntervalMs: number;
  /** Peer handout. */
  handout: {
    /** Priority policy. */
    policy: HandoutPolicyName;
    /** Peers taken from the peer store per announce (upstream `announce_limit`). */
    maxPeers: number;
  };
  /** Where announced peers are kept. */
  peerstore: {
    /** `memory` (this tracker only) or `redis` (shared). */
    type: "memory" | "redis";
    /** Memory store entry TTL, ms. */
    ttlMs: number;
    /** Redis store settings; present when `type` is `redis`. */
    redis: RedisStoreConfig | undefined;
  };
  /** Origin store caching. */
  originstore: {
    /** Cache time of a digest's locations, ms. */
    locationsTtlMs: number;
    /** Cache time of a failed locations lookup, ms. */
    locationsErrorTtlMs: number;
    /** Cache time of an origin's peer context, ms. */
    originContextTtlMs: number;
    /** Cache time of an unavailable origin, ms. */
    originUnavailableTtlMs: number;
    /** Timeout of one peer context request, ms. */
    timeoutMs: number;
  };
}

const TOP_KEYS = ["listen", "origins", "announce_interval", "handout", "peerstore", "originstore"];
const FLAGS = ["port", "host"];

function parseRedis(fields: Fields): RedisStoreConfig {
  const addr = fields.requiredString("addr");
  parseHostPort(addr, fields.key("addr"));
  const windowSizeMs = fields.positiveDuration("peer_set_window_size", 60 * 60_000);
  if (windowSizeMs < 1000 || !Number.isInteger(windowSizeMs / 1000)) {
    throw new ConfigError(
      fields.key("peer_set_window_size"),
      "must be a whole number of seconds (Redis expiry has second resolution)",
    );
  }
  return {
    addr,
    windowSizeMs,
    maxWindows: fields.int("max_peer_set_windows", 5, 1),
    dialTimeoutMs: fields.positiveDuration("dial_timeout", 5_000),
    readTimeoutMs: fields.positiveDuration("read_timeout", 30_000),
    writeTimeoutMs: fields.positiveDuration("write_timeout", 30_000),
    maxIdle: fields.int("max_idle_conns", 10, 0),
    maxActive: fields.int("max_active_conns", 500, 1),
    idleTimeoutMs: fields.positiveDuration("idle_conn_timeout", 60_000),
  };
}

/**
 * Validates the tracker's part of the YAML (everything but `tracing:`), applying defaults and the
 * `--port` / `--host` flags.
 * @throws {ConfigError} naming the first offending key or flag
 */
export function parseTrackerConfig(raw: RawMap, flags: Record<string, string> = {}): TrackerConfig {
  for (const flag of Object.keys(flags)) {
    if (!FLAGS.includes(flag)) {
      throw new ConfigError(`--${flag}`, "unknown tracker flag (allowed: --port, --host)");
    }
  }
  if (flags.host === "") throw new ConfigError("--host", "must not be empty");
  const top = new Fields(raw, "", TOP_KEYS);

  const listenFields = top.map("listen", ["host", "port"]);
  const listen = {
    host: flags.host ?? listenFields.string("host", "0.0.0.0"),
    port: flags.port !== undefined
      ? parsePort(flags.port, "--port")
      : parsePort(listenFields.raw("port") ?? 15003, listenFields.key("port")),
  };

  const originFields = top.map("origins", ["hosts"]);
  const hosts = originFields.hostList("hosts", false);
  if (hosts.length === 0) {
    throw new ConfigError(originFields.key("hosts"), "needs at least one origin host:port");
  }

  const handoutFields = top.map("handout", ["policy", "max_peers"]);
  const policy = handoutFields.string("policy", "completeness");
  if (!(HANDOUT_POLICIES as readonly string[]).includes(policy)) {
    throw new ConfigError(
      handoutFields.key("policy"),
      `must be one of ${HANDOUT_POLICIES.join(", ")}, got ${JSON.stringify(policy)}`,
    );
  }

  const storeFields = top.map("peerstore", ["type", "ttl", "redis"]);
  const type = storeFields.string("type", "memory");
  if (type !== "memory" && type !== "redis") {
    throw new ConfigError(
      storeFields.key("type"),
      `must be memory or redis, got ${JSON.stringify(type)}`,
    );
  }
  const redisFields = storeFields.map("redis", [
    "addr",
    "peer_set_window_size",
    "max_peer_set_windows",
    "dial_timeout",
    "read_timeout",
    "write_timeout",
    "max_idle_conns",
    "max_active_conns",
    "idle_conn_timeout",
  ]);

  const os = top.map("originstore", [
    "locations_ttl",
    "locations_error_ttl",
    "origin_context_ttl",
    "origin_unavailable_ttl",
    "timeout",
  ]);

  return {
    listen,
    origins: { hosts },
    announceIntervalMs: top.positiveDuration("announce_interval", 3_000),
    handout: {
      policy: policy as HandoutPolicyName,
      maxPeers: handoutFields.int("max_peers", 50, 1),
    },
    peerstore: {
      type,
      ttlMs: storeFields.positiveDuration("ttl", 5 * 60 * 60_000),
      redis: type === "redis" ? parseRedis(redisFields) : undefined,
    },
    originstore: {
      locationsTtlMs: os.positiveDuration("locations_ttl", 10_000),
      locationsErrorTtlMs: os.positiveDuration("locations_error_ttl", 1_000),
      originContextTtlMs: os.positiveDuration("origin_context_ttl", 10_000),
      originUnavailableTtlMs: os.positiveDuration("origin_unavailable_ttl", 60_000),
      timeoutMs: os.positiveDuration("timeout", 5_000),
    },
  };
}
