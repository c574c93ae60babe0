import assert from "node:assert/strict";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace";
import {
  encodeAnnounceRequest,
  hex20ToJSON,
  parseAnnounceResponse,
  type PeerInfo,
} from "../../wire/announce.ts";
import { parseDigest } from "../../storage/digest.ts";
import { InfoHash } from "../../storage/metainfo.ts";
import { ATTR, initTracing, policyCountAttr, SPAN } from "../../tracing/mod.ts";
import { parseTrackerConfig } from "./config.ts";
import type { PeerStore } from "./peerstore.ts";
import { testRoleContext } from "../_test_util.ts";
import { type RunningTracker, startTracker } from "./mod.ts";
import { freePort } from "../../tests/harness/procs.ts";
import { type FakeOrigin, startFakeOrigin, testLogger } from "./_test_util.ts";
import { testTracingConfig } from "../../tracing/_test_util.ts";

const exporter = new InMemorySpanExporter();
const tracing = initTracing(
  testTracingConfig("tracker"),
  { role: "tracker", logger: testLogger().logger, exporter },
);

const MI_JSON =
  '{"Info":{"PieceLength":4194304,"PieceSums":[2131691452],"Name":"289314c356bc2a19802c3e31505506db30ea81a0bcaea4ec3e079524c8ac3cf5","Length":236}}';
const DIGEST = parseDigest(
  "sha256:289314c356bc2a19802c3e31505506db30ea81a0bcaea4ec3e079524c8ac3cf5",
);
const HASH = InfoHash.fromHex("85b978c4377625b3963df406d0dd3a1da5a7d9c3");

function peer(n: number, complete = false): PeerInfo {
  return {
    peerId: n.toString(16).padStart(40, "0"),
    ip: `10.0.0.${n}`,
    port: 16000 + n,
    origin: false,
    complete,
  };
}

async function withTracker(
  fn: (t: RunningTracker, origin: FakeOrigin, base: string) => Promise<void>,
  options: { peerStore?: PeerStore; origins?: string[] } = {},
): Promise<void> {
  const origin = startFakeOrigin("0a".repeat(20), 15001);
  const config = parseTrackerConfig({
    listen: { host: "127.0.0.1", port: 0 },
    origins: { hosts: options.origins ?? [origin.addr] },
  });
  const tracker = await startTracker(
    config,
    testRoleContext("tracker", { logger: testLogger().logger, tracing }),
    { peerStore: options.peerStore },
  );
  try {
    await fn(tracker, origin, `http://127.0.0.1:${tracker.port}`);
  } finally {
    await tracker.stop();
    await origin.stop();
  }
}

function announce(base: string, p: PeerInfo, hash = HASH): Promise<Response> {
  return fetch(`${base}/announce/${hash.hex}`, {
    method: "POST",
    body: encodeAnnounceRequest({ digest: DIGEST, infoHash: hash, peer: p }),
  });
}

/** Sends raw HTTP/1.1 (fetch cannot send a GET with a body) and returns status and body. */
async function rawRequest(port: number, head: string, body: string) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const bytes = new TextEncoder().encode(body);
  await conn.write(new TextEncoder().encode(
    `${head}\r\nHost: 127.0.0.1\r\nContent-Length: ${bytes.length}\r\nConnection: close\r\n\r\n`,
  ));
  await conn.write(bytes);
  let text = "";
  const buf = new Uint8Array(4096);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  conn.close();
  const [headers, ...rest] = text.split("\r\n\r\n");
  return { status: Number(headers.split(" ")[1]), headers, body: rest.join("\r\n\r\n") };
}

Deno.test("tracker: announce v2 answers upstream's exact JSON (20-int ids, ns interval)", async () => {
  await withTracker(async (_t, _origin, base) => {
    const res = await announce(base, peer(1));
    assert.equal(res.status, 200);
    const ids = (hex: string) => JSON.stringify(hex20ToJSON(hex));
    assert.equal(
      await res.text(),
      `{"peers":[` +
        `{"peer_id":${
          ids("0a".repeat(20))
        },"ip":"127.0.0.1","port":15001,"origin":true,"complete":true},` +
        `{"peer_id":${
          ids(peer(1).peerId)
        },"ip":"10.0.0.1","port":16001,"origin":false,"complete":false}` +
        `],"interval":3000000000}\n`,
    );
    // A complete peer is recorded but gets no handout: `null`, not `[]`.
    const done = await announce(base, peer(2, true));
    assert.equal(await done.text(), `{"peers":null,"interval":3000000000}\n`);
    // Handout order: complete agents, origins, incomplete agents.
    const order = await (await announce(base, peer(3))).json();
    const ports = order.peers.map((p: { port: number }) => p.port);
    assert.deepEqual(ports.slice(0, 2), [16002, 15001]);
    assert.deepEqual(ports.slice(2).sort(), [16001, 16003]);
  });
});

Deno.test("tracker: announce v1 is a GET carrying the JSON body; the info hash comes from the body", async () => {
  await withTracker(async (t) => {
    const v1 = await rawRequest(
      t.port,
      "GET /announce HTTP/1.1",
      encodeAnnounceRequest({ digest: DIGEST, infoHash: HASH, peer: peer(4) }),
    );
    assert.equal(v1.status, 200, v1.body);
    assert.match(v1.headers, /content-length: \d+/i);
    const body = JSON.parse(v1.body);
    assert.equal(body.interval, 3e9);
    assert.deepEqual(body.peers.map((p: { port: number }) => p.port), [15001, 16004]);
    const noHash = await rawRequest(
      t.port,
      "GET /announce HTTP/1.1",
      JSON.stringify({
        digest: DIGEST.toString(),
        peer:
          JSON.parse(encodeAnnounceRequest({ digest: DIGEST, infoHash: HASH, peer: peer(4) })).peer,
      }),
    );
    assert.equal(noHash.status, 400);
    assert.match(noHash.body, /info_hash: is required/);
  });
});

Deno.test("tracker: v2 path info hash wins over the body's; `name` stands in for `digest`", async () => {
  await withTracker(async (_t, _origin, base) => {
    const other = InfoHash.fromHex("99".repeat(20));
    const body = JSON.parse(
      encodeAnnounceRequest({ digest: DIGEST, infoHash: other, peer: peer(5) }),
    );
    delete body.digest;
    const res = await fetch(`${base}/announce/${HASH.hex}`, {
      method: "POST",
      body: JSON.stringify(body),
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
    const seen = await (await announce(base, peer(6))).json();
    assert.ok(seen.peers.some((p: { port: number }) => p.port === 16005));
    const elsewhere = await (await announce(base, peer(6), other)).json();
    assert.ok(!elsewhere.peers.some((p: { port: number }) => p.port === 16005));
  });
});

Deno.test("tracker: malformed announces are 400 with a message", async () => {
  await withTracker(async (t, _origin, base) => {
    const good = JSON.parse(
      encodeAnnounceRequest({ digest: DIGEST, infoHash: HASH, peer: peer(1) }),
    );
    const cases: Array<[string, string, RegExp]> = [
      [`/announce/${HASH.hex}`, "{not json", /^json decode request: /],
      [`/announce/${HASH.hex}`, "[]", /must be a JSON object/],
      [`/announce/${HASH.hex}`, JSON.stringify({ ...good, peer: undefined }), /peer: is required/],
      [
        `/announce/${HASH.hex}`,
        JSON.stringify({ ...good, peer: { ...good.peer, peer_id: peer(1).peerId } }),
        /peer\.peer_id: must be an array of 20 integers/,
      ],
      [
        `/announce/${HASH.hex}`,
        JSON.stringify({ ...good, digest: "md5:00" }),
        /get request digest/,
      ],
      [`/announce/${HASH.hex}`, JSON.stringify({ ...good, info_hash: [1, 2] }), /info_hash/],
      ["/announce/zz", JSON.stringify(good), /^parse infohash: /],
    ];
    for (const [path, body, message] of cases) {
      const res = await fetch(`${base}${path}`, { method: "POST", body });
      assert.equal(res.status, 400, path + body);
      assert.match(await res.text(), message);
    }
    const huge = await fetch(`${base}/announce/${HASH.hex}`, {
      method: "POST",
      body: "x".repeat(100_000),
    });
    assert.equal(huge.status, 413);
    await huge.body?.cancel();
    const v1 = await rawRequest(t.port, "GET /announce HTTP/1.1", "");
    assert.equal(v1.status, 400);
  });
});

Deno.test("tracker: an announce body in many chunks, one character split across two, is read whole", async () => {
  await withTracker(async (_t, _origin, base) => {
    const seeder: PeerInfo = { ...peer(1), ip: "höst-1" };
    const bytes = new TextEncoder().encode(
      encodeAnnounceRequest({ digest: DIGEST, infoHash: HASH, peer: seeder }),
    );
    // 3-byte chunks: the 2-byte "ö" lands across a boundary in some of them.
    const chunks = Array.from(
      { length: Math.ceil(bytes.length / 3) },
      (_, i) => bytes.subarray(3 * i, 3 * i + 3),
    );
    const streamed = await fetch(`${base}/announce/${HASH.hex}`, {
      method: "POST",
      body: ReadableStream.from(chunks),
      duplex: "half",
    } as RequestInit);
    assert.equal(streamed.status, 200, await streamed.text());
    const res = await announce(base, peer(2));
    assert.equal(res.status, 200);
    const { peers } = parseAnnounceResponse(await res.json());
    assert.deepEqual(peers.find((p) => p.peerId === seeder.peerId), seeder);
  });
});

Deno.test("tracker: no peers and no origins is a 500 naming both failures", async () => {
  const failing: PeerStore = {
    type: "memory",
    updatePeer: () => Promise.reject(new Error("store down")),
    getPeers: () => Promise.reject(new Error("store down")),
    probe: () => Promise.reject(new Error("store down")),
    close: () => Promise.resolve(),
  };
  await withTracker(async (_t, _origin, base) => {
    const res = await announce(base, peer(1));
    assert.equal(res.status, 500);
    assert.match(
      await res.text(),
      /^no peers available: peer store: store down, origin store: origin locations: /,
    );
  }, { peerStore: failing, origins: [`127.0.0.1:${freePort()}`] });
});

Deno.test("tracker: metainfo proxy passes 200, 202 and 404 through as upstream", async () => {
  await withTracker(async (_t, origin, base) => {
    const url = (d = DIGEST.toString()) => `${base}/namespace/library%2Fubuntu/blobs/${d}/metainfo`;
    origin.metainfo.set(DIGEST.toString(), { status: 200, body: MI_JSON });
    const ok = await fetch(url());
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get("content-type"), "application/json");
    assert.equal(await ok.text(), MI_JSON);
    assert.ok(
      origin.requests.includes(
        `GET /internal/namespace/library%2Fubuntu/blobs/${DIGEST}/metainfo`,
      ),
      origin.requests.join("\n"),
    );

    origin.metainfo.set(DIGEST.toString(), { status: 202, body: "" });
    const pending = await fetch(url());
    assert.equal(pending.status, 202);
    assert.equal(await pending.text(), "origin: ");

    origin.metainfo.set(DIGEST.toString(), { status: 500, body: "disk on fire" });
    const failed = await fetch(url());
    assert.equal(failed.status, 500);
    assert.equal(await failed.text(), "origin: disk on fire");

    const missing = await fetch(url(`sha256:${"00".repeat(32)}`));
    assert.equal(missing.status, 404);
    assert.equal(await missing.text(), "origin: ");

    const bad = await fetch(url("sha256:nothex"));
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /^parse digest: /);
  });
});

Deno.test("tracker: metainfo tries the next location after an error but not after a 202", async () => {
  const second = startFakeOrigin();
  try {
    await withTracker(async (_t, first, base) => {
      first.locations = second.locations = [first.addr, second.addr];
      second.metainfo.set(DIGEST.toString(), { status: 200, body: MI_JSON });
      const url = `${base}/namespace/ns/blobs/${DIGEST}/metainfo`;
      const ok = await fetch(url); // first answers 404 → second
      assert.equal(await ok.text(), MI_JSON);
      first.metainfo.set(DIGEST.toString(), { status: 202, body: "" });
      const before = second.requests.length;
      const pending = await fetch(url);
      assert.equal(pending.status, 202);
      await pending.body?.cancel();
      assert.equal(second.requests.length, before);
    });
  } finally {
    await second.stop();
  }
});

Deno.test("tracker: health and readiness", async () => {
  await withTracker(async (_t, _origin, base) => {
    const health = await fetch(`${base}/health`);
    assert.equal(await health.text(), "OK\n");
    const ready = await fetch(`${base}/readiness`);
    assert.equal(ready.status, 200);
    assert.equal(await ready.text(), "OK\n");
  });
  await withTracker(async (_t, _origin, base) => {
    const ready = await fetch(`${base}/readiness`);
    assert.equal(ready.status, 503);
    assert.match(await ready.text(), /^not ready to serve traffic: /);
  }, { origins: [`127.0.0.1:${freePort()}`] });
});

Deno.test("tracker: announce spans — tracker.announce with store, origin and policy children", async () => {
  // Spans of earlier tests may still sit in the export queue.
  await tracing.forceFlush();
  exporter.reset();
  await withTracker(async (_t, _origin, base) => {
    await (await announce(base, peer(1, true))).body?.cancel();
    await (await announce(base, peer(2))).body?.cancel();
  });
  await tracing.forceFlush();
  const spans = exporter.getFinishedSpans();
  const announces = spans.filter((s) => s.name === SPAN.trackerAnnounce);
  assert.equal(announces.length, 2);
  const span = announces.find((s) => s.attributes.complete === false)!;
  assert.deepEqual(
    {
      infohash: span.attributes.infohash,
      handout_policy: span.attributes.handout_policy,
      peer_count: span.attributes.peer_count,
      origin_count: span.attributes.origin_count,
    },
    { infohash: HASH.hex, handout_policy: "completeness", peer_count: 2, origin_count: 1 },
  );
  const server = spans.find((s) => s.spanContext().spanId === span.parentSpanContext?.spanId)!;
  assert.equal(server.name, "POST /announce/{infohash}");
  const children = spans
    .filter((s) => s.parentSpanContext?.spanId === span.spanContext().spanId)
    .map((s) => s.name)
    .sort();
  assert.deepEqual(children, [
    SPAN.originstoreGetOrigins,
    SPAN.peerstoreGetPeers,
    SPAN.peerstoreUpdatePeer,
    SPAN.policySortPeers,
  ]);
  const getPeers = spans.find((s) => s.name === SPAN.peerstoreGetPeers)!;
  assert.deepEqual([getPeers.attributes[ATTR.peerstoreType], getPeers.attributes[ATTR.peerCount]], [
    "memory",
    2,
  ]);
  const sort = spans.find((s) => s.name === SPAN.policySortPeers)!;
  assert.deepEqual(
    [
      sort.attributes[policyCountAttr("peer_seeder")],
      sort.attributes[policyCountAttr("origin")],
      sort.attributes[policyCountAttr("peer_incomplete")],
    ],
    [1, 1, 1],
  );
  // The origin store's HTTP calls are client spans under its span.
  const originSpan = spans.find((s) => s.name === SPAN.originstoreGetOrigins)!;
  assert.ok(
    spans.some((s) =>
      s.name === "GET /blobs/{digest}/locations" &&
      s.parentSpanContext?.spanId === originSpan.spanContext().spanId
    ),
  );
  // The complete announce has no handout children.
  const completeSpan = announces.find((s) => s.attributes.complete === true)!;
  assert.deepEqual(
    spans.filter((s) => s.parentSpanContext?.spanId === completeSpan.spanContext().spanId)
      .map((s) => s.name),
    [SPAN.peerstoreUpdatePeer],
  );
});
