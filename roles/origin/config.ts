/**
 * The origin's YAML configuration: keys, defaults and validation (errors name the key).
 *
 * ```yaml
 * listen: { host: 127.0.0.1, port: 15002 }   # --host / --port override
 * advertise: origin1:15002                   # this origin's ring label
 * hashring:
 *   hosts: [origin1:15002, origin2:15002]    # omitted: a one-origin ring of `advertise`
 *   max_replica: 2
 *   refresh_interval: 10s                    # health-check period of the other members
 * storage: { root: /var/cache/kraken/origin }
 * metainfo: { piece_lengths: { 0: 4MB } }
 * backends:                                  # storage/backend/config.ts, plus must_ready
 *   - namespace: ".*"
 *     backend: { file: { root: backend, name_path: identity } }
 *     must_ready: false
 * writeback: { db: <root>/origin.db, retry_interval: 30s, poll_interval: 15s, workers: 4 }
 * duplicate_write_back_stagger: 30m
 * ```
 *
 * Relative paths (`storage.root`, `writeback.db`, `file` backend roots) are resolved against the
 * directory of the config file when the caller knows it, else against the working directory.
 *
 * @module
 */

import { isAbsolute, resolve } from "node:path";
import { ConfigError, Fields, parseHostPort, parsePort, type RawMap } from "../../common/config.ts";
import {
  BackendConfigError,
  type BackendsConfigOptions,
  parseBackendsConfig,
} from "../../storage/backend/config.ts";
import type { BackendEntry } from "../../storage/backend/backend.ts";
import { PieceLengthTable } from "../../storage/metainfo.ts";

/** A backend mapping row plus the readiness flag the origin adds. */
export interface OriginBackendEntry extends BackendEntry {
  /** Whether `/readiness` requires this backend to answer a stat. */
  mustReady: boolean;
}

/** The validated origin configuration. */
export interface OriginConfig {
  /** Listen address. Port 0 picks a free port (tests). */
  listen: { host: string; port: number };
  /** This origin's label in the ring; undefined = `<listen.host>:<bound port>`. */
  advertise: string | undefined;
  /** The origin ring. */
  hashring: {
    /** Ring members; undefined = a one-origin ring made of `advertise`. */
    hosts: string[] | undefined;
    /** Positions `locations` examines (upstream `max_replica`). */
    maxReplica: number;
    /** Period of the health checks of the other members, ms. */
    refreshIntervalMs: number;
  };
  /** Blob store root (absolute). */
  storageRoot: string;
  /** Piece-length table for metainfo generation. */
  pieceLengths: PieceLengthTable;
  /** Namespace → backend mapping, in order. */
  backends: OriginBackendEntry[];
  /** Write-back queue settings. */
  writeback: {
    /** SQLite database file (absolute). */
    db: string;
    /** Minimum time between attempts of a failed task, ms. */
    retryIntervalMs: number;
    /** How often failed tasks are rescanned, ms. */
    pollIntervalMs: number;
    /** Concurrent write-backs. */
    workers: number;
  };
  /** Replica i's write-back is delayed by `stagger × (i + 1)`, ms. */
  duplicateWriteBackStaggerMs: number;
  /** The P2P seeding listener and the identity announced for it. */
  peer: {
    /** Listen address of the peer port. */
    host: string;
    /** Peer port (upstream default 15001); 0 picks a free one. */
    port: number;
    /** IP announced to peers; default the listen host (127.0.0.1 for 0.0.0.0). */
    ip: string | undefined;
    /** PeerContext zone. */
    zone: string;
    /** PeerContext cluster. */
    cluster: string;
  };
}

/** Options of {@linkcode parseOriginConfig}. */
export interface ParseOriginConfigOptions {
  /** Directory relative paths are resolved against (default: the working directory). */
  baseDir?: string;
  /** Fetch for HTTP backends (default: the backends' own default). */
  fetch?: BackendsConfigOptions["fetch"];
}

const TOP_KEYS = [
  "listen",
  "advertise",
  "hashring",
  "storage",
  "metainfo",
  "backends",
  "writeback",
  "duplicate_write_back_stagger",
  "peer",
] as const;

const FLAGS = ["port", "host", "peer-port"];

/** The default piece-length table of upstream's base config: 4 MiB pieces for every blob. */
export const DEFAULT_PIECE_LENGTHS = { 0: "4MB" } as const;

/**
 * Validates the origin's part of the YAML (everything but `tracing:`) and applies `--port` and
 * `--host` from `flags`.
 * @throws {ConfigError} naming the first offending key or flag
 */
export function parseOriginConfig(
  raw: RawMap,
  flags: Record<string, string> = {},
  options: ParseOriginConfigOptions = {},
): OriginConfig {
  for (const flag of Object.keys(flags)) {
    if (!FLAGS.includes(flag)) {
      throw new ConfigError(
        `--${flag}`,
        `unknown origin flag (allowed: --port, --host, --peer-port)`,
      );
    }
  }
  const baseDir = resolve(options.baseDir ?? Deno.cwd());
  const abs = (p: string) => isAbsolute(p) ? p : resolve(baseDir, p);
  const top = new Fields(raw, "", TOP_KEYS);

  const listenFields = top.map("listen", ["host", "port"]);
  const listen = {
    host: flags.host ?? listenFields.string("host", "127.0.0.1"),
    port: flags.port !== undefined
      ? parsePort(flags.port, "--port")
      : parsePort(listenFields.raw("port") ?? 15002, listenFields.key("port")),
  };
  if (flags.host === "") throw new ConfigError("--host", "must not be empty");

  let advertise: string | undefined;
  if (top.has("advertise")) {
    advertise = top.string("advertise", "");
    parseHostPort(advertise, "advertise");
  } else if (listen.port !== 0) {
    advertise = `${listen.host}:${listen.port}`;
  }

  const ring = top.map("hashring", ["hosts", "max_replica", "refresh_interval"]);
  let hosts: string[] | undefined;
  if (ring.has("hosts")) {
    hosts = ring.hostList("hosts", false);
    if (hosts.length === 0) throw new ConfigError(ring.key("hosts"), "must not be empty");
    if (advertise !== undefined && !hosts.includes(advertise)) {
      throw new ConfigError(
        top.has("advertise") ? "advertise" : "listen",
        `this origin's ring label ${advertise} is not in hashring.hosts (${hosts.join(", ")})`,
      );
    }
    if (advertise === undefined) {
      throw new ConfigError(
        "advertise",
        "required when listen.port is 0 and hashring.hosts is set",
      );
    }
  }
  const hashring = {
    hosts,
    maxReplica: ring.int("max_replica", 2, 1),
    refreshIntervalMs: ring.positiveDuration("refresh_interval", 10_000),
  };

  const storage = top.map("storage", ["root"]);
  const storageRoot = abs(storage.requiredString("root"));

  const metainfo = top.map("metainfo", ["piece_lengths"]);
  let pieceLengths: PieceLengthTable;
  try {
    const table = metainfo.raw("piece_lengths") ?? DEFAULT_PIECE_LENGTHS;
    if (typeof table !== "object" || table === null || Array.isArray(table)) {
      throw new Error("must be a mapping of blob size to piece length, e.g. {0: 4MB}");
    }
    pieceLengths = new PieceLengthTable(table as Record<string, string | number>);
  } catch (error) {
    throw new ConfigError(metainfo.key("piece_lengths"), (error as Error).message);
  }

  const backends = parseBackends(top.raw("backends"), { baseDir, fetch: options.fetch });

  const wb = top.map("writeback", ["db", "retry_interval", "poll_interval", "workers"]);
  const writeback = {
    db: abs(wb.string("db", resolve(storageRoot, "origin.db"))),
    retryIntervalMs: wb.duration("retry_interval", 30_000),
    pollIntervalMs: wb.positiveDuration("poll_interval", 15_000),
    workers: wb.int("workers", 4, 1),
  };

  return {
    listen,
    advertise,
    hashring,
    storageRoot,
    pieceLengths,
    backends,
    writeback,
    duplicateWriteBackStaggerMs: top.duration("duplicate_write_back_stagger", 30 * 60_000),
    peer: parsePeer(top, flags),
  };
}

/** The `peer:` block: where the origin seeds its blobs over P2P. */
function parsePeer(top: Fields, flags: Record<string, string>): OriginConfig["peer"] {
  const peer = top.map("peer", ["host", "port", "ip", "zone", "cluster"]);
  const port = flags["peer-port"] !== undefined
    ? parsePort(flags["peer-port"], "--peer-port")
    : parsePort(peer.raw("port") ?? 15001, peer.key("port"));
  return {
    host: peer.string("host", "0.0.0.0"),
    port,
    ip: peer.has("ip") ? peer.string("ip", "") : undefined,
    zone: peer.has("zone") ? peer.string("zone", "") : "",
    cluster: peer.has("cluster") ? peer.string("cluster", "") : "",
  };
}

/**
 * Parses `backends:`, taking the origin's `must_ready` flag off each entry first (the shared
 * parser knows only `namespace` and `backend`).
 */
function parseBackends(raw: unknown, options: BackendsConfigOptions): OriginBackendEntry[] {
  const mustReady: boolean[] = [];
  let stripped = raw;
  if (Array.isArray(raw)) {
    stripped = raw.map((entry, i) => {
      if (typeof entry !== "object" || entry === null || Array.isArray(entry)) return entry;
      const { must_ready: flag, ...rest } = entry as RawMap;
      if (flag !== undefined && flag !== null && typeof flag !== "boolean") {
        throw new ConfigError(`backends[${i}].must_ready`, "must be true or false");
      }
      mustReady[i] = flag === true;
      return rest;
    });
  }
  try {
    return parseBackendsConfig(stripped, options).map((entry, i) => ({
      ...entry,
      mustReady: mustReady[i] ?? false,
    }));
  } catch (error) {
    if (error instanceof BackendConfigError) {
      throw new ConfigError(error.key, error.message.slice(error.key.length + 2));
    }
    throw error;
  }
}
