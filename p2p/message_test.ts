import assert from "node:assert/strict";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  BitfieldMessageSchema,
  type ErrorMessage_ErrorCode as ErrorCode,
  MessageSchema,
  PiecePayloadMessageSchema,
  PieceRequestMessageSchema,
} from "../wire/p2p_pb.ts";
import {
  announcePieceMessage,
  bitfieldMessage,
  cancelPieceMessage,
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

const message = (init: MessageInitShape<typeof MessageSchema>) => create(MessageSchema, init);
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
const bytes = (s: string) => Uint8Array.from(s.split(" "), (x) => parseInt(x, 16));

// Field numbers at the top level of an encoded message, in wire order.
function fieldNumbers(data: Uint8Array): number[] {
  const r = new BinaryReader(data);
  const out: number[] = [];
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    out.push(no);
    r.skip(wt, no);
  }
  return out;
}

const handshake = () =>
  bitfieldMessage({
    infoHash: "85b978c4377625b3963df406d0dd3a1da5a7d9c3",
    name: "289314c356bc2a19802c3e31505506db30ea81a0bcaea4ec3e079524c8ac3cf5",
    peerID: "0123456789abcdef0123456789abcdef01234567",
    bitfieldBytes: bytes("00 00 00 00 00 00 00 0a 00 00 00 00 00 00 02 03"),
    namespace: "library/ubuntu",
    remoteBitfieldBytes: {
      ["aa".repeat(20)]: bytes("00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 01"),
      ["bb".repeat(20)]: bytes("00 00 00 00 00 00 00 00"),
    },
  });

Deno.test("PIECE_REQUEST matches the Appendix A vector byte for byte", () => {
  const encoded = encodeMessage(pieceRequestMessage(5, 4194304));
  assert.equal(hex(encoded), "10 01 22 07 10 05 20 80 80 80 02");
  assert.deepEqual(decodeMessage(encoded), pieceRequestMessage(5, 4194304));
});

Deno.test("COMPLETE is only the type field", () => {
  assert.equal(hex(encodeMessage(completeMessage())), "10 06");
  const decoded = decodeMessage(bytes("10 06"));
  assert.equal(decoded.type, MessageType.COMPLETE);
  assert.equal(decoded.complete, undefined);
});

Deno.test("handshake BITFIELD has no type field and starts with field 3", () => {
  const encoded = encodeMessage(handshake());
  assert.equal(encoded[0], 0x1a);
  assert.deepEqual(fieldNumbers(encoded), [3]);
  const sub = new BinaryReader(encoded);
  sub.tag();
  assert.deepEqual(fieldNumbers(sub.bytes()), [2, 3, 4, 5, 6, 7, 7]);
  assert.deepEqual(decodeMessage(encoded), handshake());
});

Deno.test("an acceptor BITFIELD with empty namespace omits field 6", () => {
  const msg = handshake();
  msg.bitfield!.namespace = "";
  msg.bitfield!.remoteBitfieldBytes = {};
  const r = new BinaryReader(encodeMessage(msg));
  r.tag();
  assert.deepEqual(fieldNumbers(r.bytes()), [2, 3, 4, 5]);
});

Deno.test("every message type round-trips", () => {
  const cases: Message[] = [
    handshake(),
    pieceRequestMessage(0, 1),
    pieceRequestMessage(2559, 4194304),
    piecePayloadMessage(7, 1048576),
    message({
      type: MessageType.PIECE_PAYLOAD,
      piecePayload: { index: 1, offset: 3, length: 2, digest: "d" },
    }),
    announcePieceMessage(0),
    announcePieceMessage(12),
    cancelPieceMessage(9),
    errorMessage(3, "reading / writing chunk of piece not supported"),
    message({ type: MessageType.ERROR, error: { error: "ü", index: 0, code: 7 as ErrorCode } }),
    completeMessage(),
    message({ version: "1.0", type: MessageType.COMPLETE, complete: {} }),
    pieceRequestMessage(-1, -2147483648),
  ];
  for (const msg of cases) assert.deepEqual(decodeMessage(encodeMessage(msg)), msg);
});

Deno.test("zero fields are omitted", () => {
  assert.equal(hex(encodeMessage(pieceRequestMessage(0, 0))), "10 01 22 00");
  assert.equal(hex(encodeMessage(errorMessage(0, ""))), "10 05 42 00");
  assert.equal(hex(encodeMessage(announcePieceMessage(0))), "10 03 32 00");
  assert.equal(hex(encodeMessage(message({ version: "", type: 0 }))), "");
  assert.deepEqual(decodeMessage(new Uint8Array(0)), message({ version: "", type: 0 }));
});

Deno.test("missing sub-message fields decode as zero", () => {
  assert.deepEqual(
    decodeMessage(bytes("10 02 2a 00")).piecePayload,
    create(PiecePayloadMessageSchema, { index: 0, offset: 0, length: 0, digest: "" }),
  );
  assert.deepEqual(
    decodeMessage(bytes("1a 00")).bitfield,
    create(BitfieldMessageSchema, {
      infoHash: "",
      name: "",
      peerID: "",
      bitfieldBytes: new Uint8Array(0),
      namespace: "",
      remoteBitfieldBytes: {},
    }),
  );
});

Deno.test("unknown fields of every wire type are skipped, at every level", () => {
  const w = new BinaryWriter();
  w.tag(15, WireType.Varint).uint64(1n << 60n);
  w.tag(2, WireType.Varint).int32(1);
  w.tag(16, WireType.LengthDelimited).bytes(bytes("01 02 03"));
  w.tag(4, WireType.LengthDelimited).fork();
  w.tag(2, WireType.Varint).int32(5);
  w.tag(17, WireType.Bit32).fixed32(7);
  w.tag(18, WireType.Bit64).fixed64(8n);
  w.tag(19, WireType.StartGroup).tag(1, WireType.Varint).int32(1).tag(19, WireType.EndGroup);
  w.tag(4, WireType.Varint).int32(4194304);
  w.join();
  assert.deepEqual(decodeMessage(w.finish()), pieceRequestMessage(5, 4194304));
});

Deno.test("a known field with an unexpected wire type is skipped", () => {
  const w = new BinaryWriter();
  w.tag(2, WireType.LengthDelimited).bytes(bytes("01"));
  w.tag(4, WireType.Varint).int32(3);
  assert.deepEqual(decodeMessage(w.finish()), message({ version: "", type: 0 }));
});

Deno.test("repeated sub-message fields merge and scalars take the last value", () => {
  const decoded = decodeMessage(bytes("10 01 22 02 10 05 10 03 22 02 20 07"));
  assert.equal(decoded.type, MessageType.ANNOUCE_PIECE);
  assert.deepEqual(
    decoded.pieceRequest,
    create(PieceRequestMessageSchema, { index: 5, offset: 0, length: 7 }),
  );
});

Deno.test("map entries without key or value decode as empty; the last duplicate key wins", () => {
  const w = new BinaryWriter();
  w.tag(3, WireType.LengthDelimited).fork();
  w.tag(7, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string("k").join();
  w.tag(7, WireType.LengthDelimited).fork().tag(2, WireType.LengthDelimited).bytes(bytes("09"))
    .join();
  w.tag(7, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string("k")
    .tag(2, WireType.LengthDelimited).bytes(bytes("01")).join();
  w.join();
  assert.deepEqual(
    decodeMessage(w.finish()).bitfield?.remoteBitfieldBytes,
    { k: bytes("01"), "": bytes("09") },
  );
});

Deno.test("unknown enum values are kept as numbers", () => {
  assert.equal(decodeMessage(bytes("10 2a")).type, 42);
});

Deno.test("decoded bytes fields do not alias the input", () => {
  const encoded = encodeMessage(handshake());
  const decoded = decodeMessage(encoded);
  encoded.fill(0);
  assert.deepEqual(decoded, handshake());
});

Deno.test("invalid UTF-8 in a string is an error", () => {
  // Error message (field 8) whose error text (field 2) is the lone byte 0xff.
  assert.throws(() => decodeMessage(bytes("42 03 12 01 ff")), MessageError);
  // Peer id of a BITFIELD with a truncated 2-byte sequence.
  assert.throws(() => decodeMessage(bytes("1a 03 22 01 c3")), MessageError);
  assert.equal(decodeMessage(bytes("42 04 12 02 c3 bc")).error?.error, "ü");
});

Deno.test("malformed protobuf is a MessageError", () => {
  for (
    const bad of [
      "10", // varint missing
      "10 80", // varint truncated
      "22 05 10 01", // sub-message longer than the input
      "22 02 10", // sub-message field truncated inside
      "00 01", // field number 0
      "0f 01", // wire type 7
      "0c", // end group without start
      "10 ff ff ff ff ff ff ff ff ff ff 01", // varint over 10 bytes
      "1d 01 02", // fixed32 truncated
    ]
  ) {
    assert.throws(() => decodeMessage(bytes(bad)), MessageError, bad);
  }
});

Deno.test("a mismatched wire type inside a sub-message or map entry drops only that field", () => {
  const w = new BinaryWriter();
  w.tag(2, WireType.Varint).int32(1);
  w.tag(4, WireType.LengthDelimited).fork();
  w.tag(2, WireType.LengthDelimited).bytes(bytes("05"));
  w.tag(4, WireType.Varint).int32(7);
  w.join();
  w.tag(3, WireType.LengthDelimited).fork();
  w.tag(7, WireType.LengthDelimited).fork().tag(1, WireType.Varint).int32(3)
    .tag(2, WireType.LengthDelimited).bytes(bytes("02")).join();
  w.tag(4, WireType.LengthDelimited).string("ab");
  w.join();
  const decoded = decodeMessage(w.finish());
  assert.deepEqual(
    decoded.pieceRequest,
    create(PieceRequestMessageSchema, { index: 0, offset: 0, length: 7 }),
  );
  assert.deepEqual(decoded.bitfield?.remoteBitfieldBytes, { "": bytes("02") });
  assert.equal(decoded.bitfield?.peerID, "ab");
});
