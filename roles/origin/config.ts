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
 * writeback: { db: <root>/origin.db, retry_interval: 30s, max_retry_interval: 5m,
 *              poll_interval: 15s, workers: 4 }
 * duplicate_write_back_stagger: 30m
 * upload_cleanup: { interval: 5m, tti: 1h }  # abandoned upload sessions are deleted
 * max_upload_sessions: 1024                  # beyond: 429
 * ```
 *
 * Relative paths (`storage.root`, `writeback.db`, `file` backend roots) are resolved against the
 * directory of the config file when the caller knows it, else against the working directory.
 *
 * @module
 */

import { resolve } from "node:path";
import { ConfigError, type RawMap } from "../../common/config.ts";
import {
  applyFlags,
  bool,
  custom,
  duration,
  hostPort,
  type Infer,
  int,
  list,
  listen,
  LISTEN_FLAGS,
  object,
  path,
  port,
  string,
} from "../../common/schema.ts";
import {
  backendAuthSchema,
  backendEntrySchema,
  type BackendsConfigOptions,
  buildBackendEntries,
} from "../../storage/backend/config.ts";
import { PieceLengthTable } from "../../storage/metainfo.ts";
import { writebackSchema } from "../../storage/writeback_config.ts";
import { listenerLimitsSchema } from "../../http/listener_config.ts";
import { tlsSchema } from "../../http/tls_config.ts";
import { hostListSchema, staticHosts } from "../../cluster/hostlist_config.ts";

/** The default piece-length table of upstream's base config: 4 MiB pieces for every blob. */
export const DEFAULT_PIECE_LENGTHS = { 0: "4MB" } as const;

const pieceLengths = custom("mapping of size to size", (raw) => {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new Error("must be a mapping of blob size to piece length, e.g. {0: 4MB}");
  }
  return new PieceLengthTable(raw as Record<string, string | number>);
});

const fields = object({
  listen: listen({ host: "127.0.0.1", port: 15002 }),
  tls: tlsSchema,
  http: listenerLimitsSchema,
  advertise: hostPort().optional("`<listen.host>:<listen.port>`").describe(
    "This origin's label in the ring (`host:port`). It must be spelled exactly as in " +
      "`hashring.hosts` on every node, because labels are hashed. Start-up fails if it is not a " +
      "member.",
  ),
  hashring: object({
    hosts: hostListSchema().optional("a ring of just `advertise`").describe(
      "Ring members (a host list). With `dns:` the labels are the resolved `ip:port`s, and " +
        "`advertise` must be one of them at start-up.",
    ),
    max_replica: int({ min: 1 }).default(2).describe(
      "Ring positions examined per digest: the number of origins that hold a blob. Upstream's " +
        "code default is 3, but all its shipped configs use 2.",
    ),
    refresh_interval: duration({ positive: true }).default("10s").describe(
      "Period of the `GET /health` checks of the other members. 3 failed checks mark a member " +
        "unhealthy and 2 passed checks mark it healthy again. Unhealthy members are skipped by " +
        "`locations`.",
    ),
  }, { rename: { max_replica: "maxReplica", refresh_interval: "refreshIntervalMs" } }),
  storage: object({
    root: path().describe("Blob store directory (`cache/`, `uploads/`, `tmp/`)."),
  }),
  metainfo: object({
    piece_lengths: pieceLengths.default(DEFAULT_PIECE_LENGTHS, "`{0: 4MB}`").describe(
      "Blob size → piece length. The largest size not above the blob's size wins. Sizes are " +
        "binary (`4MB` = 4 MiB). An empty table is an error. All origins of a cluster **must** " +
        "use the same table, because it decides the info hash.",
    ),
  }),
  backends: list(backendEntrySchema.extend({
    must_ready: bool().default(false)
      .describe(
        "Start-up fails while this backend is not ready (its readiness check: a stat, or the " +
          "bucket for object stores), and `/readiness` answers 503 while it is not.",
      ),
  }, { rename: { must_ready: "mustReady" } })).default([]).describe(
    "Namespace → backend mapping, in order. The first regex that matches anywhere in the " +
      "namespace wins. A namespace that matches none can be uploaded, but nothing is written " +
      "back for it.",
  ),
  auth: backendAuthSchema,
  writeback: writebackSchema(
    "`<storage.root>/origin.db`",
    "SQLite file of the write-back queue (`writeback_task` table, upstream's schema).",
  ),
  upload_cleanup: object({
    interval: duration({ positive: true }).default("5m")
      .describe("How often idle upload sessions are looked for."),
    tti: duration({ positive: true }).default("1h").describe(
      "An upload session not written to for this long is abandoned: it is deleted with its " +
        "staged bytes and counted in `kraken_origin_upload_sessions_expired_total`. Upstream's " +
        "key; its default there is 6h.",
    ),
  }, { rename: { interval: "intervalMs", tti: "ttiMs" } }),
  max_upload_sessions: int({ min: 1 }).default(1024).describe(
    "Upload sessions open at once (public, internal and replica uploads together). Starting " +
      "one more answers 429 with a message (Go clients then try the next origin) and counts in " +
      "`kraken_origin_upload_sessions_refused_total`.",
  ),
  duplicate_write_back_stagger: duration().default("30m").describe(
    "Replica _i_ (1, 2, …) delays its own write-back by _i_ × this. This gives staggered " +
      "redundancy if the first origin dies before writing back.",
  ),
  peer: object({
    host: string().default("0.0.0.0").describe("Interface the P2P seeding port listens on."),
    port: port().default(15001)
      .describe("P2P seeding port; `--peer-port` overrides it. `0` picks a free one."),
    ip: string().optional("the listen host (`127.0.0.1` for `0.0.0.0`)")
      .describe("IP announced to peers in the origin's PeerContext."),
    zone: string().optional('`""`').describe("PeerContext zone."),
    cluster: string().optional('`""`').describe("PeerContext cluster."),
  }),
}, {
  rename: {
    duplicate_write_back_stagger: "duplicateWriteBackStaggerMs",
    upload_cleanup: "uploadCleanup",
    max_upload_sessions: "maxUploadSessions",
  },
});

/** Ours, and upstream's origin flags we honour (`--blobserver-port`, `--peer-ip`, `--zone`, `--cluster`). */
const FLAGS = {
  ...LISTEN_FLAGS,
  "blobserver-port": "listen.port",
  "peer-port": "peer.port",
  "peer-ip": "peer.ip",
  zone: "peer.zone",
  cluster: "peer.cluster",
};

/** The origin's keys (everything but `tracing:`), defaults beside them. */
export const originConfigSchema = fields.map((c) => {
  // Port 0 leaves the ring label to start-up, which knows the bound port.
  const advertise = c.advertise ??
    (c.listen.port !== 0 ? `${c.listen.host}:${c.listen.port}` : undefined);
  const hosts = c.hashring.hosts && staticHosts(c.hashring.hosts);
  if (c.hashring.hosts !== undefined) {
    if (advertise === undefined) {
      throw new ConfigError(
        "advertise",
        "required when listen.port is 0 and hashring.hosts is set",
      );
    }
    if (hosts !== undefined && !hosts.includes(advertise)) {
      throw new ConfigError(
        c.advertise !== undefined ? "advertise" : "listen",
        `this origin's ring label ${advertise} is not in hashring.hosts (${hosts.join(", ")})`,
      );
    }
  }
  const { storage, metainfo, writeback, peer, ...rest } = c;
  return {
    ...rest,
    advertise,
    storageRoot: storage.root,
    pieceLengths: metainfo.piece_lengths,
    writeback: { ...writeback, db: writeback.db ?? resolve(storage.root, "origin.db") },
    peer: { ...peer, zone: peer.zone ?? "", cluster: peer.cluster ?? "" },
  };
});

type ParsedOrigin = Infer<typeof originConfigSchema>;

/** A backend mapping row plus the readiness flag the origin adds. */
export type OriginBackendEntry = ReturnType<typeof buildOriginBackends>[number];

/** The validated origin configuration. */
export type OriginConfig = Omit<ParsedOrigin, "backends"> & { backends: OriginBackendEntry[] };

/** Options of {@linkcode parseOriginConfig}. */
export interface ParseOriginConfigOptions {
  /** Directory relative paths are resolved against (default: the working directory). */
  baseDir?: string;
  /** Fetch for HTTP backends (default: the backends' own default). */
  fetch?: BackendsConfigOptions["fetch"];
}

function buildOriginBackends(parsed: ParsedOrigin, options: ParseOriginConfigOptions) {
  return buildBackendEntries(parsed.backends, { ...options, auth: parsed.auth })
    .map(({ namespace, backend, config }) => ({ namespace, backend, mustReady: config.mustReady }));
}

/**
 * Validates the origin's part of the YAML (everything but `tracing:`) and applies `--port`,
 * `--host` and `--peer-port` from `flags`.
 * @throws {ConfigError} naming the first offending key or flag
 */
export function parseOriginConfig(
  raw: RawMap,
  flags: Record<string, string> = {},
  options: ParseOriginConfigOptions = {},
): OriginConfig {
  const parsed = originConfigSchema.parse(applyFlags(fields, raw, flags, FLAGS), "", {
    baseDir: options.baseDir,
  });
  return { ...parsed, backends: buildOriginBackends(parsed, options) };
}
