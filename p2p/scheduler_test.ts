import { createLogger } from "../common/log.ts";
import assert from "node:assert/strict";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace";
import { digestOfBytes } from "../storage/digest.ts";
import { ATTR, initTracing, SPAN, withSpan } from "../tracing/mod.ts";
import {
  addBlob,
  readBlob,
  startTestAgent,
  startTestOrigin,
  type TestAgent,
  type TestOrigin,
  TestTracker,
} from "./_scheduler_test_util.ts";
import { readMetaInfo } from "./blob_torrent.ts";
import { prng, randomBytes } from "./_test_util.ts";
import { addrHashPeerId, DownloadError, TorrentNotFoundError } from "./scheduler.ts";
import { waitFor } from "../tests/harness/wait.ts";
import { testTracingConfig } from "../tracing/_test_util.ts";

const PIECE = 16 * 1024;
const exporter = new InMemorySpanExporter();
const tracing = initTracing(
  testTracingConfig("agent"),
  { role: "agent", logger: createLogger({ role: "agent", write: () => {} }), exporter },
);

type HandedOut = ReturnType<NonNullable<TestTracker["handout"]>>;

/** A tracker handout answering `first` to the first announce and `then` to every later one. */
function firstThen(first: HandedOut, then: HandedOut): () => HandedOut {
  let announced = false;
  return () => {
    const peers = announced ? then : first;
    announced = true;
    return peers;
  };
}

/** Runs `fn` with a tracker, started origins and agents, closing all of them afterwards. */
async function cluster(
  setup: { origins?: number; agents?: number; agentOptions?: Parameters<typeof startTestAgent>[1] },
  fn: (c: { tracker: TestTracker; origins: TestOrigin[]; agents: TestAgent[] }) => Promise<void>,
): Promise<void> {
  const tracker = new TestTracker();
  const origins: TestOrigin[] = [];
  const agents: TestAgent[] = [];
  try {
    for (let i = 0; i < (setup.origins ?? 1); i++) origins.push(await startTestOrigin());
    tracker.origins = [...origins];
    for (let i = 0; i < (setup.agents ?? 1); i++) {
      agents.push(await startTestAgent(tracker, setup.agentOptions));
    }
    await fn({ tracker, origins, agents });
  } finally {
    for (const a of agents) await a.close();
    for (const o of origins) await o.close();
    await tracker.close();
  }
}

function spansOf(traceId: string): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
}

function one(spans: ReadableSpan[], name: string): ReadableSpan {
  const found = spans.filter((s) => s.name === name);
  assert.equal(found.length, 1, `one ${name} in: ${spans.map((s) => s.name).join(", ")}`);
  return found[0];
}

Deno.test("scheduler: agent 1 pulls from the origin, agent 2 from agent 1; spans summarise", async () => {
  await cluster({ agents: 2 }, async ({ tracker, origins: [origin], agents: [a1, a2] }) => {
    const data = randomBytes(prng(11), 10 * PIECE + 123);
    const mi = await addBlob(origin.store, data, PIECE);

    await tracing.forceFlush();
    exporter.reset();
    const traceId = await withSpan("test.pull", {}, async (span) => {
      const r = await a1.scheduler.download("library/test", mi.digest);
      assert.equal(r.size, data.length);
      assert.equal(r.infoHash, mi.infoHash.hex);
      assert.equal(r.summary?.piecesTotal, 11);
      assert.equal(r.summary?.piecesFromOrigins, 11);
      assert.equal(r.summary?.piecesFromAgents, 0);
      return span.spanContext().traceId;
    });
    assert.deepEqual(await readBlob(a1.store, mi.digest), data);
    assert.ok((await readMetaInfo(a1.store, mi.digest))?.infoHash.equals(mi.infoHash));

    await tracing.forceFlush();
    const spans = spansOf(traceId);
    const download = one(spans, SPAN.schedulerDownload);
    const root = one(spans, "test.pull");
    assert.equal(download.parentSpanContext?.spanId, root.spanContext().spanId);
    const id = download.spanContext().spanId;
    for (const name of [SPAN.storageCreateTorrent, SPAN.metainfoRequest, SPAN.storageCommit]) {
      assert.equal(one(spans, name).parentSpanContext?.spanId, id, `${name} under download`);
    }
    const announces = spans.filter((s) => s.name === SPAN.announceRequest);
    assert.ok(announces.length >= 1);
    assert.ok(announces.every((s) => s.parentSpanContext?.spanId === id));
    assert.ok(announces.every((s) => s.attributes.complete === false), "completion is not traced");
    assert.deepEqual(one(spans, SPAN.storageCreateTorrent).attributes, {
      pieces: 11,
      piece_length: PIECE,
      [ATTR.torrentResumedPieces]: 0,
    });
    assert.equal(one(spans, SPAN.storageCommit).attributes.verified, true);
    assert.equal(one(spans, SPAN.storageCommit).attributes.cache_hit, false);
    const attrs = download.attributes;
    assert.equal(attrs.namespace, "library/test");
    assert.equal(attrs.digest, mi.digest.toString());
    assert.equal(attrs["peer.id"], a1.scheduler.peerId);
    assert.equal(attrs["torrent.infohash"], mi.infoHash.hex);
    assert.equal(attrs["torrent.size"], data.length);
    assert.equal(attrs[ATTR.p2pPiecesTotal], 11);
    assert.equal(attrs[ATTR.p2pPiecesFromOrigins], 11);
    assert.equal(attrs[ATTR.p2pPiecesFromAgents], 0);
    assert.equal(attrs[ATTR.p2pBytesReceived], data.length);
    assert.equal(attrs[ATTR.p2pPeersConnected], 1);
    assert.equal(typeof attrs[ATTR.p2pThroughputMbps], "number");
    // Only the download's own spans: no per-peer or per-piece spans.
    assert.deepEqual(
      [...new Set(spans.map((s) => s.name))].sort(),
      [
        "POST /announce/{infohash}",
        "GET /namespace/{namespace}/blobs/{digest}/metainfo",
        SPAN.announceRequest,
        SPAN.metainfoRequest,
        SPAN.schedulerDownload,
        SPAN.storageCommit,
        SPAN.storageCreateTorrent,
        "test.pull",
      ].sort(),
    );

    // Agent 1 told the tracker it is complete; with the origin gone, agent 2 must use agent 1.
    await waitFor(
      "agent 1's complete announce",
      () => tracker.announces.some((a) => a.peer.peerId === a1.scheduler.peerId && a.peer.complete),
    );
    await origin.seeder.close();
    const r2 = await a2.scheduler.download("library/test", mi.digest);
    assert.equal(r2.summary?.piecesFromAgents, 11);
    assert.equal(r2.summary?.piecesFromOrigins, 0);
    assert.deepEqual(await readBlob(a2.store, mi.digest), data);
  });
});

Deno.test("scheduler: concurrent downloads of one blob share one download", async () => {
  await cluster({}, async ({ tracker, origins: [origin], agents: [agent] }) => {
    const data = randomBytes(prng(12), 5 * PIECE);
    const mi = await addBlob(origin.store, data, PIECE);
    const results = await Promise.all([
      agent.scheduler.download("ns", mi.digest),
      agent.scheduler.download("ns", mi.digest),
      agent.scheduler.download("ns", mi.digest),
    ]);
    assert.equal(results[0], results[1]);
    assert.equal(results[1], results[2]);
    assert.equal(tracker.metainfoRequests, 1);
    assert.deepEqual(await readBlob(agent.store, mi.digest), data);
    // Cached now: no torrent work at all.
    const again = await agent.scheduler.download("ns", mi.digest);
    assert.deepEqual(again, { size: data.length });
    assert.equal(tracker.metainfoRequests, 1);
  });
});

Deno.test("scheduler: a peer serving corrupt pieces is dropped and the blob is still right", async () => {
  await cluster({ origins: 2 }, async ({ tracker, origins: [bad, good], agents: [agent] }) => {
    const data = randomBytes(prng(13), 8 * PIECE);
    const mi = await addBlob(good.store, data, PIECE);
    const corrupt = data.slice();
    for (let i = 0; i < corrupt.length; i += PIECE) corrupt[i] ^= 0xff;
    // The bad origin has the right metainfo, but its cache file rotted on disk.
    await addBlob(bad.store, data, PIECE);
    const path = `${bad.store.root}/cache/${mi.digest.hex.slice(0, 2)}/${mi.digest.hex}`;
    await Deno.writeFile(path, corrupt);
    // First only the bad origin, then both: the bad one must be blacklisted by then.
    tracker.handout = firstThen([bad.peerInfo], [bad.peerInfo, good.peerInfo]);
    const r = await agent.scheduler.download("ns", mi.digest);
    assert.ok((r.summary?.piecesInvalid ?? 0) >= 1, "a corrupt piece was seen");
    assert.equal(r.summary?.piecesFromOrigins, 8);
    assert.deepEqual(await readBlob(agent.store, mi.digest), data);
  });
});

Deno.test("scheduler: unknown blob is TorrentNotFoundError", async () => {
  await cluster({}, async ({ agents: [agent] }) => {
    const digest = await digestOfBytes(new TextEncoder().encode("nobody has this"));
    await assert.rejects(agent.scheduler.download("ns", digest), TorrentNotFoundError);
    assert.deepEqual(agent.scheduler.torrents, []);
  });
});

Deno.test("scheduler: a download without peers times out and leaves nothing", async () => {
  await cluster(
    { agentOptions: { leecherTtiMs: 300 } },
    async ({ tracker, origins: [origin], agents: [agent] }) => {
      const data = randomBytes(prng(14), 3 * PIECE);
      const mi = await addBlob(origin.store, data, PIECE);
      tracker.handout = () => [];
      await assert.rejects(
        agent.scheduler.download("ns", mi.digest),
        (err: Error) => err instanceof DownloadError && /timed out/.test(err.message),
      );
      assert.deepEqual(agent.scheduler.torrents, []);
      assert.deepEqual(await Array.fromAsync(Deno.readDir(`${agent.store.root}/uploads`)), []);
    },
  );
});

Deno.test("scheduler: remove() fails a running download and deletes the blob", async () => {
  await cluster({}, async ({ tracker, origins: [origin], agents: [agent] }) => {
    const data = randomBytes(prng(15), 3 * PIECE);
    const mi = await addBlob(origin.store, data, PIECE);
    tracker.handout = () => [];
    const failed = agent.scheduler.download("ns", mi.digest).then(() => null, (e: Error) => e);
    await waitFor("one torrent in memory", () => agent.scheduler.torrents.length === 1);
    await agent.scheduler.remove(mi.digest);
    assert.match(String(await failed), /DownloadError: .* removed/);
    tracker.handout = undefined;
    await agent.scheduler.download("ns", mi.digest);
    assert.ok(await agent.store.has(mi.digest));
    await agent.scheduler.remove(mi.digest);
    assert.equal(await agent.store.has(mi.digest), false);
    assert.deepEqual(agent.scheduler.torrents, []);
  });
});

Deno.test("scheduler: origins refuse downloads and publish their peer context", async () => {
  const origin = await startTestOrigin({ zone: "z1", cluster: "c1" });
  try {
    const digest = await digestOfBytes(new TextEncoder().encode("x"));
    await assert.rejects(origin.seeder.scheduler.download("ns", digest), /origin mode/);
    const text = origin.seeder.peerContextJson();
    assert.ok(text.endsWith("}\n"));
    const body = JSON.parse(text);
    assert.deepEqual(Object.keys(body), ["ip", "port", "peer_id", "zone", "cluster", "origin"]);
    assert.deepEqual(body.peer_id, hex20(origin.peerInfo.peerId));
    assert.deepEqual(
      [body.ip, body.port, body.zone, body.cluster, body.origin],
      ["127.0.0.1", origin.peerInfo.port, "z1", "c1", true],
    );
    assert.equal(origin.peerInfo.peerId, addrHashPeerId("127.0.0.1", origin.peerInfo.port));
  } finally {
    await origin.close();
  }
});

Deno.test("scheduler: an origin lacking a blob is told, and the agent gets it elsewhere", async () => {
  const missing: string[] = [];
  const empty = await startTestOrigin({
    onMissingTorrent: (ns, digest) => missing.push(`${ns} ${digest.hex}`),
  });
  try {
    await cluster({}, async ({ tracker, origins: [full], agents: [agent] }) => {
      const data = randomBytes(prng(16), 4 * PIECE);
      const mi = await addBlob(full.store, data, PIECE);
      tracker.handout = firstThen([empty.peerInfo], [empty.peerInfo, full.peerInfo]);
      const r = await agent.scheduler.download("library/x", mi.digest);
      assert.equal(r.summary?.piecesFromOrigins, 4);
      assert.deepEqual(missing, [`library/x ${mi.digest.hex}`]);
      // The serving origin loaded the blob as a seed; evicting drops it from memory only.
      assert.deepEqual(full.seeder.scheduler.torrents, [mi.digest.hex]);
      await full.seeder.scheduler.evict(mi.digest);
      assert.deepEqual(full.seeder.scheduler.torrents, []);
      assert.ok(await full.store.has(mi.digest));
    });
  } finally {
    await empty.close();
  }
});

Deno.test("scheduler: an idle seed leaves memory and is loaded again by a peer", async () => {
  await cluster(
    { agents: 2, agentOptions: { seederTtiMs: 100 } },
    async ({ tracker, origins: [origin], agents: [a1, a2] }) => {
      const data = randomBytes(prng(17), 6 * PIECE);
      const mi = await addBlob(origin.store, data, PIECE);
      await a1.scheduler.download("ns", mi.digest);
      await waitFor("the idle seed to leave memory", () => a1.scheduler.torrents.length === 0);
      tracker.handout = () => [{
        peerId: a1.scheduler.peerId,
        ip: "127.0.0.1",
        port: a1.scheduler.port,
        origin: false,
        complete: true,
      }];
      const r = await a2.scheduler.download("ns", mi.digest);
      assert.equal(r.summary?.piecesFromAgents, 6);
      assert.deepEqual(await readBlob(a2.store, mi.digest), data);
    },
  );
});

function hex20(hex: string): number[] {
  return Array.from({ length: 20 }, (_, i) => parseInt(hex.slice(2 * i, 2 * i + 2), 16));
}
