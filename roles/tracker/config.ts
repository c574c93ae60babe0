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

import { ConfigError, type RawMap } from "../../common/config.ts";
import {
  applyFlags,
  duration,
  hostPort,
  type Infer,
  int,
  listen,
  LISTEN_FLAGS,
  object,
  oneOf,
} from "../../common/schema.ts";
import { HANDOUT_POLICIES } from "./policy.ts";
import { listenerLimitsSchema } from "../../http/listener_config.ts";
import { tlsSchema } from "../../http/tls_config.ts";
import { hostListSchema } from "../../cluster/hostlist_config.ts";

const redisSchema = object({
  addr: hostPort().optional("required with `type: redis`")
    .describe("Redis `host:port`. Start-up fails if it does not answer `PING`."),
  peer_set_window_size: duration({ positive: true }).default("1h")
    .check((ms) =>
      ms >= 1000 && Number.isInteger(ms / 1000)
        ? undefined
        : "must be a whole number of seconds (Redis expiry has second resolution)"
    )
    .describe("Peer sets are cut into windows of this size (whole seconds)."),
  max_peer_set_windows: int({ min: 1 }).default(5).describe(
    "Windows a peer set lives for and reads look at: a peer stays listed up to `size × windows` " +
      "after its last announce.",
  ),
  dial_timeout: duration({ positive: true }).default("5s").describe("Connect timeout."),
  read_timeout: duration({ positive: true }).default("30s").describe("Timeout per reply."),
  write_timeout: duration({ positive: true }).default("30s").describe("Timeout per write."),
  max_idle_conns: int({ min: 0 }).default(10).describe("Idle connections kept."),
  max_active_conns: int({ min: 1 }).default(500)
    .describe("Connections open at once; more requests wait for one."),
  idle_conn_timeout: duration({ positive: true }).default("60s")
    .describe("Idle connections older than this are closed."),
}, {
  rename: {
    peer_set_window_size: "windowSizeMs",
    max_peer_set_windows: "maxWindows",
    dial_timeout: "dialTimeoutMs",
    read_timeout: "readTimeoutMs",
    write_timeout: "writeTimeoutMs",
    max_idle_conns: "maxIdle",
    max_active_conns: "maxActive",
    idle_conn_timeout: "idleTimeoutMs",
  },
});

/** Settings of the Redis peer store. */
export type RedisStoreConfig = Infer<typeof redisSchema> & { addr: string };

const fields = object({
  listen: listen({ host: "0.0.0.0", port: 15003 }),
  tls: tlsSchema,
  http: listenerLimitsSchema,
  origins: object({
    hosts: hostListSchema().describe(
      "Origin cluster members (a host list). Locations are asked of up to 3 random members.",
    ),
  }),
  announce_interval: duration({ positive: true }).default("3s").describe(
    "Sent to agents in every announce answer (as nanoseconds). Go agents replace 0 and anything " +
      "over 60 s with 5 s.",
  ),
  handout: object({
    policy: oneOf(HANDOUT_POLICIES).default("completeness").describe(
      "`completeness`: complete agents, then origins, then incomplete agents. `default`: store " +
        "order (random).",
    ),
    max_peers: int({ min: 1 }).default(50).describe(
      "Peers taken from the peer store per announce (upstream `announce_limit`). Origins are " +
        "added on top.",
    ),
  }, { rename: { max_peers: "maxPeers" } }),
  peerstore: object({
    type: oneOf(["memory", "redis"]).default("memory").describe(
      "`memory`: this tracker's own memory. `redis`: shared by every tracker pointed at the same " +
        "Redis (Go trackers included).",
    ),
    ttl: duration({ positive: true }).default("5h").describe(
      "Memory store: how long an announce keeps a peer listed. Expired entries are never handed " +
        "out and are swept every 5 min.",
    ),
    redis: redisSchema,
  }, { rename: { ttl: "ttlMs" } }).map(({ redis, ...store }, key) => {
    if (store.type !== "redis") return { ...store, redis: undefined };
    const addr = redis.addr;
    if (addr === undefined) throw new ConfigError(`${key}.redis.addr`, "is required");
    return { ...store, redis: { ...redis, addr } as RedisStoreConfig | undefined };
  }),
  originstore: object({
    locations_ttl: duration({ positive: true }).default("10s")
      .describe("Cache time of a digest's origin locations."),
    locations_error_ttl: duration({ positive: true }).default("1s")
      .describe("Cache time of a failed locations lookup."),
    origin_context_ttl: duration({ positive: true }).default("10s")
      .describe("Cache time of an origin's P2P identity (`/internal/peercontext`)."),
    origin_unavailable_ttl: duration({ positive: true }).default("1m").describe(
      "Cache time of an origin that did not answer: a dead origin costs one timeout a minute, " +
        "not one per announce.",
    ),
    timeout: duration({ positive: true }).default("5s")
      .describe("Timeout of one `/internal/peercontext` request."),
  }, {
    rename: {
      locations_ttl: "locationsTtlMs",
      locations_error_ttl: "locationsErrorTtlMs",
      origin_context_ttl: "originContextTtlMs",
      origin_unavailable_ttl: "originUnavailableTtlMs",
      timeout: "timeoutMs",
    },
  }),
}, { rename: { announce_interval: "announceIntervalMs" } });

/** The tracker's keys (everything but `tracing:`), defaults beside them. */
export const trackerConfigSchema = fields;

/** The validated tracker configuration. */
export type TrackerConfig = Infer<typeof trackerConfigSchema>;

/**
 * Validates the tracker's part of the YAML (everything but `tracing:`), applying defaults and the
 * `--port` / `--host` flags.
 * @throws {ConfigError} naming the first offending key or flag
 */
export function parseTrackerConfig(raw: RawMap, flags: Record<string, string> = {}): TrackerConfig {
  return trackerConfigSchema.parse(applyFlags(fields, raw, flags, LISTEN_FLAGS), "");
}
