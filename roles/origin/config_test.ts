import assert from "node:assert/strict";
import { ConfigError, loadYamlFile } from "../../common/config.ts";
import { parseOriginConfig } from "./config.ts";
import { originRole } from "./mod.ts";

const ROOT = { storage: { root: "/var/cache/kraken/origin" } };

function configError(fn: () => unknown, key: string): void {
  assert.throws(fn, (error) => {
    assert.ok(error instanceof ConfigError, String(error));
    assert.equal(error.key, key, error.message);
    return true;
  });
}

Deno.test("origin config: defaults", () => {
  const c = parseOriginConfig(ROOT);
  assert.deepEqual(c.listen, { host: "127.0.0.1", port: 15002 });
  assert.equal(c.advertise, "127.0.0.1:15002");
  assert.deepEqual(c.hashring, { hosts: undefined, maxReplica: 2, refreshIntervalMs: 10_000 });
  assert.equal(c.storageRoot, "/var/cache/kraken/origin");
  assert.equal(c.pieceLengths.pieceLengthFor(1), 4 * 1024 * 1024);
  assert.deepEqual(c.backends, []);
  assert.deepEqual(c.writeback, {
    db: "/var/cache/kraken/origin/origin.db",
    retryIntervalMs: 30_000,
    maxRetryIntervalMs: 5 * 60_000,
    pollIntervalMs: 15_000,
    workers: 4,
  });
  assert.equal(c.duplicateWriteBackStaggerMs, 30 * 60_000);
});

Deno.test("origin config: every key, flags, relative paths against the base directory", () => {
  const c = parseOriginConfig(
    {
      listen: { host: "0.0.0.0", port: 1 },
      advertise: "o2:15002",
      hashring: { hosts: ["o1:15002", "o2:15002"], max_replica: 3, refresh_interval: "2s" },
      storage: { root: "data/origin" },
      metainfo: { piece_lengths: { 0: "1MB", "1GB": "8MB" } },
      backends: [
        { namespace: "^library/", backend: { file: { root: "backend" } }, must_ready: true },
        { namespace: ".*", backend: { testfs: { addr: "127.0.0.1:1400", root: "blobs" } } },
      ],
      writeback: { db: "/abs/wb.db", retry_interval: "1s", poll_interval: "500ms", workers: 2 },
      duplicate_write_back_stagger: "1m",
    },
    { port: "15002", host: "127.0.0.2" },
    { baseDir: "/etc/kraken" },
  );
  assert.deepEqual(c.listen, { host: "127.0.0.2", port: 15002 });
  assert.equal(c.advertise, "o2:15002");
  assert.deepEqual(c.hashring, {
    hosts: { kind: "static", hosts: ["o1:15002", "o2:15002"] },
    maxReplica: 3,
    refreshIntervalMs: 2000,
  });
  assert.equal(c.storageRoot, "/etc/kraken/data/origin");
  assert.equal(c.pieceLengths.pieceLengthFor(2 ** 30), 8 * 2 ** 20);
  assert.deepEqual(c.backends.map((b) => [b.backend.type, b.backend.bucket, b.mustReady]), [
    ["file", "/etc/kraken/backend", true],
    ["testfs", "127.0.0.1:1400/blobs", false],
  ]);
  assert.deepEqual(c.writeback, {
    db: "/abs/wb.db",
    retryIntervalMs: 1000,
    maxRetryIntervalMs: 5 * 60_000,
    pollIntervalMs: 500,
    workers: 2,
  });
  assert.equal(c.duplicateWriteBackStaggerMs, 60_000);
  // The writeback db follows a relative root.
  assert.equal(
    parseOriginConfig({ storage: { root: "s" } }, {}, { baseDir: "/b" }).writeback.db,
    "/b/s/origin.db",
  );
});

Deno.test("origin config: errors name the key", () => {
  configError(() => parseOriginConfig({}), "storage.root");
  configError(() => parseOriginConfig({ ...ROOT, bogus: 1 }), "bogus");
  configError(() => parseOriginConfig({ ...ROOT, listen: { port: 70000 } }), "listen.port");
  configError(() => parseOriginConfig(ROOT, { port: "x" }), "--port");
  configError(() => parseOriginConfig(ROOT, { verbose: "1" }), "--verbose");
  configError(() => parseOriginConfig({ ...ROOT, advertise: "nohost" }), "advertise");
  configError(
    () => parseOriginConfig({ ...ROOT, advertise: "o3:1", hashring: { hosts: ["o1:1", "o2:1"] } }),
    "advertise",
  );
  configError(
    () => parseOriginConfig({ ...ROOT, hashring: { hosts: ["o1:1"] } }),
    "listen",
  );
  configError(() => parseOriginConfig({ ...ROOT, hashring: { hosts: [] } }), "hashring.hosts");
  configError(
    () => parseOriginConfig({ ...ROOT, hashring: { hosts: ["x"] } }),
    "hashring.hosts[0]",
  );
  configError(
    () => parseOriginConfig({ ...ROOT, hashring: { max_replica: 0 } }),
    "hashring.max_replica",
  );
  configError(
    () => parseOriginConfig({ ...ROOT, metainfo: { piece_lengths: {} } }),
    "metainfo.piece_lengths",
  );
  configError(
    () => parseOriginConfig({ ...ROOT, metainfo: { piece_lengths: { 0: "4XB" } } }),
    "metainfo.piece_lengths",
  );
  configError(
    () => parseOriginConfig({ ...ROOT, backends: [{ namespace: ".*", backend: { hdfs: {} } }] }),
    "backends[0].backend.hdfs",
  );
  configError(
    () =>
      parseOriginConfig({
        ...ROOT,
        backends: [{ namespace: ".*", backend: { file: { root: "x" } }, must_ready: "yes" }],
      }),
    "backends[0].must_ready",
  );
  configError(
    () => parseOriginConfig({ ...ROOT, writeback: { poll_interval: "0s" } }),
    "writeback.poll_interval",
  );
  configError(() => parseOriginConfig({ ...ROOT, writeback: { workers: 0 } }), "writeback.workers");
  configError(
    () =>
      parseOriginConfig({
        ...ROOT,
        writeback: { retry_interval: "1m", max_retry_interval: "30s" },
      }),
    "writeback.max_retry_interval",
  );
  configError(
    () => parseOriginConfig({ ...ROOT, duplicate_write_back_stagger: "soon" }),
    "duplicate_write_back_stagger",
  );
});

Deno.test("origin config: port 0 leaves the ring label to start-up", () => {
  const c = parseOriginConfig({ ...ROOT, listen: { port: 0 } });
  assert.equal(c.advertise, undefined);
  configError(
    () => parseOriginConfig({ ...ROOT, listen: { port: 0 }, hashring: { hosts: ["a:1"] } }),
    "advertise",
  );
});

Deno.test("origin config: the example config/origin.yaml parses, paths relative to its directory", async () => {
  const path = new URL("../../config/origin.yaml", import.meta.url).pathname;
  const { tracing: _tracing, ...raw } = await loadYamlFile(path);
  const c = originRole.parseConfig(raw, {}, { configPath: path });
  assert.equal(c.storageRoot, new URL("../../.data/origin1/store", import.meta.url).pathname);
  const hosts = c.hashring.hosts;
  assert.ok(hosts?.kind === "static" && hosts.hosts.includes(c.advertise!));
});
