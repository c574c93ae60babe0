// Deterministic randomized fuzzing of the message decoder, the frame reader and a TCP acceptor.
// Every case must end in a decoded value or the module's own error class: never another
// exception, and never a hang (reads run under a deadline that must not fire).

import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { MessageSchema } from "../wire/p2p_pb.ts";
import { Bitfield } from "./bitfield.ts";
import { dialPeer, HandshakeError, type PeerConn, servePeers } from "./conn.ts";
import { encodeFrame, FrameError, FrameReader, MAX_MESSAGE_LENGTH } from "./frame.ts";
import {
  announcePieceMessage,
  bitfieldMessage,
  completeMessage,
  decodeMessage,
  encodeMessage,
  errorMessage,
  type Message,
  MessageError,
  MessageType,
  piecePayloadMessage,
  pieceRequestMessage,
} from "./message.ts";
import { chop, concat, prng, randomBytes, randomPeerId, ScriptedConn } from "./_test_util.ts";
import { waitFor } from "../tests/harness/wait.ts";

const corpus: Message[] = [
  bitfieldMessage({
    infoHash: "85b978c4377625b3963df406d0dd3a1da5a7d9c3",
    name: "289314c356bc2a19802c3e31505506db30ea81a0bcaea4ec3e079524c8ac3cf5",
    peerID: "0123456789abcdef0123456789abcdef01234567",
    bitfieldBytes: Bitfield.allSet(70).encode(),
    namespace: "library/ubuntu",
    remoteBitfieldBytes: { ["ab".repeat(20)]: new Bitfield(70).encode() },
  }),
  pieceRequestMessage(5, 4194304),
  piecePayloadMessage(2, 3),
  announcePieceMessage(9),
  create(MessageSchema, {
    version: "v",
    type: MessageType.CANCEL_PIECE,
    cancelPiece: { index: 1 },
  }),
  errorMessage(4, "reading / writing chunk of piece not supported"),
  completeMessage(),
];

function mutate(rand: () => number, input: Uint8Array): Uint8Array {
  const b = Array.from(input);
  const edits = 1 + Math.floor(rand() * 4);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(rand() * (b.length + 1));
    switch (Math.floor(rand() * 5)) {
      case 0:
        if (b.length) b[at % b.length] ^= 1 << Math.floor(rand() * 8);
        break;
      case 1:
        if (b.length) b[at % b.length] = Math.floor(rand() * 256);
        break;
      case 2:
        b.splice(at, 0, Math.floor(rand() * 256));
        break;
      case 3:
        b.splice(at, 1 + Math.floor(rand() * 4));
        break;
      default:
        b.length = Math.min(b.length, at);
    }
  }
  return Uint8Array.from(b);
}

function decodeOrError(data: Uint8Array): void {
  try {
    const msg = decodeMessage(data);
    assert.equal(typeof msg.type, "number");
    // Whatever decoded must encode again: the decoder produced only well-formed values.
    encodeMessage(msg);
  } catch (err) {
    if (!(err instanceof MessageError)) throw err;
  }
}

Deno.test("the decoder survives random bytes and mutated messages", () => {
  const rand = prng(20260814);
  const encoded = corpus.map(encodeMessage);
  for (let i = 0; i < 3000; i++) decodeOrError(randomBytes(rand, Math.floor(rand() * 64)));
  for (let i = 0; i < 3000; i++) {
    decodeOrError(mutate(rand, encoded[Math.floor(rand() * encoded.length)]));
  }
});

async function drain(reader: FrameReader): Promise<number> {
  let frames = 0;
  try {
    while ((await reader.read({ timeoutMs: 2000 })) !== null) frames++;
  } catch (err) {
    if (!(err instanceof FrameError)) throw err;
  }
  return frames;
}

Deno.test("the frame reader survives mutated, truncated and oversized streams", async () => {
  const rand = prng(7);
  const frameOf = (m: Message) =>
    m.type === MessageType.PIECE_PAYLOAD
      ? concat([encodeFrame(m), randomBytes(rand, m.piecePayload!.length)])
      : encodeFrame(m);
  for (let i = 0; i < 1500; i++) {
    const frames = Array.from(
      { length: 1 + Math.floor(rand() * 4) },
      () => frameOf(corpus[Math.floor(rand() * corpus.length)]),
    );
    let stream = concat(frames);
    switch (i % 4) {
      case 0:
        stream = mutate(rand, stream);
        break;
      case 1:
        stream = stream.subarray(0, Math.floor(rand() * stream.length));
        break;
      case 2: {
        // An oversized or random length prefix somewhere in the stream.
        const at = Math.floor(rand() * stream.length);
        const len = new Uint8Array(4);
        new DataView(len.buffer).setUint32(
          0,
          MAX_MESSAGE_LENGTH + 1 + Math.floor(rand() * 2 ** 31),
        );
        stream = concat([stream.subarray(0, at), len, stream.subarray(at)]);
        break;
      }
      default:
        stream = concat([stream, randomBytes(rand, Math.floor(rand() * 40))]);
    }
    const reader = new FrameReader(new ScriptedConn(chop(stream, rand, 16)), {
      maxPayloadLength: 1 << 20,
    });
    const read = await drain(reader);
    // Appended garbage may parse as extra frames, but the intact frames before it always read.
    if (i % 4 === 3) assert.ok(read >= frames.length, `stream ${i}: ${read} < ${frames.length}`);
  }
});

Deno.test("an acceptor fed garbage drops the connection and keeps serving", async () => {
  const rand = prng(99);
  const peerId = randomPeerId();
  const hash = "85b978c4377625b3963df406d0dd3a1da5a7d9c3";
  const name = "289314c356bc2a19802c3e31505506db30ea81a0bcaea4ec3e079524c8ac3cf5";
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const errors: Error[] = [];
  const conns: PeerConn[] = [];
  const server = servePeers(listener, {
    lookup: () => ({ peerId, infoHash: hash, name, bitfield: new Bitfield(70) }),
    onConn: (c) => conns.push(c),
    onError: (e) => errors.push(e),
    timeoutMs: 200,
  });
  const garbage = [
    Uint8Array.of(0, 0),
    randomBytes(rand, 100),
    Uint8Array.of(0xff, 0xff, 0xff, 0xff),
    concat([Uint8Array.of(0, 0, 0, 5), randomBytes(rand, 5)]),
    ...Array.from({ length: 20 }, () => mutate(rand, encodeFrame(corpus[0]))),
  ];
  try {
    for (const [i, bytes] of garbage.entries()) {
      const tcp = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
      await tcp.write(bytes).catch(() => {});
      // Half-closing lets the acceptor see the end of a partial frame at once; one case keeps
      // the stream open so the handshake deadline has to end it.
      if (i > 0) await tcp.closeWrite().catch(() => {});
      // The acceptor either rejects (EOF/reset) or, for a mutation that is still a valid
      // handshake, answers; a leftover partial frame ends in its read deadline.
      const reply = await new FrameReader(tcp).read({ timeoutMs: 3000 }).catch((e) => e);
      assert.ok(reply === null || reply instanceof Error || reply.message.bitfield, `${reply}`);
      tcp.close();
    }
    await waitFor(
      "the handshake deadline error",
      () => errors.some((e) => /within 200 ms/.test(e.message)),
    );
    assert.ok(errors.length > 0);
    assert.ok(errors.every((e) => e instanceof HandshakeError), errors.join("\n"));
    assert.ok(errors.some((e) => /within 200 ms/.test(e.message)), "the deadline fired");
    // The server still completes a real handshake.
    const conn = await dialPeer({
      hostname: "127.0.0.1",
      port: listener.addr.port,
      expectedPeerId: peerId,
      handshake: { peerId: randomPeerId(), infoHash: hash, name, bitfield: new Bitfield(70) },
    });
    conn.close();
    await conn.closed;
  } finally {
    await server.close();
    for (const c of conns) c.close();
    await Promise.all(conns.map((c) => c.closed));
  }
});
