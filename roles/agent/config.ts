/**
 * The agent's YAML configuration: keys, defaults and validation (errors name the key).
 *
 * ```yaml
 * server: { host: 127.0.0.1, port: 16002 }        # agent server; --agent-server-port overrides
 * registry:                                       # Registry v2 (docker pull); --agent-registry-port
 *   host: 127.0.0.1
 *   port: 16000
 *   allowed_cidrs: [127.0.0.1/32, ::1/128, 172.17.0.1/32]
 *   max_manifest_size: 4MB
 * peer:                                           # P2P; --peer-ip / --peer-port override
 *   ip: 127.0.0.1                                 # announced to trackers
 *   port: 16001
 *   host: 127.0.0.1                               # listen address (default: ip)
 *   peer_id_factory: addr_hash                    # or random
 * tracker: { hosts: [127.0.0.1:15003] }
 * build_index: { hosts: [127.0.0.1:15004] }
 * storage: { root: /var/cache/kraken/agent }
 * scheduler:
 *   seeder_tti: 5m
 *   leecher_tti: 5m
 *   announce_interval: 5s
 *   max_announce_interval: 60s
 *   handshake_timeout: 5s
 *   blacklist_duration: 30s
 *   max_open_conn: 10
 *   pipeline_limit: 3
 *   origin_pipeline_limit: 5
 *   piece_request_min_timeout: 4s
 *   piece_request_timeout_per_mb: 4s
 *   metainfo_timeout: 15m
 * ```
 *
 * A relative `storage.root` is resolved against the config file's directory when the caller knows
 * it, else against the working directory.
 *
 * @module
 */

import type { RawMap } from "../../common/config.ts";
import {
  applyFlags,
  byteSize as byteSizeSchema,
  duration,
  type Infer,
  int,
  list,
  object,
  oneOf,
  path,
  port,
  string,
} from "../../common/schema.ts";
import { NetworkList } from "../../common/cidr.ts";
import { listenerLimitsSchema } from "../../http/listener_config.ts";
import { tlsSchema } from "../../http/tls_config.ts";
import { hostListSchema } from "../../cluster/hostlist_config.ts";

/** Upstream's base `allowed_cidrs`, plus the IPv6 loopback. */
export const DEFAULT_ALLOWED_CIDRS = ["127.0.0.1/32", "::1/128", "172.17.0.1/32"];

const byteSize = byteSizeSchema({ positive: true });

const schedulerSchema = object({
  seeder_tti: duration({ positive: true }).default("5m").describe(
    "A complete torrent without traffic this long leaves memory (the file stays; a peer " +
      "connecting reloads it).",
  ),
  leecher_tti: duration({ positive: true }).default("5m").describe(
    "A download without traffic this long fails with `torrent timed out`; its partial file is " +
      "deleted.",
  ),
  announce_interval: duration({ positive: true }).default("5s").describe(
    "Announce period when the tracker sends interval 0, or one above `max_announce_interval`.",
  ),
  max_announce_interval: duration({ positive: true }).default("60s")
    .describe("Largest tracker interval honoured."),
  handshake_timeout: duration({ positive: true }).default("5s")
    .describe("Dial and each handshake step."),
  blacklist_duration: duration().default("30s").describe(
    "A peer whose dial failed or whose connection closed is not redialed for this torrent for " +
      "this long.",
  ),
  max_open_conn: int({ min: 1 }).default(10).describe(
    "Connections per torrent, pending and active.",
  ),
  pipeline_limit: int({ min: 1 }).default(3)
    .describe("Outstanding piece requests per agent peer."),
  origin_pipeline_limit: int({ min: 1 }).default(5)
    .describe("Outstanding piece requests per origin peer."),
  piece_request_min_timeout: duration({ positive: true }).default("4s")
    .describe("Piece request timeout is max(this, per_mb × piece MiB)."),
  piece_request_timeout_per_mb: duration({ positive: true }).default("4s")
    .describe("Piece request timeout per MiB of piece."),
  metainfo_timeout: duration({ positive: true }).default("15m").describe(
    "How long metainfo is polled while the tracker answers 202 (origin fetching from its " +
      "backend).",
  ),
}, {
  rename: {
    seeder_tti: "seederTtiMs",
    leecher_tti: "leecherTtiMs",
    announce_interval: "announceIntervalMs",
    max_announce_interval: "maxAnnounceIntervalMs",
    handshake_timeout: "handshakeTimeoutMs",
    blacklist_duration: "blacklistDurationMs",
    max_open_conn: "maxOpenConn",
    pipeline_limit: "pipelineLimit",
    origin_pipeline_limit: "originPipelineLimit",
    piece_request_min_timeout: "pieceRequestMinTimeoutMs",
    piece_request_timeout_per_mb: "pieceRequestTimeoutPerMbMs",
    metainfo_timeout: "metainfoTimeoutMs",
  },
});

/** The scheduler block (milliseconds for durations). */
export type AgentSchedulerConfig = Infer<typeof schedulerSchema>;

const fields = object({
  server: object({
    host: string().default("127.0.0.1").describe("Interface of the agent server."),
    port: port().default(16002).describe(
      "Agent server port; `--agent-server-port` overrides it. `0` picks a free port.",
    ),
  }),
  registry: object({
    host: string().default("127.0.0.1").describe("Interface of the registry."),
    port: port().default(16000).describe("Registry port; `--agent-registry-port` overrides it."),
    allowed_cidrs: list(string(), { of: "non-empty strings" }).default(DEFAULT_ALLOWED_CIDRS)
      .check((cidrs) => {
        try {
          NetworkList.parse(cidrs);
          return undefined;
        } catch (error) {
          return (error as Error).message;
        }
      })
      .describe("Clients allowed to pull (upstream's nginx allow list). Others get 403 `DENIED`."),
    max_manifest_size: byteSize.default("4MB")
      .describe("Largest manifest read into memory (binary units)."),
  }, { rename: { allowed_cidrs: "allowedCidrs", max_manifest_size: "maxManifestBytes" } }),
  peer: object({
    ip: string().default("127.0.0.1")
      .describe("P2P address announced to trackers; `--peer-ip` overrides it."),
    port: port().default(16001).describe(
      "Peer port (listened on and announced); `--peer-port` overrides it. `0` picks one and " +
        "announces it.",
    ),
    host: string().optional("`peer.ip`")
      .describe("Interface the peer port listens on (`0.0.0.0` for all)."),
    peer_id_factory: oneOf(["addr_hash", "random"]).default("addr_hash").describe(
      '`addr_hash`: SHA-1 of `"<ip>:<port>"` (upstream\'s base config); `random`: 20 random ' +
        "bytes.",
    ),
  }, { rename: { peer_id_factory: "peerIdFactory" } }),
  tracker: object({
    hosts: hostListSchema().describe(
      "Tracker ring members: a list of `host:port`, `static:` or `dns:` (below), spelled as on " +
        "every other node (they are hashed).",
    ),
  }),
  build_index: object({
    hosts: hostListSchema().describe(
      "Build-index hosts for tag lookups (up to 3 random hosts tried, next on network errors).",
    ),
  }),
  storage: object({
    root: path().describe("Blob store directory (`cache/`, `uploads/`, `tmp/`, `downloads/`)."),
  }),
  scheduler: schedulerSchema,
  tls: tlsSchema,
  http: listenerLimitsSchema.describe("Limits of each of the two listeners (server, registry)."),
}, { rename: { build_index: "buildIndex" } });

/** Flags that override keys, as upstream's agent command line names them. */
const FLAGS = {
  "agent-server-port": "server.port",
  "agent-registry-port": "registry.port",
  "peer-port": "peer.port",
  "peer-ip": "peer.ip",
};

/** The agent's keys (everything but `tracing:`), defaults beside them. */
export const agentConfigSchema = fields.map(({ storage, peer, ...rest }) => ({
  ...rest,
  peer: { ...peer, host: peer.host ?? peer.ip },
  storageRoot: storage.root,
}));

/** The validated agent configuration. */
export type AgentConfig = Infer<typeof agentConfigSchema>;

/** Options of {@linkcode parseAgentConfig}. */
export interface ParseAgentConfigOptions {
  /** Directory a relative `storage.root` is resolved against (default: working directory). */
  baseDir?: string;
}

/**
 * Validates the agent's part of the YAML (everything but `tracing:`), applying the flags
 * `--agent-server-port`, `--agent-registry-port`, `--peer-port` and `--peer-ip`.
 * @throws {ConfigError} naming the first offending key or flag
 */
export function parseAgentConfig(
  raw: RawMap,
  flags: Record<string, string> = {},
  options: ParseAgentConfigOptions = {},
): AgentConfig {
  return agentConfigSchema.parse(applyFlags(fields, raw, flags, FLAGS), "", {
    baseDir: options.baseDir,
  });
}
