/**
 * The tracker's announce answer: encoding a full handout (the default `max_peers` of 50 agents
 * and two origins) through an object for `JSON.stringify` (how it was written before), written
 * directly, and by the tracker's encoder that keeps each peer's text; and parsing the info hash of
 * the announce's path. Numbers in docs/performance.md.
 *
 *     deno bench -A bench/announce_bench.ts
 *
 * @module
 */

import { InfoHash } from "../storage/metainfo.ts";
import {
  AnnounceAnswerEncoder,
  encodeAnnounceResponse,
  goJson,
  type PeerInfo,
  peerInfoToJSON,
} from "../wire/announce.ts";

const HANDOUT: PeerInfo[] = Array.from({ length: 52 }, (_, i) => ({
  peerId: (i * 7919).toString(16).padStart(40, "0"),
  ip: `10.0.${i >> 8}.${i & 255}`,
  port: 16_000 + i,
  origin: i >= 50,
  complete: i % 3 === 0,
}));
const HEX = "85b978c4377625b3963df406d0dd3a1da5a7d9c3";

const answers = new AnnounceAnswerEncoder();

Deno.bench("announce: 52 peers through JSON.stringify", { group: "answer", baseline: true }, () => {
  goJson({ peers: HANDOUT.map(peerInfoToJSON), interval: 3e9 });
});

Deno.bench("announce: 52 peers written directly", { group: "answer" }, () => {
  encodeAnnounceResponse(HANDOUT, 3000);
});

Deno.bench("announce: 52 peers, texts kept", { group: "answer" }, () => {
  answers.encode(HANDOUT, 3000);
});

Deno.bench("announce: the path's info hash", { group: "infohash" }, () => {
  InfoHash.fromHex(HEX);
});
