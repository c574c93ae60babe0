import assert from "node:assert/strict";
import type { PeerInfo } from "../../wire/announce.ts";
import { InfoHash } from "../../storage/metainfo.ts";
import { MetricsRegistry } from "../../tracing/mod.ts";
import type { PeerStore } from "./peerstore.ts";
import { MonitoredPeerStore } from "./peerstore_monitor.ts";
import { testLogger } from "./_test_util.ts";

const H = InfoHash.fromHex("cd".repeat(20));
const PEER: PeerInfo = {
  peerId: "01".repeat(20),
  ip: "10.0.0.1",
  port: 16001,
  origin: false,
  complete: false,
};

/** A stand-in store that fails while `down` is set. */
function switchable(type: string) {
  const state = { down: false };
  const fail = () => Promise.reject(new Error("connection refused"));
  const store: PeerStore = {
    type,
    updatePeer: () => state.down ? fail() : Promise.resolve(),
    getPeers: () => state.down ? fail() : Promise.resolve([]),
    probe: () => state.down ? fail() : Promise.resolve(),
    close: () => Promise.resolve(),
  };
  return { store, state };
}

const metrics = new MetricsRegistry();

function series(name: string): number | undefined {
  const line = metrics.render().split("\n").find((l) => l.startsWith(name + " "));
  return line === undefined ? undefined : Number(line.split(" ")[1]);
}

Deno.test("peer store monitor: an outage logs a bounded number of lines with counts, and the recovery once", async () => {
  const { logger, lines } = testLogger();
  let now = 0;
  const { store, state } = switchable("monitor-test");
  const monitored = new MonitoredPeerStore(store, {
    logger,
    metrics,
    logIntervalMs: 10_000,
    now: () => now,
  });
  const up = `kraken_tracker_peer_store_up{store="monitor-test"}`;
  const errors = `kraken_tracker_peer_store_errors_total{store="monitor-test"}`;
  await monitored.updatePeer(H, PEER);
  assert.equal(series(up), 1);
  assert.equal(series(errors), 0);

  state.down = true;
  for (let i = 0; i < 1000; i++) {
    now = i; // 1000 announces within one second
    await assert.rejects(monitored.updatePeer(H, PEER), /connection refused/);
  }
  await assert.rejects(monitored.getPeers(H, 5));
  now = 10_001;
  await assert.rejects(monitored.probe());
  assert.equal(monitored.up, false);
  assert.equal(monitored.lastError?.message, "connection refused");
  assert.equal(series(up), 0);
  assert.equal(series(errors), 1002);
  const failures = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === "peer store error");
  assert.equal(failures.length, 2, "one line per interval");
  assert.equal(failures[0].suppressed, undefined);
  assert.equal(failures[0].op, "update_peer");
  assert.equal(failures[0].level, "error");
  assert.equal(failures[1].suppressed, 1000);
  assert.equal(failures[1].op, "probe");

  state.down = false;
  await monitored.probe();
  await monitored.updatePeer(H, PEER);
  assert.equal(series(up), 1);
  assert.equal(monitored.lastError, undefined);
  const recovered = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === "peer store recovered");
  assert.equal(recovered.length, 1);
  assert.equal(recovered[0].failures, 1002);
});
