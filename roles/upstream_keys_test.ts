import assert from "node:assert/strict";
import { ConfigError } from "../common/config.ts";
import { ROLES } from "./mod.ts";
import type { RoleName } from "./role.ts";
import { translateUpstreamKeys, UPSTREAM_KEYS } from "./upstream_keys.ts";
import { parseTracingConfig } from "../tracing/mod.ts";

/** Translates and parses like main.ts; returns the config and the warned keys. */
function load(role: RoleName, raw: Record<string, unknown>) {
  const { raw: { tracing, ...ours }, warnings } = translateUpstreamKeys(role, raw);
  // deno-lint-ignore no-explicit-any
  const config = ROLES[role].parseConfig(ours, {}) as any;
  return {
    config,
    tracing: parseTracingConfig(tracing, role, {}),
    warned: warnings.map((w) => w.key),
  };
}

function refused(role: RoleName, raw: Record<string, unknown>, message: string): void {
  assert.throws(() => {
    const { raw: ours } = translateUpstreamKeys(role, raw);
    ROLES[role].parseConfig(ours, {});
  }, (error: unknown) => {
    assert.ok(error instanceof ConfigError, String(error));
    assert.equal(error.message, message);
    return true;
  });
}

const NGINX = { name: "kraken", cache_dir: "/var/cache/kraken/nginx/" };

Deno.test("upstream agent file: store dirs, scheduler sub-blocks, allowed_cidrs, host lists", () => {
  const { config, warned } = load("agent", {
    zap: { level: "info" },
    metrics: { m3: { service: "kraken-agent" } },
    scheduler: {
      seeder_tti: "10m",
      log: { timeEncoder: "iso8601" },
      torrentlog: { service_name: "kraken-agent" },
      dispatch: { piece_request_policy: "rarest_first", pipeline_limit: 4 },
      conn: { handshake_timeout: "2s", bandwidth: { enable: true } },
      connstate: { blacklist_duration: "5s", max_open_conn: 20 },
    },
    store: {
      download_dir: "/var/cache/kraken/kraken-agent/download/",
      cache_dir: "/var/cache/kraken/kraken-agent/cache/",
      download_cleanup: { ttl: "24h" },
      cache_cleanup: { ttl: "24h" },
    },
    registry: { docker: { version: 0.1, http: { net: "unix", addr: "/tmp/r.sock" } } },
    peer_id_factory: "random",
    allowed_cidrs: ["127.0.0.1", "172.17.0.1"],
    nginx: NGINX,
    tracker: { hosts: { static: ["t1:15003", "t2:15003"] }, healthcheck: { fails: 3 } },
    build_index: { hosts: { dns: "build-index.example:15004" } },
  });
  assert.equal(config.storageRoot, "/var/cache/kraken/kraken-agent");
  assert.equal(config.peer.peerIdFactory, "random");
  assert.deepEqual(config.registry.allowedCidrs, ["127.0.0.1", "172.17.0.1"]);
  assert.equal(config.scheduler.seederTtiMs, 600_000);
  assert.equal(config.scheduler.blacklistDurationMs, 5000);
  assert.equal(config.scheduler.maxOpenConn, 20);
  assert.equal(config.scheduler.handshakeTimeoutMs, 2000);
  assert.equal(config.scheduler.pipelineLimit, 4);
  assert.deepEqual(config.tracker.hosts, { kind: "static", hosts: ["t1:15003", "t2:15003"] });
  assert.equal(config.buildIndex.hosts.record, "build-index.example:15004");
  assert.deepEqual(warned, [
    "zap",
    "nginx",
    "metrics.m3",
    "store.cache_cleanup",
    "store.download_cleanup",
    "registry.docker",
    "scheduler.conn.bandwidth",
    "scheduler.log",
    "scheduler.torrentlog",
    "tracker.healthcheck",
  ]);
});

Deno.test("upstream origin file: cluster, blobserver, castore, metainfogen, localdb, writeback", () => {
  const { config, warned } = load("origin", {
    verbose: true,
    cluster: { static: ["127.0.0.1:15002", "127.0.0.1:15012"] },
    hashring: { max_replica: 2 },
    healthcheck: { fails: 3, passes: 2 },
    blobserver: {
      listener: { net: "tcp", addr: "127.0.0.1:15002" },
      duplicate_write_back_stagger: "10m",
    },
    castore: {
      upload_dir: "/var/cache/kraken/kraken-origin/upload/",
      cache_dir: "/var/cache/kraken/kraken-origin/cache/",
      capacity: 1024,
      upload_cleanup: { tti: "2h", interval: "1m" },
      cache_cleanup: { ttl: "24h" },
    },
    metainfogen: { piece_lengths: { 0: "1MB" } },
    peer_id_factory: "addr_hash",
    localdb: { source: "/var/cache/kraken/kraken-origin/origin.db" },
    backends: [{
      namespace: ".*",
      backend: { testfs: { addr: "127.0.0.1:14000", root: "blobs", name_path: "identity" } },
      bandwidth: { enable: false },
    }],
    writeback: { retry_interval: "100ms", poll_retries_interval: "250ms", num_retry_workers: 2 },
    nginx: NGINX,
  });
  assert.deepEqual(config.listen, { host: "127.0.0.1", port: 15002 });
  assert.equal(config.advertise, "127.0.0.1:15002");
  assert.deepEqual(config.hashring.hosts.hosts, ["127.0.0.1:15002", "127.0.0.1:15012"]);
  assert.equal(config.hashring.maxReplica, 2);
  assert.equal(config.storageRoot, "/var/cache/kraken/kraken-origin");
  assert.equal(config.duplicateWriteBackStaggerMs, 600_000);
  assert.deepEqual(config.uploadCleanup, { intervalMs: 60_000, ttiMs: 7_200_000 });
  assert.equal(config.pieceLengths.pieceLengthFor(10), 1 << 20);
  assert.equal(config.writeback.db, "/var/cache/kraken/kraken-origin/origin.db");
  assert.equal(config.writeback.retryIntervalMs, 100);
  assert.equal(config.writeback.pollIntervalMs, 250);
  assert.equal(config.backends.length, 1);
  assert.deepEqual(warned, [
    "nginx",
    "verbose",
    "castore.cache_cleanup",
    "castore.capacity",
    "backends[0].bandwidth",
    "writeback.num_retry_workers",
  ]);
});

Deno.test("upstream tracker file: trackerserver, peerhandoutpolicy, peerstore.redis, origin.hosts", () => {
  const { config, warned } = load("tracker", {
    trackerserver: {
      listener: { net: "unix", addr: "/tmp/kraken-tracker.sock" },
      announce_interval: "2s",
      announce_limit: 20,
    },
    peerhandoutpolicy: { priority: "default" },
    peerstore: { redis: { enabled: true, addr: "127.0.0.1:14001", max_peer_set_windows: 4 } },
    originstore: { locations_ttl: "20s" },
    origin: { hosts: { dns: "origins.example:15002", ttl: "30s" } },
    logging: { level: "info" },
  });
  assert.equal(config.announceIntervalMs, 2000);
  assert.deepEqual(config.handout, { policy: "default", maxPeers: 20 });
  assert.equal(config.peerstore.type, "redis");
  assert.equal(config.peerstore.redis.addr, "127.0.0.1:14001");
  assert.equal(config.peerstore.redis.maxWindows, 4);
  assert.equal(config.originstore.locationsTtlMs, 20_000);
  assert.equal(config.origins.hosts.ttlMs, 30_000);
  assert.deepEqual(config.listen, { host: "0.0.0.0", port: 15003 }, "the unix listener is dropped");
  assert.deepEqual(warned, ["logging", "trackerserver.listener"]);
  const local = load("tracker", {
    peerstore: { local: { ttl: "1h" }, redis: { enabled: false } },
    origin: { hosts: { static: ["o:1"] } },
  });
  assert.equal(local.config.peerstore.type, "memory");
  assert.equal(local.config.peerstore.ttlMs, 3_600_000);
});

Deno.test("upstream proxy and build-index files: server/tagserver listeners, stores, healthchecks", () => {
  const proxy = load("proxy", {
    castore: { upload_dir: "/p/upload/", cache_dir: "/p/cache/", capacity: 1024 },
    server: { listener: { net: "tcp", addr: ":15000" }, prefetch_max_blob_size: "50G" },
    registry: { docker: { version: 0.1 } },
    registryoverride: { listener: { net: "unix", addr: "/tmp/o.sock" } },
    origin: { hosts: { static: ["o:15002"] }, healthcheck: { filter: { fails: 3 } } },
    build_index: { hosts: { static: ["b:15004"] } },
  });
  assert.deepEqual(proxy.config.listen, { host: "0.0.0.0", port: 15000 });
  assert.equal(proxy.config.storageRoot, "/p");
  assert.deepEqual(proxy.warned, [
    "server.prefetch_max_blob_size",
    "castore.capacity",
    "registry.docker",
    "registryoverride",
  ]);
  const bi = load("build-index", {
    tagserver: { listener: { net: "tcp", addr: "0.0.0.0:15004" }, duplicate_put_stagger: "5m" },
    store: { upload_dir: "/b/upload/", cache_dir: "/b/cache/" },
    localdb: { source: "/b/index.db" },
    cluster: { hosts: { static: ["bi1:15004", "bi2:15004"] }, healthcheck: { fails: 3 } },
    origin: { hosts: { dns: "origins.example:15002" } },
    tag_types: [{ namespace: ".*", type: "docker", root: "tags" }],
    tag_store: { write_through: false },
    backends: [],
  });
  assert.equal(bi.config.storageRoot, "/b");
  assert.equal(bi.config.writeback.db, "/b/index.db");
  assert.equal(bi.config.cluster.duplicatePutStaggerMs, 300_000);
  assert.equal(bi.config.origin.hosts.record, "origins.example:15002");
  assert.equal(bi.config.tagStore.writeThrough, false);
  assert.deepEqual(bi.warned, ["tag_types[0].root"]);
});

Deno.test("upstream metrics: backend statsd is tracing.statsd; M3's reporter is warned about", () => {
  const origin = { cluster: { static: ["127.0.0.1:15002"] }, castore: { cache_dir: "/o/cache/" } };
  const statsd = load("origin", {
    ...origin,
    metrics: {
      backend: "statsd",
      statsd: { host_port: "127.0.0.1:8126", prefix: "kraken.origin" },
    },
  });
  assert.equal(statsd.tracing.statsd.enabled, true);
  assert.equal(statsd.tracing.statsd.addr, "127.0.0.1:8126");
  assert.equal(statsd.tracing.statsd.prefix, "kraken.origin");
  assert.deepEqual(statsd.warned, []);
  const m3 = load("origin", { ...origin, metrics: { m3: { service: "kraken-origin" } } });
  assert.equal(m3.tracing.statsd.enabled, false);
  assert.deepEqual(m3.warned, ["metrics.m3"]);
  const other = load("origin", { ...origin, metrics: { backend: "m3" } });
  assert.deepEqual(other.warned, ["metrics.backend"]);
});

Deno.test("upstream keys that change behaviour and cannot be honoured are refused naming the key", () => {
  const origin = { cluster: { static: ["127.0.0.1:15002"] }, castore: { cache_dir: "/o/cache/" } };
  refused(
    "origin",
    { ...origin, peer_id_factory: "random" },
    "peer_id_factory: an origin's peer id is always addr_hash",
  );
  refused(
    "origin",
    { ...origin, healthcheck: { fails: 5 } },
    "healthcheck: other health-check thresholds are not implemented (fails 3, passes 2, 3s timeout)",
  );
  refused(
    "origin",
    { cluster: origin.cluster, castore: { upload_dir: "/a/upload", cache_dir: "/b/cache" } },
    "castore: upload_dir and cache_dir must be in one directory (it becomes storage.root), got /a, /b",
  );
  refused(
    "origin",
    { ...origin, castore: { cache_dir: "/o/cache/", skip_hash_verification: true } },
    "castore.skip_hash_verification: digests are always verified before a blob is committed",
  );
  refused(
    "origin",
    { ...origin, blobserver: { listener: { net: "tcp", addr: "nowhere" } } },
    'blobserver.listener.addr: must be host:port, got "nowhere"',
  );
  const agent = {
    store: { cache_dir: "/a/cache/" },
    tracker: { hosts: { static: ["t:1"] } },
    build_index: { hosts: { static: ["b:1"] } },
  };
  refused(
    "agent",
    { ...agent, scheduler: { connstate: { disable_blacklist: true } } },
    "scheduler.connstate.disable_blacklist: the blacklist cannot be disabled",
  );
  refused(
    "agent",
    { ...agent, scheduler: { dispatch: { piece_request_policy: "default" } } },
    "scheduler.dispatch.piece_request_policy: pieces are requested rarest first only",
  );
  refused(
    "agent",
    { ...agent, storage: { root: "/x" } },
    "store: given together with storage, which it maps to; give one",
  );
  // A foreign key without a row is refused by the schema as unknown.
  refused(
    "tracker",
    { origin: { hosts: ["o:1"] }, announce_limit: 3 },
    "announce_limit: unknown key (allowed: listen, tls, http, origins, announce_interval, handout, peerstore, originstore)",
  );
});

Deno.test("every upstream row names a key of that role that the rows do not shadow", () => {
  for (const [role, rules] of Object.entries(UPSTREAM_KEYS)) {
    const seen = new Set<string>();
    for (const rule of rules) {
      const id = `${rule.key}${"when" in rule && rule.when ? "?" : ""}`;
      assert.ok(!seen.has(id), `${role}: ${rule.key} has two unconditional rows`);
      seen.add(id);
    }
  }
});
