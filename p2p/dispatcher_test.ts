import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { waitFor } from "../tests/harness/wait.ts";
import { MessageSchema } from "../wire/p2p_pb.ts";
import { Bitfield } from "./bitfield.ts";
import { Blacklist } from "./blacklist.ts";
import { dialPeer, PeerConn, type RemoteHandshake, servePeers } from "./conn.ts";
import { CHUNK_NOT_SUPPORTED, Dispatcher, DispatcherError } from "./dispatcher.ts";
import { encodeFrame, type Frame, FrameReader, FrameWriter } from "./frame.ts";
import {
  ErrorCode,
  errorMessage,
  MessageType,
  piecePayloadMessage,
  pieceRequestMessage,
} from "./message.ts";
import {
  concat,
  MemoryStorage,
  prng,
  randomBytes,
  randomPeerId,
  ScriptedConn,
  TestNode,
} from "./_test_util.ts";

const PIECE = 16 * 1024;
const blob = randomBytes(prng(42), PIECE * 20 + 1234); // 21 pieces, the last one short

async function closeAll(...nodes: { close(): Promise<void> }[]): Promise<void> {
  await Promise.all(nodes.map((n) => n.close()));
}

Deno.test("a leecher downloads a multi-piece blob from an origin", async () => {
  const origin = new TestNode(new MemoryStorage(blob, PIECE, { complete: true }));
  const leecher = new TestNode(new MemoryStorage(blob, PIECE));
  try {
    assert.equal(leecher.storage.numPieces, 21);
    await leecher.connect(origin, true);
    await leecher.dispatcher.whenComplete();
    assert.deepEqual(leecher.storage.data, blob);
    const s = leecher.dispatcher.summary();
    assert.equal(s.piecesTotal, 21);
    assert.equal(s.piecesFromOrigins, 21);
    assert.equal(s.piecesFromAgents, 0);
    assert.equal(s.bytesReceived, blob.length);
    assert.equal(s.peersConnected, 1);
    assert.equal(s.piecesInvalid, 0);
    assert.ok(s.complete);
    assert.equal(origin.dispatcher.summary().bytesServed, blob.length);
    // Both sides are complete, so the leecher drops the connection.
    await waitFor(
      "origin.dispatcher.peerIds.length === 0",
      () => origin.dispatcher.peerIds.length === 0,
    );
    assert.equal(leecher.storage.writes, 21, "no piece written twice");
  } finally {
    await closeAll(leecher, origin);
  }
});

Deno.test("4 MiB pieces cross the wire intact", async () => {
  const big = new Uint8Array(4 * 1024 * 1024 * 2 + 77);
  for (let i = 0; i < big.length; i += 65536) crypto.getRandomValues(big.subarray(i, i + 65536));
  const origin = new TestNode(new MemoryStorage(big, 4 * 1024 * 1024, { complete: true }));
  const leecher = new TestNode(new MemoryStorage(big, 4 * 1024 * 1024));
  try {
    await leecher.connect(origin, true);
    await leecher.dispatcher.whenComplete();
    assert.deepEqual(leecher.storage.data, big);
    assert.equal(leecher.dispatcher.requestTimeoutMs, 16_000);
  } finally {
    await closeAll(leecher, origin);
  }
});

Deno.test("onComplete fires once and a complete torrent resolves at once", async () => {
  const origin = new TestNode(new MemoryStorage(blob, PIECE, { complete: true }));
  let fired = 0;
  const leecher = new TestNode(new MemoryStorage(blob, PIECE), { onComplete: () => fired++ });
  try {
    assert.ok(origin.dispatcher.complete);
    await origin.dispatcher.whenComplete();
    await leecher.connect(origin, true);
    await leecher.dispatcher.whenComplete();
    assert.equal(fired, 1);
  } finally {
    await closeAll(leecher, origin);
  }
});

Deno.test("pieces come from both an origin and a complete agent", async () => {
  const origin = new TestNode(new MemoryStorage(blob, PIECE, { complete: true }));
  const agent = new TestNode(new MemoryStorage(blob, PIECE, { complete: true }));
  const leecher = new TestNode(new MemoryStorage(blob, PIECE));
  try {
    await Promise.all([leecher.connect(origin, true), leecher.connect(agent)]);
    await leecher.dispatcher.whenComplete();
    assert.deepEqual(leecher.storage.data, blob);
    const s = leecher.dispatcher.summary();
    assert.ok(s.piecesFromOrigins > 0, `from origins: ${s.piecesFromOrigins}`);
    assert.ok(s.piecesFromAgents > 0, `from agents: ${s.piecesFromAgents}`);
    assert.equal(s.piecesFromOrigins + s.piecesFromAgents, 21);
    assert.equal(s.peersConnected, 2);
  } finally {
    await closeAll(leecher, origin, agent);
  }
});

Deno.test("a leecher relays pieces to another leecher as they arrive", async () => {
  const origin = new TestNode(new MemoryStorage(blob, PIECE, { complete: true }));
  const first = new TestNode(new MemoryStorage(blob, PIECE));
  const second = new TestNode(new MemoryStorage(blob, PIECE));
  try {
    // `second` knows only `first`, which has nothing yet: it learns of pieces from
    // ANNOUCE_PIECE (and COMPLETE) messages.
    await second.connect(first);
    await first.connect(origin, true);
    await Promise.all([first.dispatcher.whenComplete(), second.dispatcher.whenComplete()]);
    assert.deepEqual(second.storage.data, blob);
    assert.equal(second.dispatcher.summary().piecesFromAgents, 21);
  } finally {
    await closeAll(first, second, origin);
  }
});

Deno.test("a peer serving corrupt pieces is blacklisted and dropped; another peer completes the blob", async () => {
  const corruptStorage = new MemoryStorage(blob, PIECE, {
    complete: true,
    corrupt: (_, bytes) => {
      bytes[0] ^= 0xff;
      return bytes;
    },
  });
  const corrupt = new TestNode(corruptStorage);
  const good = new TestNode(new MemoryStorage(blob, PIECE, { complete: true }));
  const leecher = new TestNode(new MemoryStorage(blob, PIECE));
  try {
    await leecher.connect(corrupt, true);
    await waitFor(
      "leecher.blacklist.has(corrupt.peerId, leecher.storage.infoHash)",
      () => leecher.blacklist.has(corrupt.peerId, leecher.storage.infoHash),
    );
    await waitFor(
      "leecher.dispatcher.peerIds.length === 0",
      () => leecher.dispatcher.peerIds.length === 0,
    );
    assert.equal(leecher.storage.writes, 0, "no corrupt piece stored");
    assert.ok(leecher.errors.some((e) => /CRC-32/.test(e.message)));
    assert.ok(!leecher.dispatcher.reserve(corrupt.peerId), "no redial while blacklisted");

    await leecher.connect(good, true);
    await leecher.dispatcher.whenComplete();
    assert.deepEqual(leecher.storage.data, blob);
    const s = leecher.dispatcher.summary();
    assert.ok(s.piecesInvalid >= 1);
    assert.equal(s.piecesFromOrigins, 21);
    assert.ok(
      !leecher.blacklist.has(corrupt.peerId, leecher.storage.infoHash),
      "cleared on completion",
    );
    assert.ok(!leecher.dispatcher.reserve(corrupt.peerId), "a complete torrent dials no one");
  } finally {
    await closeAll(leecher, corrupt, good);
  }
});

// Dials `node` as a bare peer that requests what the test says and collects replies.
async function rawPeer(node: TestNode, bits: Bitfield): Promise<PeerConn> {
  return await dialPeer({
    hostname: "127.0.0.1",
    port: node.port,
    expectedPeerId: node.peerId,
    handshake: {
      peerId: randomPeerId(),
      infoHash: node.storage.infoHash,
      name: node.storage.digestHex,
      bitfield: bits,
    },
  });
}

Deno.test("a served piece leaves in one write: its frame header and bytes together", async () => {
  const storage = new MemoryStorage(blob, PIECE, { complete: true });
  const dispatcher = new Dispatcher({ storage, peerId: randomPeerId() });
  const asked = [3, 20, 0];
  const wire = new ScriptedConn(
    asked.map((i) => encodeFrame(pieceRequestMessage(i, storage.pieceLength(i)))),
    { hang: true },
  );
  const conn = new PeerConn(wire, new FrameReader(wire), new FrameWriter(wire), {
    peerId: randomPeerId(),
    localPeerId: randomPeerId(),
    infoHash: storage.infoHash,
    name: storage.digestHex,
    namespace: "",
    bitfield: new Bitfield(storage.numPieces),
    remoteBitfields: new Map(),
    initiated: false,
  });
  try {
    dispatcher.addConn(conn);
    await waitFor("three pieces sent", () => wire.writes.length >= asked.length);
    assert.deepEqual(
      wire.writes,
      asked.map((i) =>
        concat([
          encodeFrame(piecePayloadMessage(i, storage.pieceLength(i))),
          blob.subarray(i * PIECE, i * PIECE + storage.pieceLength(i)),
        ])
      ),
    );
    assert.equal(dispatcher.summary().bytesServed, 2 * PIECE + 1234);
  } finally {
    await dispatcher.close();
  }
});

Deno.test("PIECE_REQUESTs for parts of pieces, bad indexes or missing pieces get ERRORs", async () => {
  const half = new MemoryStorage(blob, PIECE);
  await half.writePiece(0, blob.subarray(0, PIECE));
  const seeder = new TestNode(half);
  const peer = await rawPeer(seeder, new Bitfield(21));
  try {
    const replies = peer[Symbol.asyncIterator]();
    const next = async (): Promise<Frame> => (await replies.next()).value as Frame;
    peer.send({
      message: create(MessageSchema, {
        type: MessageType.PIECE_REQUEST,
        pieceRequest: { index: 0, offset: 1, length: PIECE - 1 },
      }),
    });
    assert.deepEqual((await next()).message, errorMessage(0, CHUNK_NOT_SUPPORTED));
    peer.send({ message: pieceRequestMessage(0, PIECE - 1) });
    assert.deepEqual((await next()).message, errorMessage(0, CHUNK_NOT_SUPPORTED));
    peer.send({ message: pieceRequestMessage(20, PIECE) }); // the last piece is 1234 bytes
    assert.deepEqual((await next()).message, errorMessage(20, CHUNK_NOT_SUPPORTED));
    peer.send({ message: pieceRequestMessage(21, PIECE) });
    const outOfRange = (await next()).message;
    assert.equal(outOfRange.type, MessageType.ERROR);
    assert.equal(outOfRange.error?.code, ErrorCode.PIECE_REQUEST_FAILED);
    assert.equal(outOfRange.error?.index, 21);
    peer.send({ message: pieceRequestMessage(1, PIECE) });
    const missing = (await next()).message;
    assert.equal(missing.type, MessageType.ERROR);
    assert.equal(missing.error?.index, 1);
    peer.send({ message: pieceRequestMessage(0, PIECE) });
    assert.deepEqual(await next(), {
      message: piecePayloadMessage(0, PIECE),
      payload: blob.subarray(0, PIECE),
    });
  } finally {
    peer.close();
    await peer.closed;
    await seeder.close();
  }
});

// A peer that claims every piece, then answers each request with `reply` (or never).
function fakeSeeder(storage: MemoryStorage, reply?: (req: Frame, conn: PeerConn) => void) {
  const peerId = randomPeerId();
  const requests: number[] = [];
  const conns: PeerConn[] = [];
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const loops: Promise<void>[] = [];
  const server = servePeers(listener, {
    lookup: () => ({
      peerId,
      infoHash: storage.infoHash,
      name: storage.digestHex,
      bitfield: Bitfield.allSet(storage.numPieces),
    }),
    onConn: (conn) => {
      conns.push(conn);
      loops.push(
        (async () => {
          for await (const frame of conn) {
            if (frame.message.type !== MessageType.PIECE_REQUEST) continue;
            requests.push(frame.message.pieceRequest!.index);
            reply?.(frame, conn);
          }
        })().catch(() => {}),
      );
    },
  });
  return {
    peerId,
    port: listener.addr.port,
    requests,
    async close() {
      await server.close();
      for (const c of conns) c.close();
      await Promise.all([...loops, ...conns.map((c) => c.closed)]);
    },
  };
}

Deno.test("expired requests go to another peer and never back to the silent one", async () => {
  const storage = new MemoryStorage(blob, PIECE);
  const silent = fakeSeeder(storage);
  const good = new TestNode(new MemoryStorage(blob, PIECE, { complete: true }));
  const leecher = new TestNode(storage, {
    pieceRequestMinTimeoutMs: 150,
    pieceRequestTimeoutPerMbMs: 0,
  });
  try {
    assert.equal(leecher.dispatcher.requestTimeoutMs, 150);
    await leecher.connect(silent, true);
    await waitFor("silent.requests.length === 5", () => silent.requests.length === 5); // the origin pipeline
    await leecher.connect(good);
    await leecher.dispatcher.whenComplete();
    assert.deepEqual(storage.data, blob);
    assert.equal(new Set(silent.requests).size, silent.requests.length, "no re-request");
    assert.equal(leecher.dispatcher.summary().piecesFromAgents, 21);
  } finally {
    await closeAll(leecher, good, silent);
  }
});

/** Peers answering every PIECE_REQUEST wrongly; the leecher gets the blob from a good peer. */
const BAD_SEEDERS: {
  name: string;
  reply: (index: number, conn: PeerConn) => void;
  /** What the leecher has seen of the bad peer before the good one connects. */
  seen: string;
  until: (bad: ReturnType<typeof fakeSeeder>, leecher: TestNode) => boolean;
}[] = [
  {
    name: "ERROR replies make the piece go to another peer",
    reply: (index, conn) => conn.send({ message: errorMessage(index, "no") }),
    seen: "bad.requests.length >= 3",
    until: (bad) => bad.requests.length >= 3,
  },
  {
    name: "payloads with a wrong length are ignored and the request is invalid",
    reply: (index, conn) =>
      conn.send({ message: piecePayloadMessage(index, 10), payload: new Uint8Array(10) }),
    seen: "leecher.dispatcher.summary().piecesInvalid >= 3",
    until: (_, leecher) => leecher.dispatcher.summary().piecesInvalid >= 3,
  },
];
for (const { name, reply, seen, until } of BAD_SEEDERS) {
  Deno.test(name, async () => {
    const storage = new MemoryStorage(blob, PIECE);
    const bad = fakeSeeder(
      storage,
      (frame, conn) => reply(frame.message.pieceRequest!.index, conn),
    );
    const good = new TestNode(new MemoryStorage(blob, PIECE, { complete: true }));
    const leecher = new TestNode(storage);
    try {
      await leecher.connect(bad);
      await waitFor(seen, () => until(bad, leecher));
      await leecher.connect(good);
      await leecher.dispatcher.whenComplete();
      assert.deepEqual(storage.data, blob);
      assert.equal(new Set(bad.requests).size, bad.requests.length, "no re-request");
    } finally {
      await closeAll(leecher, good, bad);
    }
  });
}

Deno.test("endgame duplicates the last requests across peers", async () => {
  const small = blob.subarray(0, PIECE * 2);
  const storage = new MemoryStorage(small, PIECE);
  const silent = fakeSeeder(storage);
  const good = new TestNode(new MemoryStorage(small, PIECE, { complete: true }));
  // Default timeouts: without endgame the two pieces would wait 4 s for the silent peer.
  const leecher = new TestNode(storage);
  try {
    await leecher.connect(silent, true);
    await waitFor("silent.requests.length === 2", () => silent.requests.length === 2);
    const start = Date.now();
    await leecher.connect(good);
    await leecher.dispatcher.whenComplete();
    assert.ok(Date.now() - start < 2000);
    assert.deepEqual(storage.data, small);
  } finally {
    await closeAll(leecher, good, silent);
  }
});

function remote(peerId: string, infoHash: string, peers: string[] = []): RemoteHandshake {
  return {
    peerId,
    infoHash,
    name: "00".repeat(32),
    namespace: "",
    bitfield: new Bitfield(21),
    remoteBitfields: new Map(peers.map((p) => [p, new Bitfield(21)])),
  };
}

Deno.test("connection slots: reservations, capacity, mutual connections, blacklist", async () => {
  const storage = new MemoryStorage(blob, PIECE);
  const blacklist = new Blacklist();
  const self = randomPeerId();
  const d = new Dispatcher({ storage, peerId: self, blacklist, maxOpenConn: 2, maxMutualConn: 0 });
  try {
    const [a, b, c] = [randomPeerId(), randomPeerId(), randomPeerId()];
    assert.ok(!d.reserve(self), "not to self");
    blacklist.add(c, storage.infoHash);
    assert.ok(!d.reserve(c), "not while blacklisted");
    assert.ok(d.reserve(a));
    assert.ok(!d.reserve(a), "not twice");
    assert.throws(() => d.admit(remote(a, storage.infoHash)), /already connected/);
    assert.throws(() => d.admit(remote(b, "ff".repeat(20))), /info hash/);
    assert.throws(() => d.admit(remote(b, storage.infoHash, [a])), /mutual/);
    const reply = d.admit(remote(b, storage.infoHash, [c]));
    assert.equal(reply.namespace, "");
    assert.equal(reply.infoHash, storage.infoHash);
    assert.equal(reply.name, storage.digestHex);
    assert.ok(d.reserve(b));
    assert.ok(!d.reserve(randomPeerId()), "at capacity");
    assert.throws(() => d.admit(remote(randomPeerId(), storage.infoHash)), DispatcherError);
    d.cancelReservation(b);
    assert.ok(d.reserve(randomPeerId()));
    assert.equal(d.requestTimeoutMs, 4000);
  } finally {
    await d.close();
  }
  await assert.rejects(d.whenComplete(), DispatcherError);
});

Deno.test("close rejects pending waiters and closes connections", async () => {
  const origin = new TestNode(new MemoryStorage(blob, PIECE, { complete: true }));
  const silent = fakeSeeder(new MemoryStorage(blob, PIECE));
  const leecher = new TestNode(new MemoryStorage(blob, PIECE));
  try {
    await leecher.connect(silent, true);
    const rejected = assert.rejects(leecher.dispatcher.whenComplete(), /closed/);
    await leecher.dispatcher.close();
    await rejected;
    assert.deepEqual(leecher.dispatcher.peerIds, []);
    assert.ok(!leecher.dispatcher.summary().complete);
    await assert.rejects(leecher.connect(origin), /reservation refused/);
  } finally {
    await closeAll(leecher, origin, silent);
  }
});
