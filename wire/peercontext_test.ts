import assert from "node:assert/strict";
import { encodePeerContext, parsePeerContext } from "./peercontext.ts";

Deno.test("peer context JSON is read as upstream writes it", () => {
  const ids = Array.from({ length: 20 }, (_, i) => i);
  assert.deepEqual(
    parsePeerContext({
      ip: "10.1.1.1",
      port: 15001,
      peer_id: ids,
      zone: "z",
      cluster: "c",
      origin: true,
    }),
    {
      ip: "10.1.1.1",
      port: 15001,
      peerId: "000102030405060708090a0b0c0d0e0f10111213",
      zone: "z",
      cluster: "c",
      origin: true,
    },
  );
  // Go matches keys case-insensitively; zone/cluster/origin may be absent.
  assert.equal(parsePeerContext({ IP: "h", Port: 1, Peer_ID: ids }).ip, "h");
  assert.throws(() => parsePeerContext({ ip: "h", port: 1, peer_id: "00".repeat(20) }), /peer_id/);
  assert.throws(() => parsePeerContext({ ip: "h", port: 0, peer_id: ids }), /port/);
  assert.throws(() => parsePeerContext([]), /object/);
});

Deno.test("peer context JSON is written as upstream writes it and reads back", () => {
  const pc = {
    ip: "10.0.0.7",
    port: 15001,
    peerId: "ab".repeat(20),
    zone: "z",
    cluster: "",
    origin: true,
  };
  const text = encodePeerContext(pc);
  assert.equal(
    text,
    `{"ip":"10.0.0.7","port":15001,"peer_id":[${Array(20).fill(171).join(",")}],` +
      `"zone":"z","cluster":"","origin":true}\n`,
  );
  assert.deepEqual(parsePeerContext(JSON.parse(text)), pc);
});
