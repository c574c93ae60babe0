import assert from "node:assert/strict";
import { parseDigest } from "../storage/digest.ts";
import { InfoHash } from "../storage/metainfo.ts";
import {
  AnnounceAnswerEncoder,
  AnnounceWireError,
  encodeAnnounceRequest,
  encodeAnnounceResponse,
  goJson,
  hex20JsonText,
  hex20ToJSON,
  parseAnnounceRequest,
  parseAnnounceResponse,
  parseHex20,
  type PeerInfo,
  peerInfoToJSON,
} from "./announce.ts";

const DIGEST = parseDigest(
  "sha256:289314c356bc2a19802c3e31505506db30ea81a0bcaea4ec3e079524c8ac3cf5",
);
const HASH = InfoHash.fromHex("85b978c4377625b3963df406d0dd3a1da5a7d9c3");
const SELF = { peerId: "ee".repeat(20), ip: "10.0.0.9", port: 16001 };

const ids = (hex: string) => JSON.stringify(hex20ToJSON(hex));

Deno.test("announce wire: request body is byte-identical to upstream's json.Marshal", () => {
  const peer: PeerInfo = { ...SELF, origin: false, complete: true };
  assert.equal(
    encodeAnnounceRequest({ digest: DIGEST, infoHash: HASH, peer }),
    `{"name":"${DIGEST.hex}","digest":"${DIGEST}","info_hash":${ids(HASH.hex)},` +
      `"peer":{"peer_id":${
        ids(SELF.peerId)
      },"ip":"10.0.0.9","port":16001,"origin":false,"complete":true}}`,
  );
  assert.deepEqual(hex20ToJSON(HASH.hex).slice(0, 3), [0x85, 0xb9, 0x78]);
  assert.equal(parseHex20(hex20ToJSON(HASH.hex), "x"), HASH.hex);
});

Deno.test("announce wire: request decoding follows Go (case-insensitive keys, name fallback)", () => {
  const body = JSON.parse(encodeAnnounceRequest({
    digest: DIGEST,
    infoHash: HASH,
    peer: { ...SELF, origin: false, complete: false },
  }));
  const parsed = parseAnnounceRequest(body);
  assert.ok(parsed.digest.equals(DIGEST) && parsed.infoHash?.equals(HASH));
  assert.deepEqual(parsed.peer, { ...SELF, origin: false, complete: false });
  const legacy = parseAnnounceRequest({
    Name: DIGEST.hex,
    Peer: { PEER_ID: hex20ToJSON(SELF.peerId), IP: "h", Port: 1, Complete: true },
  });
  assert.ok(legacy.digest.equals(DIGEST));
  assert.equal(legacy.infoHash, undefined);
  assert.equal(legacy.peer.complete, true);
  for (
    const bad of [
      { ...body, peer: { ...body.peer, port: 70000 } },
      { ...body, peer: { ...body.peer, ip: "" } },
      { ...body, peer: { ...body.peer, complete: "yes" } },
      { ...body, peer: { ...body.peer, peer_id: [...hex20ToJSON(SELF.peerId), 1] } },
      { ...body, peer: { ...body.peer, peer_id: Array(20).fill(256) } },
      { ...body, digest: 7 },
      { peer: body.peer },
    ]
  ) {
    assert.throws(() => parseAnnounceRequest(bad), AnnounceWireError);
  }
});

Deno.test("announce wire: responses — null peers, nanosecond interval, Go's HTML escaping", () => {
  assert.equal(encodeAnnounceResponse(null, 3000), `{"peers":null,"interval":3000000000}\n`);
  assert.equal(encodeAnnounceResponse([], 2500), `{"peers":null,"interval":2500000000}\n`);
  const p: PeerInfo = { ...SELF, origin: true, complete: true };
  const text = encodeAnnounceResponse([p], 3000);
  assert.deepEqual(parseAnnounceResponse(JSON.parse(text)), { peers: [p], intervalMs: 3000 });
  assert.deepEqual(parseAnnounceResponse({ peers: null, interval: 0 }), {
    peers: [],
    intervalMs: 0,
  });
  assert.throws(() => parseAnnounceResponse({ peers: [], interval: "3s" }), /interval/);
  assert.equal(goJson({ a: "<&>\u2028" }), '{"a":"\\u003c\\u0026\\u003e\\u2028"}');
});

// What an answer is: Go's json.Marshal of the handout (the JSON objects through goJson).
const marshalled = (peers: PeerInfo[] | null, intervalMs: number) =>
  goJson({
    peers: peers === null || peers.length === 0 ? null : peers.map(peerInfoToJSON),
    interval: Math.round(intervalMs * 1e6),
  }) + "\n";

const ODD_PEERS: PeerInfo[] = [
  { peerId: "00".repeat(20), ip: "10.0.0.1", port: 1, origin: false, complete: false },
  { peerId: "ff".repeat(20), ip: "::1", port: 65535, origin: true, complete: true },
  {
    peerId: "0123456789ABCDEFabcdef0123456789abcdef01",
    ip: "h<&>",
    port: 80,
    origin: false,
    complete: true,
  },
  {
    peerId: "7f".repeat(20),
    ip: 'q"\\\u2028\u2029é😀\n',
    port: 8080,
    origin: true,
    complete: false,
  },
];

Deno.test("announce wire: answers written directly are byte for byte json.Marshal's", () => {
  for (const peers of [null, [], ODD_PEERS, ODD_PEERS.slice(1, 2)]) {
    for (const interval of [0, 3000, 2.5, 1e9]) {
      assert.equal(encodeAnnounceResponse(peers, interval), marshalled(peers, interval));
    }
  }
  for (const p of ODD_PEERS) assert.equal(hex20JsonText(p.peerId), ids(p.peerId));
  for (const bad of ["", "ab".repeat(19) + "a", "ab".repeat(21), "zz".repeat(20), "é".repeat(40)]) {
    assert.throws(() => hex20JsonText(bad), AnnounceWireError, bad);
    assert.throws(
      () => encodeAnnounceResponse([{ ...ODD_PEERS[0], peerId: bad }], 3000),
      AnnounceWireError,
    );
  }
});

Deno.test("announce wire: the answer encoder keeps peers' texts, never a stale one", () => {
  const answers = new AnnounceAnswerEncoder({ maxRememberedPeers: 3 });
  assert.equal(answers.encode(ODD_PEERS, 3000), marshalled(ODD_PEERS, 3000));
  assert.ok(answers.rememberedPeers <= 3);
  // The same peer IDs again, every other field changed in turn: each answer is written anew.
  const [first] = ODD_PEERS;
  const changed: PeerInfo[] = [
    { ...first, ip: "10.9.9.9" },
    { ...first, port: 2 },
    { ...first, origin: true },
    { ...first, complete: true },
    first,
  ];
  for (const peer of changed) {
    assert.equal(answers.encode([peer, ODD_PEERS[1]], 10), marshalled([peer, ODD_PEERS[1]], 10));
  }
  assert.equal(answers.encode(null, 1), marshalled(null, 1));
  // A bad ID is refused every time, never kept.
  const bad = { ...first, peerId: "zz".repeat(20) };
  for (let i = 0; i < 2; i++) {
    assert.throws(() => answers.encode([bad], 1), AnnounceWireError);
  }
  const none = new AnnounceAnswerEncoder({ maxRememberedPeers: 0 });
  assert.equal(none.encode(ODD_PEERS, 3000), marshalled(ODD_PEERS, 3000));
  assert.equal(none.rememberedPeers, 0);
});
