import assert from "node:assert/strict";
import { waitFor } from "../tests/harness/wait.ts";
import { Bitfield } from "./bitfield.ts";
import {
  acceptHandshake,
  type DialOptions,
  dialPeer,
  HandshakeError,
  type HandshakeLookup,
  type LocalHandshake,
  parseHandshake,
  type PeerConn,
  servePeers,
} from "./conn.ts";
import { encodeFrame, FrameReader, FrameWriter } from "./frame.ts";
import {
  bitfieldMessage,
  completeMessage,
  MessageType,
  piecePayloadMessage,
  pieceRequestMessage,
} from "./message.ts";
import { prng, randomBytes, randomPeerId } from "./_test_util.ts";

const INFO_HASH = "85b978c4377625b3963df406d0dd3a1da5a7d9c3";
const NAME = "289314c356bc2a19802c3e31505506db30ea81a0bcaea4ec3e079524c8ac3cf5";

function local(peerId: string, bits = new Bitfield(10)): LocalHandshake {
  return { peerId, infoHash: INFO_HASH, name: NAME, bitfield: bits };
}

/** Dials 127.0.0.1:`port` as a new peer expecting any peer id; `options` override either. */
function dial(port: number, options: Partial<DialOptions> = {}): Promise<PeerConn> {
  return dialPeer({
    hostname: "127.0.0.1",
    port,
    expectedPeerId: randomPeerId(),
    handshake: local(randomPeerId()),
    ...options,
  });
}

interface Server {
  port: number;
  conns: PeerConn[];
  errors: Error[];
  lookups: string[][];
  close(): Promise<void>;
}

function serve(lookup: HandshakeLookup, timeoutMs?: number): Server {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: PeerConn[] = [];
  const errors: Error[] = [];
  const lookups: string[][] = [];
  const server = servePeers(listener, {
    lookup: (ns, name, hash, remote) => {
      lookups.push([ns, name, hash]);
      return lookup(ns, name, hash, remote);
    },
    onConn: (c) => conns.push(c),
    onError: (e) => errors.push(e),
    timeoutMs,
  });
  return {
    port: listener.addr.port,
    conns,
    errors,
    lookups,
    async close() {
      await server.close();
      for (const c of conns) c.close();
      await Promise.all(conns.map((c) => c.closed));
    },
  };
}

Deno.test("dial and accept exchange handshakes, then frames and payloads both ways", async () => {
  const serverId = randomPeerId();
  const clientId = randomPeerId();
  const serverBits = Bitfield.allSet(10);
  const server = serve(() => ({
    ...local(serverId, serverBits),
    remoteBitfields: new Map([["cc".repeat(20), new Bitfield(10)]]),
  }));
  const clientBits = new Bitfield(10);
  clientBits.set(4);
  const client = await dial(server.port, {
    expectedPeerId: serverId.toUpperCase(),
    handshake: { ...local(clientId, clientBits), namespace: "library/redis" },
  });
  try {
    await waitFor("server.conns.length === 1", () => server.conns.length === 1);
    const accepted = server.conns[0];
    assert.deepEqual(server.lookups, [["library/redis", NAME, INFO_HASH]]);
    assert.equal(accepted.peerId, clientId);
    assert.equal(accepted.namespace, "library/redis");
    assert.ok(accepted.remoteBitfield.equals(clientBits));
    assert.ok(!accepted.initiated);
    assert.equal(client.peerId, serverId);
    assert.equal(client.namespace, "library/redis");
    assert.ok(client.remoteBitfield.equals(serverBits));
    assert.deepEqual([...client.remoteBitfields.keys()], ["cc".repeat(20)]);
    assert.ok(client.initiated);

    const payload = randomBytes(prng(3), 100_000);
    assert.ok(client.send({ message: pieceRequestMessage(1, payload.length) }));
    assert.ok(accepted.send(async () => {
      await new Promise((r) => setTimeout(r, 1));
      return { message: piecePayloadMessage(1, payload.length), payload };
    }));
    assert.ok(accepted.send({ message: completeMessage() }));
    const fromClient = accepted[Symbol.asyncIterator]();
    assert.deepEqual((await fromClient.next()).value, {
      message: pieceRequestMessage(1, payload.length),
    });
    const fromServer = client[Symbol.asyncIterator]();
    assert.deepEqual((await fromServer.next()).value, {
      message: piecePayloadMessage(1, payload.length),
      payload,
    });
    assert.equal((await fromServer.next()).value?.message.type, MessageType.COMPLETE);
    client.close();
    assert.equal((await fromClient.next()).done, true, "remote close ends iteration");
  } finally {
    client.close();
    await client.closed;
    await server.close();
  }
});

Deno.test("the acceptor replies with an empty namespace", async () => {
  const serverId = randomPeerId();
  const server = serve(() => local(serverId));
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  try {
    const hello = bitfieldMessage({
      infoHash: INFO_HASH,
      name: NAME,
      peerID: randomPeerId(),
      bitfieldBytes: new Bitfield(10).encode(),
      namespace: "ns",
    });
    await new FrameWriter(tcp).write(hello);
    const reply = await new FrameReader(tcp).read({ timeoutMs: 2000 });
    assert.ok(reply);
    assert.equal(reply.message.bitfield?.namespace, "");
    assert.equal(parseHandshake(reply.message).peerId, serverId);
  } finally {
    tcp.close();
    await server.close();
  }
});

Deno.test("the dialer rejects a reply from the wrong peer id", async () => {
  const server = serve(() => local(randomPeerId()));
  try {
    await assert.rejects(
      dial(server.port),
      (err: Error) => err instanceof HandshakeError && /answered as peer/.test(err.message),
    );
  } finally {
    await server.close();
  }
});

const REFUSING_LOOKUPS: { name: string; lookup: HandshakeLookup; error: RegExp }[] = [
  {
    name: "an unknown torrent is rejected by the acceptor",
    lookup: () => null,
    error: /not found/,
  },
  {
    name: "a lookup that throws rejects the connection",
    lookup: () => {
      throw new Error("at capacity");
    },
    error: /at capacity/,
  },
];
for (const { name, lookup, error } of REFUSING_LOOKUPS) {
  Deno.test(name, async () => {
    const server = serve(lookup);
    try {
      await assert.rejects(dial(server.port), HandshakeError);
      await waitFor("server.errors.length === 1", () => server.errors.length === 1);
      assert.match(server.errors[0].message, error);
      assert.equal(server.conns.length, 0);
    } finally {
      await server.close();
    }
  });
}

Deno.test("an info hash mismatch is rejected on both sides", async () => {
  const serverId = randomPeerId();
  const server = serve(() => ({ ...local(serverId), infoHash: "ab".repeat(20) }));
  try {
    await assert.rejects(
      dial(server.port, { expectedPeerId: serverId }),
      /info hash mismatch/,
    );
    await waitFor("server.errors.length === 1", () => server.errors.length === 1);
    assert.match(server.errors[0].message, /info hash mismatch/);
  } finally {
    await server.close();
  }
});

Deno.test("a bitfield of the wrong length is rejected", async () => {
  const serverId = randomPeerId();
  const server = serve(() => local(serverId, new Bitfield(11)));
  try {
    await assert.rejects(
      dial(server.port, { expectedPeerId: serverId }),
      /pieces/,
    );
  } finally {
    await server.close();
  }
});

Deno.test("invalid first frames are rejected before the lookup", async () => {
  const good = {
    infoHash: INFO_HASH,
    name: NAME,
    peerID: randomPeerId(),
    bitfieldBytes: new Bitfield(10).encode(),
  };
  const bad = [
    pieceRequestMessage(0, 1),
    bitfieldMessage({ ...good, peerID: "xyz" }),
    bitfieldMessage({ ...good, peerID: "ab".repeat(21) }),
    bitfieldMessage({ ...good, infoHash: "ab".repeat(19) }),
    bitfieldMessage({ ...good, name: "sha256:" + NAME }),
    bitfieldMessage({ ...good, bitfieldBytes: Uint8Array.of(1, 2, 3) }),
    bitfieldMessage({ ...good, remoteBitfieldBytes: { nothex: new Uint8Array(8) } }),
  ];
  const server = serve(() => local(randomPeerId()));
  try {
    for (const msg of bad) {
      const tcp = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      await tcp.write(encodeFrame(msg));
      // The acceptor closes without replying.
      assert.equal(await new FrameReader(tcp).read({ timeoutMs: 2000 }), null);
      tcp.close();
    }
    await waitFor("server.errors.length === bad.length", () => server.errors.length === bad.length);
    assert.ok(server.errors.every((e) => e instanceof HandshakeError));
    assert.equal(server.lookups.length, 0);
  } finally {
    await server.close();
  }
});

Deno.test("handshake deadlines close silent connections on both sides", async () => {
  const server = serve(() => local(randomPeerId()), 100);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    // A client that never speaks is dropped by the acceptor.
    const silent = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    assert.equal(await silent.read(new Uint8Array(1)), null);
    silent.close();
    await waitFor("server.errors.length === 1", () => server.errors.length === 1);
    assert.match(server.errors[0].message, /100 ms/);

    // A server that never answers fails the dial.
    const accepted = listener.accept();
    const start = Date.now();
    await assert.rejects(
      dial(listener.addr.port, { timeoutMs: 100 }),
      HandshakeError,
    );
    assert.ok(Date.now() - start < 2000);
    (await accepted).close();
  } finally {
    listener.close();
    await server.close();
  }
});

Deno.test("dialing a closed port fails with a HandshakeError", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  await assert.rejects(
    dial(port),
    /dial 127\.0\.0\.1/,
  );
});

Deno.test("the send queue is bounded and closed connections refuse sends", async () => {
  const serverId = randomPeerId();
  const server = serve(() => local(serverId));
  const client = await dial(server.port, { expectedPeerId: serverId, senderBufferSize: 2 });
  try {
    // The writer task cannot run between these synchronous calls.
    assert.ok(client.send({ message: completeMessage() }));
    assert.ok(client.send({ message: completeMessage() }));
    assert.ok(!client.send({ message: completeMessage() }));
    client.close();
    assert.ok(client.isClosed);
    assert.ok(!client.send({ message: completeMessage() }));
  } finally {
    client.close();
    await client.closed;
    await server.close();
  }
});

Deno.test("acceptHandshake works on a single accepted connection", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serverId = randomPeerId();
  const clientId = randomPeerId();
  try {
    const [accepted, dialed] = await Promise.all([
      listener.accept().then((c) => acceptHandshake(c, () => local(serverId))),
      dial(listener.addr.port, { expectedPeerId: serverId, handshake: local(clientId) }),
    ]);
    assert.equal(accepted.peerId, clientId);
    assert.equal(dialed.peerId, serverId);
    accepted.close();
    dialed.close();
    await Promise.all([accepted.closed, dialed.closed]);
  } finally {
    listener.close();
  }
});
