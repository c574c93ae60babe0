import assert from "node:assert/strict";
import { digestOfBytes } from "../storage/digest.ts";
import { MetricsRegistry } from "../tracing/mod.ts";
import { waitFor } from "../tests/harness/wait.ts";
import {
  addBlob,
  readBlob,
  startTestAgent,
  startTestOrigin,
  TestTracker,
} from "./_scheduler_test_util.ts";
import { prng, randomBytes } from "./_test_util.ts";
import { TorrentNotFoundError } from "./scheduler.ts";

const PIECE = 16 * 1024;

function value(registry: MetricsRegistry, series: string): number | undefined {
  const line = registry.render().split("\n").find((l) => l.startsWith(series + " "));
  return line === undefined ? undefined : Number(line.split(" ")[1]);
}

// A tracker, an origin and an agent, each scheduler with a registry of its own.
async function startMeasured() {
  const tracker = new TestTracker();
  const originMetrics = new MetricsRegistry();
  const agentMetrics = new MetricsRegistry();
  const origin = await startTestOrigin({ metrics: originMetrics });
  tracker.origins = [origin];
  const agent = await startTestAgent(tracker, { metrics: agentMetrics });
  return { tracker, origin, agent, originMetrics, agentMetrics };
}

Deno.test("scheduler metrics: downloads, pieces and bytes by source, failures by reason", async () => {
  const { tracker, origin, agent, originMetrics, agentMetrics } = await startMeasured();
  // A second agent gives up quickly on a torrent without traffic.
  const impatientMetrics = new MetricsRegistry();
  const impatient = await startTestAgent(tracker, { metrics: impatientMetrics, leecherTtiMs: 300 });
  try {
    const m = (s: string) => value(agentMetrics, s);
    assert.equal(m("kraken_scheduler_downloads_started_total"), 0, "registered at start");
    assert.equal(m('kraken_scheduler_downloads_failed_total{reason="timeout"}'), 0);
    const data = randomBytes(prng(21), 6 * PIECE + 5);
    const mi = await addBlob(origin.store, data, PIECE);
    await agent.scheduler.download("ns", mi.digest);
    assert.equal(m("kraken_scheduler_downloads_started_total"), 1);
    assert.equal(m("kraken_scheduler_downloads_finished_total"), 1);
    assert.equal(m("kraken_scheduler_download_duration_seconds_count"), 1);
    assert.equal(m('kraken_scheduler_pieces_received_total{source="origin"}'), 7);
    assert.equal(m('kraken_scheduler_pieces_received_total{source="agent"}'), 0);
    assert.equal(m('kraken_scheduler_piece_bytes_received_total{source="origin"}'), data.length);
    assert.equal(m("kraken_scheduler_torrents"), 1, "seeding now");
    assert.equal(
      value(originMetrics, "kraken_scheduler_piece_bytes_served_total"),
      data.length,
      "the origin's scheduler counts what it served",
    );
    assert.equal(
      value(originMetrics, "kraken_scheduler_open_files"),
      1,
      "the origin read every piece through one open file",
    );
    await origin.seeder.scheduler.evict(mi.digest);
    assert.equal(value(originMetrics, "kraken_scheduler_open_files"), 0, "closed with its torrent");
    // Dropping the torrent keeps its exchange in the totals.
    await agent.scheduler.remove(mi.digest);
    assert.equal(m("kraken_scheduler_torrents"), 0);
    assert.equal(m('kraken_scheduler_piece_bytes_received_total{source="origin"}'), data.length);

    const unknown = await digestOfBytes(new TextEncoder().encode("nobody has this"));
    await assert.rejects(agent.scheduler.download("ns", unknown), TorrentNotFoundError);
    assert.equal(m('kraken_scheduler_downloads_failed_total{reason="not_found"}'), 1);
    // Known to the tracker, but nobody hands it out: the torrent times out.
    const lonely = await addBlob(origin.store, randomBytes(prng(22), PIECE), PIECE);
    tracker.handout = () => [];
    await assert.rejects(impatient.scheduler.download("ns", lonely.digest));
    const timeouts = 'kraken_scheduler_downloads_failed_total{reason="timeout"}';
    assert.equal(value(impatientMetrics, timeouts), 1);
    assert.equal(m(timeouts), 0);
    assert.equal(m("kraken_scheduler_downloads_started_total"), 2);
    assert.equal(m("kraken_scheduler_downloads_finished_total"), 1);
  } finally {
    await impatient.close();
    await agent.close();
    await origin.close();
    await tracker.close();
  }
});

Deno.test("scheduler: piece buffers go back to the pool when a torrent's peers are done, and the next torrent reuses them", async () => {
  const { tracker, origin, agent, originMetrics, agentMetrics } = await startMeasured();
  const idle = (registry: MetricsRegistry) =>
    value(registry, "kraken_scheduler_idle_piece_buffer_bytes");
  try {
    assert.equal(idle(agentMetrics), 0, "registered, empty at start");
    const pooled: number[] = [];
    for (const seed of [31, 32]) {
      const data = randomBytes(prng(seed), 6 * PIECE + 5);
      const mi = await addBlob(origin.store, data, PIECE);
      await agent.scheduler.download("ns", mi.digest);
      assert.deepEqual(await readBlob(agent.store, mi.digest), data);
      // Removing the torrent closes its connection: its receive ring goes back to the pool.
      await agent.scheduler.remove(mi.digest);
      pooled.push(
        await waitFor(
          "the agent's buffers back in its pool",
          () => idle(agentMetrics) || undefined,
        ),
      );
      await origin.seeder.scheduler.evict(mi.digest);
      await waitFor(
        "the origin's send buffer back in its pool",
        () => idle(originMetrics) || undefined,
      );
    }
    assert.ok(pooled[0] >= PIECE, `the ring's piece buffers wait in the pool: ${pooled[0]} bytes`);
    assert.equal(pooled[1], pooled[0], "the second torrent took the same buffers again");
  } finally {
    await agent.close();
    await origin.close();
    await tracker.close();
  }
});
