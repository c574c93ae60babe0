import assert from "node:assert/strict";
import type { PeerInfo } from "../../wire/announce.ts";
import { InfoHash } from "../../storage/metainfo.ts";
import { ManualTimers } from "../../common/timers.ts";
import { DEFAULT_PEER_TTL_MS, MemoryPeerStore } from "./peerstore.ts";

const H1 = InfoHash.fromHex("11".repeat(20));
const H2 = InfoHash.fromHex("22".repeat(20));

function peer(n: number, complete = false): PeerInfo {
  return {
    peerId: n.toString(16).padStart(40, "0"),
    ip: `10.0.0.${n}`,
    port: 16000 + n,
    origin: false,
    complete,
  };
}

Deno.test("memory peer store: entries expire after the TTL unless refreshed (injected clock)", async () => {
  let now = 1_000_000;
  const store = new MemoryPeerStore({ ttlMs: 60_000, sweepIntervalMs: 0, now: () => now });
  await store.updatePeer(H1, peer(1));
  await store.updatePeer(H1, peer(2, true));
  assert.equal((await store.getPeers(H1, 10)).length, 2);

  now += 40_000;
  await store.updatePeer(H1, peer(2, true)); // refreshes peer 2 only
  now += 20_000; // peer 1 is exactly at its expiry
  const left = await store.getPeers(H1, 10);
  assert.deepEqual(left, [peer(2, true)]);

  now += 40_000;
  assert.deepEqual(await store.getPeers(H1, 10), []);
  assert.equal(store.torrentCount, 1);
  assert.equal(store.sweep(), 2);
  assert.equal(store.torrentCount, 0);
  await store.close();
});

Deno.test("memory peer store: default TTL is upstream's 5 h", () => {
  assert.equal(DEFAULT_PEER_TTL_MS, 5 * 3600 * 1000);
});

Deno.test("memory peer store: an announce replaces the entry; torrents are separate", async () => {
  const store = new MemoryPeerStore({ sweepIntervalMs: 0 });
  await store.updatePeer(H1, peer(1));
  await store.updatePeer(H1, { ...peer(1), ip: "10.9.9.9", complete: true });
  await store.updatePeer(H2, peer(3));
  assert.deepEqual(await store.getPeers(H1, 5), [{ ...peer(1), ip: "10.9.9.9", complete: true }]);
  assert.deepEqual(await store.getPeers(H2, 5), [peer(3)]);
  assert.deepEqual(await store.getPeers(InfoHash.fromHex("33".repeat(20)), 5), []);
  await store.close();
});

Deno.test("memory peer store: handout is a random sample of at most n, never flagged origin", async () => {
  // A seeded generator keeps the test deterministic.
  let seed = 42;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const store = new MemoryPeerStore({ sweepIntervalMs: 0, random });
  for (let i = 1; i <= 20; i++) await store.updatePeer(H1, { ...peer(i), origin: true });
  const seen = new Set<string>();
  for (let round = 0; round < 50; round++) {
    const got = await store.getPeers(H1, 5);
    assert.equal(got.length, 5);
    assert.equal(new Set(got.map((p) => p.peerId)).size, 5);
    for (const p of got) {
      assert.equal(p.origin, false);
      seen.add(p.peerId);
    }
  }
  // 250 draws of 5 from 20: every peer shows up unless sampling is biased.
  assert.equal(seen.size, 20);
  assert.deepEqual(await store.getPeers(H1, 0), []);
  await store.close();
});

Deno.test("memory peer store: the periodic sweep runs and close() stops it", async () => {
  let now = 0;
  const timers = new ManualTimers();
  const store = new MemoryPeerStore({ ttlMs: 10, sweepIntervalMs: 5, now: () => now, timers });
  await store.updatePeer(H1, peer(1));
  timers.advance(5);
  assert.equal(store.torrentCount, 1, "the entry has not expired yet");
  now = 100;
  timers.advance(4);
  assert.equal(store.torrentCount, 1, "no sweep between periods");
  timers.advance(1);
  assert.equal(store.torrentCount, 0);
  await store.close();
  assert.equal(timers.pending, 0, "close() stops the sweep");
});
