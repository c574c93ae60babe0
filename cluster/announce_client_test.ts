import assert from "node:assert/strict";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace";
import { parseTrackerConfig } from "../roles/tracker/config.ts";
import { testRoleContext } from "../roles/_test_util.ts";
import { type RunningTracker, startTracker } from "../roles/tracker/mod.ts";
import { freePort } from "../tests/harness/procs.ts";
import { waitFor } from "../tests/harness/wait.ts";
import { type FakeOrigin, startFakeOrigin, testLogger } from "../roles/tracker/_test_util.ts";
import { HttpStatusError } from "../http/status_error.ts";
import { parseDigest } from "../storage/digest.ts";
import { InfoHash } from "../storage/metainfo.ts";
import { initTracing, SPAN, SpanKind } from "../tracing/mod.ts";
import { AnnounceClient, TrackersUnavailableError } from "./announce_client.ts";
import { HashRing } from "./hashring.ts";
import { PassiveHealthFilter } from "./healthcheck.ts";
import { testTracingConfig } from "../tracing/_test_util.ts";

const exporter = new InMemorySpanExporter();
const tracing = initTracing(
  testTracingConfig("agent"),
  { role: "agent", logger: testLogger().logger, exporter },
);

const MI_JSON =
  '{"Info":{"PieceLength":4194304,"PieceSums":[2131691452],"Name":"289314c356bc2a19802c3e31505506db30ea81a0bcaea4ec3e079524c8ac3cf5","Length":236}}';
const DIGEST = parseDigest(
  "sha256:289314c356bc2a19802c3e31505506db30ea81a0bcaea4ec3e079524c8ac3cf5",
);
const HASH = InfoHash.fromHex("85b978c4377625b3963df406d0dd3a1da5a7d9c3");
const SELF = { peerId: "ee".repeat(20), ip: "10.0.0.9", port: 16001 };

async function withCluster(
  fn: (ctx: { tracker: RunningTracker; origin: FakeOrigin; addr: string }) => Promise<void>,
): Promise<void> {
  const origin = startFakeOrigin("0a".repeat(20), 15001);
  const tracker = await startTracker(
    parseTrackerConfig({
      listen: { host: "127.0.0.1", port: 0 },
      origins: { hosts: [origin.addr] },
    }),
    testRoleContext("tracker", { logger: testLogger().logger, tracing }),
  );
  try {
    await fn({ tracker, origin, addr: `127.0.0.1:${tracker.port}` });
  } finally {
    await tracker.stop();
    await origin.stop();
  }
}

Deno.test("announce client: announces to a real tracker; own peer is filtered out", async () => {
  await withCluster(async ({ addr }) => {
    const client = new AnnounceClient({ trackers: [addr] });
    const other = new AnnounceClient({ trackers: [addr] });
    await other.announce({
      digest: DIGEST,
      infoHash: HASH,
      peer: { peerId: "01".repeat(20), ip: "10.0.0.1", port: 16001 },
      complete: true,
    });
    const res = await client.announce({
      digest: DIGEST,
      infoHash: HASH,
      peer: SELF,
      complete: false,
    });
    assert.equal(res.tracker, addr);
    assert.equal(res.intervalMs, 3000);
    assert.deepEqual(res.peers.map((p) => [p.peerId, p.origin, p.complete]), [
      ["01".repeat(20), false, true],
      ["0a".repeat(20), true, true],
    ]);
    const done = await client.announce({
      digest: DIGEST,
      infoHash: HASH,
      peer: SELF,
      complete: true,
    });
    assert.deepEqual(done.peers, []);
  });
});

Deno.test("announce client: the next ring tracker is tried on network errors only", async () => {
  await withCluster(async ({ addr }) => {
    const dead = `127.0.0.1:${freePort()}`;
    const ring = new HashRing([dead, addr]);
    // A digest for which the dead tracker comes first.
    let digest = DIGEST;
    for (let i = 0; ring.ordered(digest.hex)[0] !== dead; i++) {
      digest = parseDigest(`sha256:${i.toString(16).padStart(4, "0")}${DIGEST.hex.slice(4)}`);
    }
    let now = 0;
    const health = new PassiveHealthFilter({ fails: 1, now: () => now });
    const client = new AnnounceClient({ trackers: [dead, addr], health });
    const res = await client.announce({ digest, infoHash: HASH, peer: SELF, complete: false });
    assert.equal(res.tracker, addr);
    assert.equal(health.isHealthy(dead), false);
    now += 10 * 60_000;
    assert.equal(health.isHealthy(dead), true);

    const nobody = new AnnounceClient({ trackers: [dead] });
    await assert.rejects(
      nobody.announce({ digest, infoHash: HASH, peer: SELF, complete: false }),
      TrackersUnavailableError,
    );
  });
});

Deno.test("announce client: a tracker's error status is returned, not failed over", async () => {
  const failing = {
    type: "memory",
    updatePeer: () => Promise.reject(new Error("down")),
    getPeers: () => Promise.reject(new Error("down")),
    probe: () => Promise.reject(new Error("down")),
    close: () => Promise.resolve(),
  };
  const broken = await startTracker(
    parseTrackerConfig({
      listen: { host: "127.0.0.1", port: 0 },
      origins: { hosts: [`127.0.0.1:${freePort()}`] },
    }),
    testRoleContext("tracker", { logger: testLogger().logger, tracing }),
    { peerStore: failing },
  );
  const brokenAddr = `127.0.0.1:${broken.port}`;
  try {
    await withCluster(async ({ addr }) => {
      const ring = new HashRing([brokenAddr, addr]);
      let digest = DIGEST;
      for (let i = 0; ring.ordered(digest.hex)[0] !== brokenAddr; i++) {
        digest = parseDigest(`sha256:${i.toString(16).padStart(4, "0")}${DIGEST.hex.slice(4)}`);
      }
      const client = new AnnounceClient({ trackers: [brokenAddr, addr] });
      await assert.rejects(
        client.announce({ digest, infoHash: HASH, peer: SELF, complete: false }),
        (e: unknown) =>
          e instanceof HttpStatusError && e.status === 500 && /no peers available/.test(e.body),
      );
    });
  } finally {
    await broken.stop();
  }
});

Deno.test("announce client: metainfo through the tracker, polling 202 with a bound, 404", async () => {
  await withCluster(async ({ origin, addr }) => {
    const client = new AnnounceClient({
      trackers: [addr],
      poll: { initialMs: 10, maxIntervalMs: 20, maxElapsedMs: 2_000 },
    });
    origin.metainfo.set(DIGEST.toString(), { status: 202, body: "" });
    // The metainfo becomes ready once the origin has answered one 202 (not after a fixed delay,
    // which a slow machine could outlast before the first request).
    const ready = waitFor(
      "the first 202",
      () => origin.requests.some((r) => r.endsWith("/metainfo")),
    )
      .then(() => origin.metainfo.set(DIGEST.toString(), { status: 200, body: MI_JSON }));
    const mi = await client.getMetaInfo("library/ubuntu", DIGEST);
    await ready;
    assert.equal(mi.infoHash.hex, HASH.hex);
    assert.ok(origin.requests.filter((r) => r.endsWith("/metainfo")).length >= 2);
    assert.ok(
      origin.requests.includes(`GET /internal/namespace/library%2Fubuntu/blobs/${DIGEST}/metainfo`),
    );

    origin.metainfo.set(DIGEST.toString(), { status: 202, body: "" });
    const impatient = new AnnounceClient({
      trackers: [addr],
      poll: { initialMs: 10, maxIntervalMs: 10, maxElapsedMs: 50 },
    });
    await assert.rejects(impatient.getMetaInfo("ns", DIGEST), /still 202 Accepted/);

    await assert.rejects(
      client.getMetaInfo("ns", parseDigest(`sha256:${"00".repeat(32)}`)),
      (e: unknown) => e instanceof HttpStatusError && e.status === 404,
    );
  });
});

Deno.test("announce client: announce.request carries the trace into tracker.announce", async () => {
  await tracing.forceFlush();
  exporter.reset();
  let trackerAddr = "";
  await withCluster(async ({ addr }) => {
    trackerAddr = addr;
    const client = new AnnounceClient({ trackers: [addr] });
    await client.announce({
      digest: DIGEST,
      infoHash: HASH,
      peer: SELF,
      complete: false,
      namespace: "ns",
    });
  });
  await tracing.forceFlush();
  const spans = exporter.getFinishedSpans();
  const byName = (n: string) => spans.find((s) => s.name === n)!;
  const request = byName(SPAN.announceRequest);
  assert.deepEqual(
    [request.attributes["tracker.addr"], request.attributes.infohash, request.attributes.complete],
    [trackerAddr, HASH.hex, false],
  );
  const clientSpan = spans.find((s) =>
    s.name === "POST /announce/{infohash}" && s.kind === SpanKind.CLIENT
  )!;
  const serverSpan = spans.find((s) =>
    s.name === "POST /announce/{infohash}" && s.kind === SpanKind.SERVER
  )!;
  const announce = byName(SPAN.trackerAnnounce);
  assert.equal(clientSpan.parentSpanContext?.spanId, request.spanContext().spanId);
  assert.equal(serverSpan.parentSpanContext?.spanId, clientSpan.spanContext().spanId);
  assert.equal(announce.parentSpanContext?.spanId, serverSpan.spanContext().spanId);
  assert.equal(announce.spanContext().traceId, request.spanContext().traceId);
});
