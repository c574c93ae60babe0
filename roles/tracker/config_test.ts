import assert from "node:assert/strict";
import { ConfigError } from "../../common/config.ts";
import { parseTrackerConfig } from "./config.ts";

const ORIGINS = { origins: { hosts: ["origin1:15002"] } };

Deno.test("tracker config: upstream defaults", () => {
  const c = parseTrackerConfig(ORIGINS);
  assert.deepEqual(c.listen, { host: "0.0.0.0", port: 15003 });
  assert.equal(c.announceIntervalMs, 3_000);
  assert.deepEqual(c.handout, { policy: "completeness", maxPeers: 50 });
  assert.deepEqual(c.peerstore, { type: "memory", ttlMs: 5 * 3600_000, redis: undefined });
  assert.deepEqual(c.originstore, {
    locationsTtlMs: 10_000,
    locationsErrorTtlMs: 1_000,
    originContextTtlMs: 10_000,
    originUnavailableTtlMs: 60_000,
    timeoutMs: 5_000,
  });
});

Deno.test("tracker config: redis store, flags override listen", () => {
  const c = parseTrackerConfig({
    ...ORIGINS,
    listen: { host: "127.0.0.1", port: 1 },
    announce_interval: "2s",
    handout: { policy: "default", max_peers: 10 },
    peerstore: { type: "redis", redis: { addr: "127.0.0.1:14001", max_peer_set_windows: 3 } },
  }, { port: "0", host: "::1" });
  assert.deepEqual(c.listen, { host: "::1", port: 0 });
  assert.equal(c.announceIntervalMs, 2_000);
  assert.deepEqual(c.handout, { policy: "default", maxPeers: 10 });
  assert.deepEqual(c.peerstore.redis, {
    addr: "127.0.0.1:14001",
    windowSizeMs: 3_600_000,
    maxWindows: 3,
    dialTimeoutMs: 5_000,
    readTimeoutMs: 30_000,
    writeTimeoutMs: 30_000,
    maxIdle: 10,
    maxActive: 500,
    idleTimeoutMs: 60_000,
  });
});

Deno.test("tracker config: errors name the key", () => {
  const bad: Array<[Record<string, unknown>, Record<string, string>, string]> = [
    [{}, {}, "origins.hosts"],
    [{ origins: { hosts: ["nope"] } }, {}, "origins.hosts[0]"],
    [{ ...ORIGINS, handout: { policy: "random" } }, {}, "handout.policy"],
    [{ ...ORIGINS, handout: { max_peers: 0 } }, {}, "handout.max_peers"],
    [{ ...ORIGINS, peerstore: { type: "mysql" } }, {}, "peerstore.type"],
    [{ ...ORIGINS, peerstore: { type: "redis" } }, {}, "peerstore.redis.addr"],
    [
      {
        ...ORIGINS,
        peerstore: { type: "redis", redis: { addr: "r:1", peer_set_window_size: "1500ms" } },
      },
      {},
      "peerstore.redis.peer_set_window_size",
    ],
    [{ ...ORIGINS, peerstore: { ttl: "0s" } }, {}, "peerstore.ttl"],
    [{ ...ORIGINS, announce_interval: "soon" }, {}, "announce_interval"],
    [{ ...ORIGINS, listen: { port: 70000 } }, {}, "listen.port"],
    [{ ...ORIGINS, extra: 1 }, {}, "extra"],
    [ORIGINS, { port: "x" }, "--port"],
    [ORIGINS, { verbose: "1" }, "--verbose"],
  ];
  for (const [raw, flags, key] of bad) {
    assert.throws(
      () => parseTrackerConfig(raw, flags),
      (e: unknown) => e instanceof ConfigError && e.key === key,
      `expected a ConfigError for ${key}`,
    );
  }
});
