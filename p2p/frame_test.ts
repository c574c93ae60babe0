import assert from "node:assert/strict";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import {
  DeadlineError,
  encodeFrame,
  encodePayloadFrame,
  FrameError,
  FrameReader,
  FrameWriter,
  MAX_MESSAGE_LENGTH,
  PAYLOAD_HEADER_ROOM,
} from "./frame.ts";
import {
  completeMessage,
  encodeMessage,
  errorMessage,
  MessageType,
  piecePayloadMessage,
  pieceRequestMessage,
} from "./message.ts";
import { ManualTimers } from "../common/timers.ts";
import { chop, concat, prng, ScriptedConn } from "./_test_util.ts";
import { PieceBufferPool } from "./buffer_pool.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
const header = (n: number) => {
  const h = new Uint8Array(4);
  new DataView(h.buffer).setUint32(0, n);
  return h;
};

Deno.test("frames carry a 4-byte big-endian length (Appendix A)", () => {
  assert.equal(
    hex(encodeFrame(pieceRequestMessage(5, 4194304))),
    "00 00 00 0b 10 01 22 07 10 05 20 80 80 80 02",
  );
  assert.equal(hex(encodeFrame(completeMessage())), "00 00 00 02 10 06");
});

Deno.test("the reader reassembles frames and payloads from any chunking", async () => {
  const payload = Uint8Array.from({ length: 1000 }, (_, i) => i % 251);
  const stream = concat([
    encodeFrame(pieceRequestMessage(5, 4194304)),
    encodeFrame(piecePayloadMessage(3, payload.length)),
    payload,
    encodeFrame(completeMessage()),
    encodeFrame(piecePayloadMessage(0, 0)),
  ]);
  const rand = prng(1);
  for (const max of [1, 3, 17, 4096]) {
    const reader = new FrameReader(new ScriptedConn(chop(stream, rand, max)));
    assert.deepEqual(await reader.read(), { message: pieceRequestMessage(5, 4194304) });
    assert.deepEqual(await reader.read(), { message: piecePayloadMessage(3, 1000), payload });
    assert.deepEqual(await reader.read(), { message: completeMessage() });
    assert.deepEqual(await reader.read(), {
      message: piecePayloadMessage(0, 0),
      payload: new Uint8Array(0),
    });
    assert.equal(await reader.read(), null);
  }
});

Deno.test("payload bytes not yet buffered are read straight into the payload", async () => {
  const payload = new Uint8Array(200_000).fill(7);
  const conn = new ScriptedConn([encodeFrame(piecePayloadMessage(0, payload.length)), payload]);
  const frame = await new FrameReader(conn).read();
  assert.deepEqual(frame?.payload, payload);
  assert.ok(conn.readTargets.some((p) => p.buffer === frame?.payload?.buffer));
});

Deno.test("with payloadBuffers, payloads land in a ring of buffers, each intact until reused", async () => {
  const a = Uint8Array.from({ length: 5000 }, (_, i) => i % 251);
  const b = Uint8Array.from({ length: 3000 }, (_, i) => (i * 7) % 253);
  const stream = concat([
    encodeFrame(piecePayloadMessage(0, a.length)),
    a,
    encodeFrame(piecePayloadMessage(1, b.length)),
    b,
    encodeFrame(piecePayloadMessage(2, a.length)),
    a,
  ]);
  const rand = prng(9);
  for (const buffers of [0, 1, 2]) {
    const reader = new FrameReader(new ScriptedConn(chop(stream, rand, 2000)), {
      payloadBuffers: buffers,
    });
    const first = await reader.read();
    assert.deepEqual(first?.payload, a);
    const second = await reader.read();
    assert.deepEqual(second?.payload, b);
    if (buffers === 2) assert.deepEqual(first?.payload, a, "still intact one payload later");
    const third = await reader.read();
    assert.deepEqual(third?.payload, a);
    assert.equal(first?.payload?.buffer === second?.payload?.buffer, buffers === 1);
    assert.equal(first?.payload?.buffer === third?.payload?.buffer, buffers > 0);
    assert.equal(await reader.read(), null);
  }
});

Deno.test("with a bufferPool, the ring comes from the pool and releaseBuffers gives it back", async () => {
  const a = Uint8Array.from({ length: 5000 }, (_, i) => i % 251);
  const stream = concat([
    encodeFrame(piecePayloadMessage(0, a.length)),
    a,
    encodeFrame(piecePayloadMessage(1, a.length)),
    a,
  ]);
  const pool = new PieceBufferPool({ timers: new ManualTimers() });
  const lent = pool.take(8192);
  pool.give(lent);
  const read = async () => {
    const reader = new FrameReader(new ScriptedConn(chop(stream, prng(3), 2000)), {
      payloadBuffers: 2,
      bufferPool: pool,
    });
    const first = await reader.read(), second = await reader.read();
    assert.deepEqual(first?.payload, a);
    assert.deepEqual(second?.payload, a);
    return { reader, buffers: [first?.payload?.buffer, second?.payload?.buffer] };
  };
  const one = await read();
  assert.equal(one.buffers[0], lent.buffer, "the first slot took the waiting buffer");
  assert.notEqual(one.buffers[1], lent.buffer, "the second a new one (the pool was empty)");
  assert.equal(pool.idleBytes, 0);
  one.reader.releaseBuffers();
  assert.equal(pool.idleBytes, 8192 + a.length, "both slots back in the pool");
  const two = await read();
  assert.deepEqual(new Set(two.buffers), new Set(one.buffers), "the next reader reuses them");
  pool.close();
});

Deno.test("a frame of exactly 32768 bytes is accepted, one byte more is a FrameError", async () => {
  // Pad with an unknown bytes field so the message is exactly the limit.
  const body = new BinaryWriter().tag(2, WireType.Varint).int32(MessageType.COMPLETE)
    .tag(15, WireType.LengthDelimited).bytes(new Uint8Array(MAX_MESSAGE_LENGTH - 2 - 4))
    .finish();
  assert.equal(body.length, MAX_MESSAGE_LENGTH);
  const ok = new FrameReader(new ScriptedConn([header(body.length), body]));
  assert.equal((await ok.read())?.message.type, MessageType.COMPLETE);

  const tooBig = new FrameReader(new ScriptedConn([header(MAX_MESSAGE_LENGTH + 1)]));
  await assert.rejects(tooBig.read(), FrameError);
  const huge = new FrameReader(new ScriptedConn([header(0xffffffff)]));
  await assert.rejects(huge.read(), FrameError);
});

Deno.test("truncated input is a FrameError", async () => {
  const frame = encodeFrame(piecePayloadMessage(1, 10));
  const cases = [
    frame.subarray(0, 2), // inside the length
    frame.subarray(0, 6), // inside the message
    concat([frame, new Uint8Array(4)]), // inside the payload
  ];
  for (const data of cases) {
    const reader = new FrameReader(new ScriptedConn([data]));
    await assert.rejects(reader.read(), FrameError);
  }
});

Deno.test("undecodable messages and bad payload lengths are FrameErrors", async () => {
  const cases = [
    concat([header(1), Uint8Array.of(0x10)]), // truncated varint
    encodeFrame(piecePayloadMessage(0, -1)),
    encodeFrame(piecePayloadMessage(0, 101)),
  ];
  for (const data of cases) {
    const reader = new FrameReader(new ScriptedConn([data]), { maxPayloadLength: 100 });
    await assert.rejects(reader.read(), FrameError);
  }
});

Deno.test("a read deadline closes the connection instead of hanging", async () => {
  const conn = new ScriptedConn([encodeFrame(completeMessage()).subarray(0, 3)], { hang: true });
  const reader = new FrameReader(conn);
  const start = Date.now();
  await assert.rejects(reader.read({ timeoutMs: 50 }), DeadlineError);
  assert.ok(Date.now() - start < 1000);
  assert.ok(conn.closed);
});

Deno.test("a read that beats its deadline leaves the connection open", async () => {
  const conn = new ScriptedConn([encodeFrame(completeMessage())]);
  const frame = await new FrameReader(conn).read({ timeoutMs: 1000 });
  assert.equal(frame?.message.type, MessageType.COMPLETE);
  assert.ok(!conn.closed);
});

Deno.test("the writer sends frame then payload, across partial writes", async () => {
  const conn = new ScriptedConn([], { maxWrite: 5 });
  const writer = new FrameWriter(conn);
  const payload = Uint8Array.of(1, 2, 3, 4, 5, 6, 7);
  await writer.write(piecePayloadMessage(2, 7), payload);
  await writer.write(errorMessage(2, "x"));
  const reader = new FrameReader(new ScriptedConn([conn.written()]));
  assert.deepEqual(await reader.read(), { message: piecePayloadMessage(2, 7), payload });
  assert.deepEqual(await reader.read(), { message: errorMessage(2, "x") });
  assert.equal(await reader.read(), null);
});

Deno.test("the writer refuses inconsistent payloads and oversized messages", async () => {
  const conn = new ScriptedConn([]);
  const writer = new FrameWriter(conn);
  await assert.rejects(writer.write(piecePayloadMessage(0, 3), Uint8Array.of(1)), FrameError);
  await assert.rejects(writer.write(piecePayloadMessage(0, 3)), FrameError);
  await assert.rejects(writer.write(completeMessage(), Uint8Array.of(1)), FrameError);
  const big = errorMessage(0, "x".repeat(MAX_MESSAGE_LENGTH));
  assert.ok(encodeMessage(big).length > MAX_MESSAGE_LENGTH);
  await assert.rejects(writer.write(big), FrameError);
  assert.equal(conn.writes.length, 0, "nothing reaches the wire");
});

Deno.test("a payload frame built in place is the header and payload bytes, sent in one write", async () => {
  const piece = Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff);
  const reference = new ScriptedConn([]);
  await new FrameWriter(reference).write(piecePayloadMessage(2_000_000, 1000), piece);
  const buffer = new Uint8Array(PAYLOAD_HEADER_ROOM + 4096);
  buffer.set(piece, PAYLOAD_HEADER_ROOM);
  const frame = encodePayloadFrame(piecePayloadMessage(2_000_000, 1000), buffer, 1000);
  assert.equal(frame.buffer, buffer.buffer, "a view of the buffer, no copy");
  assert.equal(frame.byteOffset + frame.length, PAYLOAD_HEADER_ROOM + 1000);
  assert.deepEqual(frame, reference.written(), "the same bytes on the wire");
  const conn = new ScriptedConn([]);
  await new FrameWriter(conn).writeEncoded(frame);
  assert.equal(conn.writes.length, 1);
  const reader = new FrameReader(new ScriptedConn([conn.written()]));
  assert.deepEqual(await reader.read(), {
    message: piecePayloadMessage(2_000_000, 1000),
    payload: piece,
  });
  // Partial writes still deliver the whole frame.
  const slow = new ScriptedConn([], { maxWrite: 300 });
  await new FrameWriter(slow).writeEncoded(frame);
  assert.deepEqual(slow.written(), frame);
});

Deno.test("a payload frame is refused for another message, another length or a short buffer", () => {
  const buffer = new Uint8Array(PAYLOAD_HEADER_ROOM + 10);
  assert.throws(() => encodePayloadFrame(completeMessage(), buffer, 0), FrameError);
  assert.throws(() => encodePayloadFrame(piecePayloadMessage(0, 9), buffer, 10), FrameError);
  assert.throws(() => encodePayloadFrame(piecePayloadMessage(0, 11), buffer, 11), FrameError);
  const digestHeavy = piecePayloadMessage(0, 10);
  digestHeavy.piecePayload!.digest = "x".repeat(PAYLOAD_HEADER_ROOM);
  assert.throws(() => encodePayloadFrame(digestHeavy, buffer, 10), /exceeds/);
});

Deno.test("a write deadline closes a stalled connection", async () => {
  const conn = {
    read: () => Promise.resolve(null),
    write: () => new Promise<number>((_, reject) => closeHook = reject),
    close: () => closeHook(new Error("closed")),
  };
  let closeHook: (err: Error) => void = () => {};
  const writer = new FrameWriter(conn);
  await assert.rejects(
    writer.write(completeMessage(), undefined, { timeoutMs: 30 }),
    DeadlineError,
  );
});
