import assert from "node:assert/strict";
import { ConfigError } from "../../common/config.ts";
import { parseBuildIndexConfig } from "./config.ts";

const base = { storage: { root: "/var/bi" }, origin: { hosts: ["origin:15002"] } };

Deno.test("build-index config: defaults", () => {
  const c = parseBuildIndexConfig(base);
  assert.deepEqual(c.listen, { host: "127.0.0.1", port: 15004 });
  assert.equal(c.storageRoot, "/var/bi");
  assert.equal(c.tagStore.writeThrough, true);
  assert.equal(c.writeback.db, "/var/bi/build-index.db");
  assert.equal(c.cluster.duplicatePutStaggerMs, 20 * 60_000);
  assert.equal(c.cluster.hosts, undefined);
  assert.deepEqual(c.tagTypes.map((t) => [t.namespace.source, t.type]), [[".*", "docker"]]);
  assert.deepEqual(c.manifestDownload, { attempts: 4, backoffMs: 500 });
  assert.deepEqual(c.backends, []);
  assert.deepEqual(c.remotes, {});
  assert.equal(c.cluster.duplicateReplicateStaggerMs, 20 * 60_000);
  assert.equal(c.tagReplication.retryIntervalMs, 30_000);
});

Deno.test("build-index config: remotes map a remote build-index to tag regexes", () => {
  const c = parseBuildIndexConfig({
    ...base,
    remotes: { "bi-zone2:80": ["^library/.*", "team/x:"] },
    tag_replication: { retry_interval: "1s", poll_interval: "1s" },
  });
  assert.deepEqual(Object.keys(c.remotes), ["bi-zone2:80"]);
  const matches = (tag: string) => c.remotes["bi-zone2:80"].tags.map((r) => r.test(tag));
  assert.deepEqual(matches("library/app:v1"), [true, false]);
  assert.deepEqual(matches("org/team/x:1"), [false, true]);
  assert.equal(c.tagReplication.pollIntervalMs, 1000);
  // Upstream's shape: the key is the remote's address.
  assert.deepEqual(c.remotes["bi-zone2:80"].hosts, { kind: "static", hosts: ["bi-zone2:80"] });
});

Deno.test("build-index config: a named remote takes its build-indexes from a host list", () => {
  const c = parseBuildIndexConfig({
    ...base,
    remotes: {
      "zone-b": { tags: ["^library/"], hosts: ["bi1.b:15004", "bi2.b:15004"] },
      "zone-c": { tags: [".*"], hosts: { dns: "bi.c.example:15004", ttl: "30s" } },
    },
  });
  assert.deepEqual(c.remotes["zone-b"].hosts, {
    kind: "static",
    hosts: ["bi1.b:15004", "bi2.b:15004"],
  });
  assert.equal(c.remotes["zone-c"].hosts.kind, "dns");
  assert.equal(c.remotes["zone-c"].tags[0].test("anything"), true);
});

Deno.test("build-index config: flags and relative paths", () => {
  const c = parseBuildIndexConfig(
    { ...base, storage: { root: "state" } },
    { port: "9000", host: "0.0.0.0" },
    { configPath: "/etc/kraken/build-index.yaml" },
  );
  assert.deepEqual(c.listen, { host: "0.0.0.0", port: 9000 });
  assert.equal(c.storageRoot, "/etc/kraken/state");
});

Deno.test("build-index config: errors name the key", () => {
  const cases: [Record<string, unknown>, Record<string, string>, string][] = [
    [{ ...base, bogus: 1 }, {}, "bogus"],
    [{ origin: base.origin }, {}, "storage.root"],
    [{ ...base, origin: { hosts: [] } }, {}, "origin.hosts"],
    [{ ...base, origin: { hosts: ["no-port"] } }, {}, "origin.hosts[0]"],
    [{ ...base, cluster: { hosts: ["a:1"], self: "b:1" } }, {}, "cluster.self"],
    [{ ...base, tag_types: [{ namespace: "(", type: "docker" }] }, {}, "tag_types[0].namespace"],
    [{ ...base, tag_types: [{ namespace: ".*", type: "helm" }] }, {}, "tag_types[0].type"],
    [
      { ...base, backends: [{ namespace: ".*", backend: { hdfs: {} } }] },
      {},
      "backends[0].backend.hdfs",
    ],
    [{ ...base, writeback: { poll_interval: "0s" } }, {}, "writeback.poll_interval"],
    [{ ...base, remotes: { "bi2:80": ["library/(unclosed"] } }, {}, "remotes.bi2:80[0]"],
    [{ ...base, remotes: { "bi2:80": "library/.*" } }, {}, "remotes.bi2:80"],
    [{ ...base, remotes: { "no-port": [".*"] } }, {}, "remotes.no-port"],
    [{ ...base, remotes: { z: { tags: ["("], hosts: ["b:1"] } } }, {}, "remotes.z.tags[0]"],
    [{ ...base, remotes: { z: { tags: [".*"] } } }, {}, "remotes.z.hosts"],
    [{ ...base, remotes: { z: { tags: [], hosts: ["b:1"] } } }, {}, "remotes.z.tags"],
    [{ ...base, tag_replication: { workers: 0 } }, {}, "tag_replication.workers"],
    [{ ...base, listen: { port: 70000 } }, {}, "listen.port"],
    [base, { verbose: "1" }, "--verbose"],
  ];
  for (const [raw, flags, key] of cases) {
    assert.throws(() => parseBuildIndexConfig(raw, flags), (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.equal(e.key, key);
      return true;
    });
  }
});
