import assert from "node:assert/strict";
import { ConfigError } from "../../common/config.ts";
import { DEFAULT_ALLOWED_CIDRS, parseAgentConfig } from "./config.ts";

const minimal = {
  tracker: { hosts: ["127.0.0.1:15003"] },
  build_index: { hosts: ["127.0.0.1:15004"] },
  storage: { root: "agent-store" },
};

Deno.test("agent config: defaults", () => {
  const c = parseAgentConfig(minimal, {}, { baseDir: "/etc/kraken" });
  assert.deepEqual(c.server, { host: "127.0.0.1", port: 16002 });
  assert.deepEqual(c.registry, {
    host: "127.0.0.1",
    port: 16000,
    allowedCidrs: DEFAULT_ALLOWED_CIDRS,
    maxManifestBytes: 4 * 1024 * 1024,
  });
  assert.deepEqual(c.peer, {
    ip: "127.0.0.1",
    port: 16001,
    host: "127.0.0.1",
    peerIdFactory: "addr_hash",
  });
  assert.equal(c.storageRoot, "/etc/kraken/agent-store");
  assert.deepEqual(c.scheduler, {
    seederTtiMs: 300_000,
    leecherTtiMs: 300_000,
    announceIntervalMs: 5000,
    maxAnnounceIntervalMs: 60_000,
    handshakeTimeoutMs: 5000,
    blacklistDurationMs: 30_000,
    maxOpenConn: 10,
    pipelineLimit: 3,
    originPipelineLimit: 5,
    pieceRequestMinTimeoutMs: 4000,
    pieceRequestTimeoutPerMbMs: 4000,
    metainfoTimeoutMs: 900_000,
  });
});

Deno.test("agent config: upstream's flags override ports and the peer IP", () => {
  const c = parseAgentConfig(
    { ...minimal, peer: { ip: "10.0.0.1", host: "0.0.0.0", peer_id_factory: "random" } },
    {
      "agent-server-port": "17002",
      "agent-registry-port": "17000",
      "peer-port": "17001",
      "peer-ip": "10.0.0.9",
    },
  );
  assert.equal(c.server.port, 17002);
  assert.equal(c.registry.port, 17000);
  assert.deepEqual(c.peer, {
    ip: "10.0.0.9",
    port: 17001,
    host: "0.0.0.0",
    peerIdFactory: "random",
  });
});

Deno.test("agent config: errors name the key", () => {
  const cases: [Record<string, unknown>, Record<string, string>, string][] = [
    [{ ...minimal, tracker: {} }, {}, "tracker.hosts"],
    [{ ...minimal, build_index: { hosts: [] } }, {}, "build_index.hosts"],
    [{ ...minimal, build_index: { hosts: ["nohost"] } }, {}, "build_index.hosts[0]"],
    [{ ...minimal, storage: {} }, {}, "storage.root"],
    [{ ...minimal, peer: { peer_id_factory: "mac" } }, {}, "peer.peer_id_factory"],
    [{ ...minimal, registry: { allowed_cidrs: ["10.0.0.0/99"] } }, {}, "registry.allowed_cidrs"],
    [{ ...minimal, registry: { max_manifest_size: "lots" } }, {}, "registry.max_manifest_size"],
    [{ ...minimal, scheduler: { seeder_tti: "0s" } }, {}, "scheduler.seeder_tti"],
    [{ ...minimal, scheduler: { max_open_conn: 0 } }, {}, "scheduler.max_open_conn"],
    [{ ...minimal, scheduler: { bogus: 1 } }, {}, "scheduler.bogus"],
    [{ ...minimal, extra: 1 }, {}, "extra"],
    [minimal, { port: "1" }, "--port"],
    [minimal, { "peer-port": "70000" }, "--peer-port"],
  ];
  for (const [raw, flags, key] of cases) {
    assert.throws(
      () => parseAgentConfig(raw, flags),
      (e: unknown) => e instanceof ConfigError && e.key === key,
      key,
    );
  }
});
