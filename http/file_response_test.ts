import assert from "node:assert/strict";
import { FileBody } from "../storage/file_body.ts";
import {
  fileBodyOf,
  fileResponse,
  type FileSink,
  SEND_DEPTH,
  SendBufferPool,
  sendFileBody,
} from "./file_response.ts";
import { serveHttp } from "./serve.ts";
import { waitFor } from "../tests/harness/wait.ts";

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

async function withFile(
  bytes: Uint8Array,
  fn: (open: (offset?: number, length?: number) => Promise<FileBody>) => Promise<void>,
): Promise<void> {
  const path = await Deno.makeTempFile({ prefix: "file-response-" });
  try {
    await Deno.writeFile(path, bytes);
    await fn(async (offset = 0, length = bytes.length - offset) => {
      const file = await Deno.open(path, { read: true });
      await file.seek(offset, Deno.SeekMode.Start);
      return new FileBody(file, length);
    });
  } finally {
    await Deno.remove(path);
  }
}

/** A GET of `url` answers exactly `bytes`, with their length declared. */
async function assertWholeBody(url: string, bytes: Uint8Array): Promise<void> {
  const whole = await fetch(url);
  assert.equal(whole.headers.get("content-length"), `${bytes.length}`);
  assert.deepEqual(new Uint8Array(await whole.arrayBuffer()), bytes);
}

/** A sink that holds each chunk until a later timer, as a socket holds what it has not sent. */
function holdingSink() {
  const received: Uint8Array[] = [];
  const overwritten: number[] = [];
  let outstanding = 0;
  let most = 0;
  let ended = false;
  const sink = {
    destroyed: false,
    write(chunk: Uint8Array, cb: (error?: Error | null) => void) {
      const copy = chunk.slice();
      outstanding++;
      most = Math.max(most, outstanding);
      setTimeout(() => {
        // The chunk must be what it was when written: its buffer is not reused before this.
        if (!chunk.every((b, i) => b === copy[i])) overwritten.push(received.length);
        received.push(copy);
        outstanding--;
        cb();
      }, 3);
      return false;
    },
    end() {
      ended = true;
    },
    once() {},
    off() {},
    destroy() {
      sink.destroyed = true;
    },
  };
  return {
    sink: sink as unknown as FileSink,
    received,
    overwritten,
    most: () => most,
    ended: () => ended,
  };
}

Deno.test("file response: a buffer is reused only after the write holding it completed", async () => {
  const bytes = randomBytes(7 * 1024 * 1024 + 13);
  await withFile(bytes, async (open) => {
    const body = await open();
    const done: [unknown, number][] = [];
    body.onDone((error, n) => done.push([error, n]));
    const pool = new SendBufferPool(1024 * 1024);
    const held = holdingSink();
    await sendFileBody(held.sink, body, pool);
    assert.deepEqual(held.overwritten, [], "chunks overwritten while their write was pending");
    const total = held.received.reduce((n, c) => n + c.length, 0);
    assert.equal(total, bytes.length);
    let at = 0;
    for (const chunk of held.received) {
      assert.ok(chunk.every((b, i) => b === bytes[at + i]), `chunk at ${at} differs`);
      at += chunk.length;
    }
    assert.ok(held.ended());
    assert.ok(held.most() <= SEND_DEPTH, `${held.most()} writes outstanding`);
    // Reused, not one buffer per chunk (8 chunks went out).
    assert.ok(pool.allocated <= SEND_DEPTH, `${pool.allocated} buffers allocated`);
    assert.deepEqual(done, [[undefined, bytes.length]]);
    assert.ok(body.done);
  });
});

Deno.test("file response: whole and ranged bodies over the listener are exact, and a slow reader gets every byte", async () => {
  const bytes = randomBytes(12 * 1024 * 1024 + 7);
  await withFile(bytes, async (open) => {
    const ends: [unknown, number][] = [];
    const server = await serveHttp({
      hostname: "127.0.0.1",
      port: 0,
      handler: async (req) => {
        const range = req.headers.get("range");
        if (range) {
          const [start, end] = range.replace("bytes=", "").split("-").map(Number);
          const body = await open(start, end - start + 1);
          body.onDone((error, n) => ends.push([error, n]));
          return fileResponse(body, {
            status: 206,
            headers: { "content-range": `bytes ${start}-${end}/${bytes.length}` },
          });
        }
        const body = await open();
        body.onDone((error, n) => ends.push([error, n]));
        const response = fileResponse(body, { headers: { "content-length": `${bytes.length}` } });
        assert.equal(fileBodyOf(response), body);
        return response;
      },
    });
    try {
      const url = `http://127.0.0.1:${server.addr.port}/`;
      await assertWholeBody(url, bytes);

      const ranged = await fetch(url, { headers: { range: "bytes=1048570-5000000" } });
      assert.equal(ranged.status, 206);
      assert.equal(ranged.headers.get("content-length"), `${5000000 - 1048570 + 1}`);
      assert.deepEqual(
        new Uint8Array(await ranged.arrayBuffer()),
        bytes.subarray(1048570, 5000001),
      );

      // A reader slower than the file: the socket holds written chunks for a long time.
      const slow = await fetch(url);
      const reader = slow.body!.getReader();
      const got = new Uint8Array(bytes.length);
      let at = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        got.set(value, at);
        at += value.length;
        await new Promise((r) => setTimeout(r, 1));
      }
      assert.equal(at, bytes.length);
      assert.ok(got.every((b, i) => b === bytes[i]), "the slow reader's bytes differ");
      assert.deepEqual(ends, [
        [undefined, bytes.length],
        [undefined, 5000000 - 1048570 + 1],
        [undefined, bytes.length],
      ]);
    } finally {
      await server.shutdown();
    }
  });
});

Deno.test("file response: for the role listener it carries no stream; a GET gets every byte, a HEAD closes the file", async () => {
  const bytes = randomBytes(3 * 1024 * 1024 + 5);
  await withFile(bytes, async (open) => {
    const bodies: FileBody[] = [];
    const ends: [unknown, number][] = [];
    const server = await serveHttp({
      hostname: "127.0.0.1",
      port: 0,
      handler: async (_req, info) => {
        const body = await open();
        bodies.push(body);
        body.onDone((error, n) => ends.push([error, n]));
        const response = fileResponse(
          body,
          { headers: { "content-length": `${bytes.length}` } },
          { responseEnds: info.responseEnds },
        );
        assert.equal(response.body, null, "no web stream is built for the listener");
        assert.equal(fileBodyOf(response), body);
        return response;
      },
    });
    try {
      const url = `http://127.0.0.1:${server.addr.port}/`;
      await assertWholeBody(url, bytes);
      const head = await fetch(url, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("content-length"), `${bytes.length}`);
      await head.body?.cancel();
      await waitFor("the HEAD's file to be closed", () => bodies[1]?.done || undefined);
      assert.deepEqual(ends[0], [undefined, bytes.length]);
      assert.equal(ends[1][1], 0, "a HEAD sends no byte of the file");
    } finally {
      await server.shutdown();
    }
  });
  // In-process, without the listener, the body is the file's stream.
  await withFile(bytes.subarray(0, 1000), async (open) => {
    const response = fileResponse(await open(), { headers: { "content-length": "1000" } });
    assert.deepEqual(new Uint8Array(await response.arrayBuffer()), bytes.subarray(0, 1000));
  });
});

Deno.test("file response: a client that goes away mid-body ends the body with an error and closes the file", async () => {
  const bytes = new Uint8Array(96 * 1024 * 1024);
  await withFile(bytes, async (open) => {
    let body: FileBody | undefined;
    const ended = Promise.withResolvers<[unknown, number]>();
    const server = await serveHttp({
      hostname: "127.0.0.1",
      port: 0,
      handler: async () => {
        body = await open();
        body.onDone((error, n) => ended.resolve([error, n]));
        return fileResponse(body, { headers: { "content-length": `${bytes.length}` } });
      },
    });
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
      await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nhost: x\r\n\r\n"));
      const buf = new Uint8Array(65536);
      assert.ok((await conn.read(buf)) !== null);
      conn.close();
      const [error, sent] = await ended.promise;
      assert.ok(error instanceof Error, `ended with ${error}`);
      assert.ok(sent < bytes.length, `${sent} of ${bytes.length} sent`);
      assert.ok(body!.done);
    } finally {
      await server.shutdown();
    }
  });
});

Deno.test("file body: its stream gives the range and ends the body, a cancel after the last byte is no failure", async () => {
  const bytes = randomBytes(2 * 1024 * 1024 + 100);
  await withFile(bytes, async (open) => {
    const body = await open(10, 2 * 1024 * 1024);
    const done: [unknown, number][] = [];
    body.onDone((error, n) => done.push([error, n]));
    assert.deepEqual(
      new Uint8Array(await new Response(body.stream).arrayBuffer()),
      bytes.subarray(10, 10 + 2 * 1024 * 1024),
    );
    assert.deepEqual(done, [[undefined, 2 * 1024 * 1024]]);

    const cut = await open(0, 100);
    const reader = cut.stream.getReader();
    assert.equal((await reader.read()).value!.length, 100);
    await reader.cancel();
    const cutDone: [unknown, number][] = [];
    cut.onDone((error, n) => cutDone.push([error, n]));
    assert.deepEqual(cutDone, [[undefined, 100]]);

    const short = await open(0, 4 * 1024 * 1024);
    const shortDone: unknown[] = [];
    short.onDone((error) => shortDone.push(error));
    await new Response(short.stream).arrayBuffer();
    assert.match(String(shortDone[0]), /body ended after 2097252 of 4194304 bytes/);
  });
});
