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

import { isAbsolute, resolve } from "node:path";
import { ConfigError, Fields, parsePort, type RawMap } from "../../common/config.ts";
import { parseByteSize } from "../../storage/metainfo.ts";
import { NetworkList } from "../../common/cidr.ts";

/** A listen address; port 0 picks a free port (tests). */
export interface ListenConfig {
  /** Interface to bind. */
  host: string;
  /** Port. */
  port: number;
}

/** The scheduler block (milliseconds for durations). */
export interface AgentSchedulerConfig {
  /** Idle complete torrents leave memory after this long. */
  seederTtiMs: number;
  /** Idle incomplete torrents are cancelled after this long. */
  leecherTtiMs: number;
  /** Announce period when the tracker sends none. */
  announceIntervalMs: number;
  /** Largest tracker interval honoured. */
  maxAnnounceIntervalMs: number;
  /** Dial and handshake step timeout. */
  handshakeTimeoutMs: number;
  /** How long a failed peer is not redialed. */
  blacklistDurationMs: number;
  /** Connections per torrent. */
  maxOpenConn: number;
  /** Outstanding requests per agent peer. */
  pipelineLimit: number;
  /** Outstanding requests per origin peer. */
  originPipelineLimit: number;
  /** Lower bound of the piece request timeout. */
  pieceRequestMinTimeoutMs: number;
  /** Piece request timeout per MiB of piece. */
  pieceRequestTimeoutPerMbMs: number;
  /** How long metainfo is polled while the tracker answers 202. */
  metainfoTimeoutMs: number;
}

/** The validated agent configuration. */
export interface AgentConfig {
  /** Agent server (blob API, tags, health). */
  server: ListenConfig;
  /** Registry v2 read API. */
  registry: ListenConfig & {
    /** Clients allowed to pull (upstream's nginx `allowed_cidrs`); others get 403. */
    allowedCidrs: string[];
    /** Largest manifest read into memory, bytes. */
    maxManifestBytes: number;
  };
  /** P2P identity and listener. */
  peer: {
    /** IP announced to trackers. */
    ip: string;
    /** Peer port (listen and announced; 0 picks one and announces it). */
    port: number;
    /** Listen address of the peer port. */
    host: string;
    /** `addr_hash` (SHA-1 of `ip:port`) or `random`. */
    peerIdFactory: "addr_hash" | "random";
  };
  /** Tracker ring members, `host:port`. */
  tracker: { hosts: string[] };
  /** Build-index hosts, `host:port`. */
  buildIndex: { hosts: string[] };
  /** Blob store root (absolute). */
  storageRoot: string;
  /** Scheduler timers and limits. */
  scheduler: AgentSchedulerConfig;
}

/** Options of {@linkcode parseAgentConfig}. */
export interface ParseAgentConfigOptions {
  /** Directory a relative `storage.root` is resolved against (default: working directory). */
  baseDir?: string;
}

const TOP_KEYS = [
  "server",
  "registry",
  "peer",
  "tracker",
  "build_index",
  "storage",
  "scheduler",
] as const;

const SCHEDULER_KEYS = [
  "seeder_tti",
  "leecher_tti",
  "announce_interval",
  "max_announce_interval",
  "handshake_timeout",
  "blacklist_duration",
  "max_open_conn",
  "pipeline_limit",
  "origin_pipeline_limit",
  "piece_request_min_timeout",
  "piece_request_timeout_per_mb",
  "metainfo_timeout",
] as const;

/** Flags that override keys, as upstream's agent command line names them. */
const FLAGS: Record<string, string> = {
  "agent-server-port": "server.port",
  "agent-registry-port": "registry.port",
  "peer-port": "peer.port",
  "peer-ip": "peer.ip",
};

/** Upstream's base `allowed_cidrs`, plus the IPv6 loopback. */
export const DEFAULT_ALLOWED_CIDRS = ["127.0.0.1/32", "::1/128", "172.17.0.1/32"];

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
  for (const flag of Object.keys(flags)) {
    if (!(flag in FLAGS)) {
      const allowed = Object.keys(FLAGS).map((f) => `--${f}`).join(", ");
      throw new ConfigError(`--${flag}`, `unknown agent flag (allowed: ${allowed})`);
    }
  }
  const top = new Fields(raw, "", TOP_KEYS);

  const listen = (name: string, dfltPort: number, extra: readonly string[] = []) => {
    const f = top.map(name, ["host", "port", ...extra]);
    const flag = Object.keys(FLAGS).find((k) => FLAGS[k] === `${name}.port`);
    const port = flag && flags[flag] !== undefined
      ? parsePort(flags[flag], `--${flag}`)
      : parsePort(f.raw("port") ?? dfltPort, f.key("port"));
    return { f, listen: { host: f.string("host", "127.0.0.1"), port } };
  };

  const server = listen("server", 16002).listen;

  const reg = listen("registry", 16000, ["allowed_cidrs", "max_manifest_size"]);
  const allowedCidrs = reg.f.stringList("allowed_cidrs", DEFAULT_ALLOWED_CIDRS);
  try {
    NetworkList.parse(allowedCidrs);
  } catch (error) {
    throw new ConfigError(reg.f.key("allowed_cidrs"), (error as Error).message);
  }
  let maxManifestBytes: number;
  try {
    maxManifestBytes = parseByteSize((reg.f.raw("max_manifest_size") ?? "4MB") as string | number);
    if (maxManifestBytes === 0) throw new RangeError("must be > 0");
  } catch (error) {
    throw new ConfigError(reg.f.key("max_manifest_size"), (error as Error).message);
  }

  const peerFields = top.map("peer", ["ip", "port", "host", "peer_id_factory"]);
  const ip = flags["peer-ip"] ?? peerFields.string("ip", "127.0.0.1");
  if (ip === "") throw new ConfigError("--peer-ip", "must not be empty");
  const factory = peerFields.string("peer_id_factory", "addr_hash");
  if (factory !== "addr_hash" && factory !== "random") {
    throw new ConfigError(peerFields.key("peer_id_factory"), "must be addr_hash or random");
  }
  const peer = {
    ip,
    port: flags["peer-port"] !== undefined
      ? parsePort(flags["peer-port"], "--peer-port")
      : parsePort(peerFields.raw("port") ?? 16001, peerFields.key("port")),
    host: peerFields.string("host", ip),
    peerIdFactory: factory as "addr_hash" | "random",
  };

  const hosts = (name: string) => {
    const f = top.map(name, ["hosts"]);
    if (!f.has("hosts")) throw new ConfigError(f.key("hosts"), "is required");
    const list = f.hostList("hosts", false);
    if (list.length === 0) throw new ConfigError(f.key("hosts"), "must not be empty");
    return list;
  };

  const storage = top.map("storage", ["root"]);
  const root = storage.requiredString("root");
  const baseDir = resolve(options.baseDir ?? Deno.cwd());

  const s = top.map("scheduler", SCHEDULER_KEYS);
  const scheduler: AgentSchedulerConfig = {
    seederTtiMs: s.positiveDuration("seeder_tti", 5 * 60_000),
    leecherTtiMs: s.positiveDuration("leecher_tti", 5 * 60_000),
    announceIntervalMs: s.positiveDuration("announce_interval", 5000),
    maxAnnounceIntervalMs: s.positiveDuration("max_announce_interval", 60_000),
    handshakeTimeoutMs: s.positiveDuration("handshake_timeout", 5000),
    blacklistDurationMs: s.duration("blacklist_duration", 30_000),
    maxOpenConn: s.int("max_open_conn", 10, 1),
    pipelineLimit: s.int("pipeline_limit", 3, 1),
    originPipelineLimit: s.int("origin_pipeline_limit", 5, 1),
    pieceRequestMinTimeoutMs: s.positiveDuration("piece_request_min_timeout", 4000),
    pieceRequestTimeoutPerMbMs: s.positiveDuration("piece_request_timeout_per_mb", 4000),
    metainfoTimeoutMs: s.positiveDuration("metainfo_timeout", 15 * 60_000),
  };

  return {
    server,
    registry: { ...reg.listen, allowedCidrs, maxManifestBytes },
    peer,
    tracker: { hosts: hosts("tracker") },
    buildIndex: { hosts: hosts("build_index") },
    storageRoot: isAbsolute(root) ? root : resolve(baseDir, root),
    scheduler,
  };
}
