import assert from "node:assert/strict";
import {
  encodeAnnounceRequest,
  parseAnnounceResponse,
  type PeerInfo,
} from "../../wire/announce.ts";
import { parseDigest } from "../../storage/digest.ts";
import { InfoHash } from "../../storage/metainfo.ts";
import { parseTrackerConfig } from "./config.ts";
import { RedisClient } from "./redis.ts";
import {
  parsePeerMember,
  peerSetKey,
  RedisPeerStore,
  serializePeerMember,
} from "./redis_peerstore.ts";
import { testRoleContext } from "../_test_util.ts";
import { startTracker } from "./mod.ts";
import { startFakeOrigin, startRedis, testLogger } from "./_test_util.ts";
import { externalTest } from "../../tests/harness/external.ts";

const H = InfoHash.fromHex("ab".repeat(20));

function peer(n: number, complete = false): PeerInfo {
  return {
    peerId: n.toString(16).padStart(40, "0"),
    ip: `10.0.0.${n}`,
    port: 16000 + n,
    origin: false,
    complete,
  };
}

Deno.test("redis peer store: member format and IPv6-safe parsing", () => {
  assert.equal(
    serializePeerMember(peer(1, true)),
    "0000000000000000000000000000000000000001:10.0.0.1:16001:1",
  );
  assert.deepEqual(parsePeerMember(serializePeerMember(peer(7))), peer(7));
  assert.deepEqual(parsePeerMember(`${"ff".repeat(20)}:::1:80:0`), {
    peerId: "ff".repeat(20),
    ip: "::1",
    port: 80,
    origin: false,
    complete: false,
  });
  for (
    const bad of ["", "x:1.2.3.4:1:0", `${"ff".repeat(20)}:1.2.3.4:0:0`, `${"ff".repeat(20)}:h:1:2`]
  ) {
    assert.equal(parsePeerMember(bad), undefined, bad);
  }
  assert.equal(peerSetKey(H, 3600), `peerset:${"ab".repeat(20)}:3600`);
});

externalTest("redis peer store: upstream key layout, expiry, windows and complete OR", async () => {
  const redis = await startRedis();
  const admin = new RedisClient({ addr: redis.addr });
  // Half past the current hour (real time: Redis expires keys by its own clock).
  const hourStart = Math.floor(Date.now() / 3600_000) * 3600_000;
  let now = hourStart + 1800_000;
  const bad: string[] = [];
  const store = new RedisPeerStore({
    client: new RedisClient({ addr: redis.addr }),
    now: () => now,
    onBadMember: (m) => bad.push(m),
  });
  try {
    await store.updatePeer(H, peer(1));
    const window = hourStart / 1000;
    const key = `peerset:${"ab".repeat(20)}:${window}`;
    assert.deepEqual(await admin.command("SMEMBERS", key), [
      "0000000000000000000000000000000000000001:10.0.0.1:16001:0",
    ]);
    assert.equal(await admin.command("EXPIRETIME", key), window + 5 * 3600);

    // An hour later the same peer completes: a new window; the read ORs `complete`.
    now += 3600_000;
    await store.updatePeer(H, peer(1, true));
    await store.updatePeer(H, peer(2));
    await admin.command("SADD", key, "garbage");
    const got = (await store.getPeers(H, 10)).sort((a, b) => a.port - b.port);
    assert.deepEqual(got, [peer(1, true), peer(2)]);
    assert.deepEqual(bad, ["garbage"]);
    assert.equal((await store.getPeers(H, 1)).length, 1);
    assert.deepEqual(await store.getPeers(InfoHash.fromHex("cd".repeat(20)), 5), []);

    // Five windows later the first window is no longer read (and Redis would have expired it).
    now += 5 * 3600_000;
    assert.deepEqual(await store.getPeers(H, 10), []);
  } finally {
    await store.close();
    await admin.close();
    await redis.stop();
  }
});

externalTest(
  "redis peer store: two trackers sharing one redis see each other's announces",
  async () => {
    const redis = await startRedis();
    const origin = startFakeOrigin();
    const { logger } = testLogger();
    const config = parseTrackerConfig({
      listen: { host: "127.0.0.1", port: 0 },
      origins: { hosts: [origin.addr] },
      peerstore: { type: "redis", redis: { addr: redis.addr } },
    });
    const a = await startTracker(config, testRoleContext("tracker", { logger }));
    const b = await startTracker(config, testRoleContext("tracker", { logger }));
    const digest = parseDigest(`sha256:${"5a".repeat(32)}`);
    const announce = async (port: number, p: PeerInfo) => {
      const res = await fetch(`http://127.0.0.1:${port}/announce/${H.hex}`, {
        method: "POST",
        body: encodeAnnounceRequest({ digest, infoHash: H, peer: p }),
      });
      assert.equal(res.status, 200);
      return parseAnnounceResponse(await res.json()).peers;
    };
    try {
      assert.equal(a.peerStore.type, "redis");
      await announce(a.port, peer(1, true));
      const seenByB = await announce(b.port, peer(2));
      // Complete agent from tracker A first, then the origin, then B's own incomplete entry.
      assert.deepEqual(seenByB.map((p) => [p.peerId.slice(-2), p.origin, p.complete]), [
        ["01", false, true],
        ["0a", true, true],
        ["02", false, false],
      ]);
    } finally {
      await a.stop();
      await b.stop();
      await origin.stop();
      await redis.stop();
    }
  },
);

Deno.test("redis peer store: an unreachable redis stops start-up with a message naming the key", async () => {
  const { logger } = testLogger();
  const config = parseTrackerConfig({
    listen: { host: "127.0.0.1", port: 0 },
    origins: { hosts: ["127.0.0.1:1"] },
    peerstore: { type: "redis", redis: { addr: "127.0.0.1:1", dial_timeout: "500ms" } },
  });
  await assert.rejects(
    startTracker(config, testRoleContext("tracker", { logger })),
    /peerstore\.redis\.addr/,
  );
});
