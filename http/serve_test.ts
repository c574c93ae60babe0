import assert from "node:assert/strict";
import { DEFAULT_LISTENER_LIMITS, getRequestBody, MAX_GET_BODY_BYTES, serveHttp } from "./serve.ts";

async function raw(port: number, request: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode(request));
  let text = "";
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  conn.close();
  return text;
}

Deno.test("http server: GET bodies are kept, other bodies stream, remote address is passed", async () => {
  const server = await serveHttp({
    hostname: "127.0.0.1",
    port: 0,
    handler: async (req, { remote }) => {
      const get = getRequestBody(req);
      const text = get ? new TextDecoder().decode(get) : await req.text();
      return new Response(`${req.method} ${new URL(req.url).pathname} ${text} ${remote.hostname}`);
    },
  });
  try {
    const port = server.addr.port;
    const post = await fetch(`http://127.0.0.1:${port}/p`, { method: "POST", body: "abc" });
    assert.equal(await post.text(), "POST /p abc 127.0.0.1");
    const get = await raw(
      port,
      "GET /announce HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    assert.match(get, /^HTTP\/1\.1 200 /);
    assert.match(get, /content-length: 29\r\n/i);
    assert.ok(get.endsWith("\r\n\r\nGET /announce hello 127.0.0.1"), get);
    const tooBig = "x".repeat(MAX_GET_BODY_BYTES + 1);
    const big = await raw(
      port,
      `GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: ${tooBig.length}\r\nConnection: close\r\n\r\n${tooBig}`,
    );
    assert.match(big, /^HTTP\/1\.1 413 /);
  } finally {
    await server.shutdown();
  }
});

Deno.test("http server: on one keep-alive connection, GETs without a body, with a chunked body and with Content-Length: 0 each get theirs; repeated headers are joined", async () => {
  const server = await serveHttp({
    hostname: "127.0.0.1",
    port: 0,
    handler: (req) => {
      const body = getRequestBody(req);
      const text = body === undefined ? "-" : new TextDecoder().decode(body);
      return Promise.resolve(
        new Response(`${new URL(req.url).pathname} ${text} ${req.headers.get("x-a")}\n`),
      );
    },
  });
  try {
    const answer = await raw(
      server.addr.port,
      "GET /1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nX-A: 2\r\n\r\n" +
        "GET /2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
        "GET /3 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" +
        "GET /4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    const bodies = answer.split("\r\n\r\n").slice(1).map((part) => part.split("HTTP/1.1")[0]);
    assert.deepEqual(bodies, ["/1 - 1, 2\n", "/2 abc null\n", "/3 - null\n", "/4 - null\n"]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("http server: multi-chunk bodies stream; a client that leaves cancels the body", async () => {
  let cancelled!: () => void;
  const wasCancelled = new Promise<void>((r) => cancelled = r);
  const server = await serveHttp({
    hostname: "127.0.0.1",
    port: 0,
    handler: (req) => {
      if (new URL(req.url).pathname === "/chunks") {
        return Promise.resolve(
          new Response(ReadableStream.from(["a", "b", "c"]).pipeThrough(new TextEncoderStream())),
        );
      }
      let i = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(c) {
          await new Promise((r) => setTimeout(r, 5));
          c.enqueue(new Uint8Array(64 * 1024).fill(i++ % 256));
        },
        cancel() {
          cancelled();
        },
      });
      return Promise.resolve(new Response(body));
    },
  });
  try {
    const res = await fetch(`http://127.0.0.1:${server.addr.port}/chunks`);
    assert.equal(res.headers.get("transfer-encoding"), "chunked");
    assert.equal(await res.text(), "abc");
    const endless = await fetch(`http://127.0.0.1:${server.addr.port}/endless`);
    const reader = endless.body!.getReader();
    await reader.read();
    await reader.cancel();
    await wasCancelled;
  } finally {
    await server.shutdown();
  }
});

Deno.test("http server: a request's signal aborts when its client leaves before the whole answer, not after it", async () => {
  const signals = new Map<string, AbortSignal>();
  const server = await serveHttp({
    hostname: "127.0.0.1",
    port: 0,
    handler: async (req) => {
      const path = new URL(req.url).pathname;
      signals.set(path, req.signal);
      if (req.method === "POST") await req.arrayBuffer();
      if (path !== "/endless") return new Response("ok");
      return new Response(
        new ReadableStream<Uint8Array>({
          async pull(c) {
            await new Promise((r) => setTimeout(r, 5));
            c.enqueue(new Uint8Array(64 * 1024));
          },
        }),
      );
    },
  });
  try {
    const port = server.addr.port;
    const answered = await raw(
      port,
      "POST /done HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    );
    assert.match(answered, /^HTTP\/1\.1 200 /);
    // A later round trip: by its end the first connection's close has been handled.
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/probe`)).text(), "ok");
    assert.equal(signals.get("/done")?.aborted, false);

    const res = await fetch(`http://127.0.0.1:${port}/endless`, { method: "POST", body: "abc" });
    const reader = res.body!.getReader();
    await reader.read();
    await reader.cancel();
    const leftEarly = signals.get("/endless")!;
    const guard = AbortSignal.timeout(5000);
    await new Promise<void>((resolve, reject) => {
      if (leftEarly.aborted) return resolve();
      leftEarly.addEventListener("abort", () => resolve(), { once: true });
      guard.addEventListener("abort", () => reject(new Error("signal not aborted in 5 s")));
    });
    assert.equal(leftEarly.aborted, true);
  } finally {
    await server.shutdown();
  }
});

Deno.test("http server: shutdown waits for a request in flight", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  let entered!: () => void;
  const inHandler = new Promise<void>((r) => entered = r);
  const server = await serveHttp({
    hostname: "127.0.0.1",
    port: 0,
    handler: async () => {
      entered();
      await gate;
      return new Response("late");
    },
  });
  const pending = fetch(`http://127.0.0.1:${server.addr.port}/`);
  await inHandler;
  const stopping = server.shutdown();
  setTimeout(release, 20);
  const res = await pending;
  assert.equal(await res.text(), "late");
  await stopping;
  await assert.rejects(fetch(`http://127.0.0.1:${server.addr.port}/`));
});

Deno.test("http server: reports each response's end with the bytes written, and a client that leaves as an error", async () => {
  const ended = new Map<string, PromiseWithResolvers<[unknown, number]>>();
  for (const path of ["/small", "/chunks", "/endless"]) ended.set(path, Promise.withResolvers());
  const server = await serveHttp({
    hostname: "127.0.0.1",
    port: 0,
    handler: (req, { responseEnds: ends }) => {
      const path = new URL(req.url).pathname;
      let response: Response;
      if (path === "/small") response = new Response("hello");
      else if (path === "/chunks") {
        response = new Response(
          ReadableStream.from(["ab", "cd", "e"]).pipeThrough(new TextEncoderStream()),
        );
      } else {
        response = new Response(
          new ReadableStream<Uint8Array>({
            async pull(c) {
              await new Promise((r) => setTimeout(r, 5));
              c.enqueue(new Uint8Array(64 * 1024));
            },
          }),
        );
      }
      ends.watch(response, (error, bytes) => ended.get(path)!.resolve([error, bytes]));
      return Promise.resolve(response);
    },
  });
  try {
    const base = `http://127.0.0.1:${server.addr.port}`;
    assert.equal(await (await fetch(`${base}/small`)).text(), "hello");
    assert.deepEqual(await ended.get("/small")!.promise, [undefined, 5]);
    assert.equal(await (await fetch(`${base}/chunks`)).text(), "abcde");
    assert.deepEqual(await ended.get("/chunks")!.promise, [undefined, 5]);
    const endless = await fetch(`${base}/endless`);
    const reader = endless.body!.getReader();
    await reader.read();
    await reader.cancel();
    const [error, bytes] = await ended.get("/endless")!.promise;
    assert.match(String(error), /client closed the connection after \d+ bytes/);
    assert.ok(bytes >= 64 * 1024, `bytes ${bytes}`);
  } finally {
    await server.shutdown();
  }
});

Deno.test("http server: a keep-alive connection busy for longer than both timeouts stays open; idle, or stalled in any request's headers, it is closed", async () => {
  const closed: string[] = [];
  const server = await serveHttp({
    hostname: "127.0.0.1",
    port: 0,
    handler: () => Promise.resolve(new Response("ok")),
    limits: { ...DEFAULT_LISTENER_LIMITS, headerTimeoutMs: 300, idleTimeoutMs: 1000 },
    onLimit: (reason) => closed.push(reason),
  });
  const encoder = new TextEncoder();
  const readResponse = async (conn: Deno.Conn) => {
    const buf = new Uint8Array(4096);
    const n = await conn.read(buf);
    return n === null ? null : new TextDecoder().decode(buf.subarray(0, n));
  };
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    // A request every 100 ms for 1.2 s, on one connection: past both timeouts in total.
    const started = performance.now();
    while (performance.now() - started < 1200) {
      await conn.write(encoder.encode("GET /x HTTP/1.1\r\nHost: h\r\n\r\n"));
      assert.match((await readResponse(conn)) ?? "closed", /^HTTP\/1\.1 200 /);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(closed, []);
    // Then idle: closed after the idle timeout.
    const idleSince = performance.now();
    assert.equal(await readResponse(conn), null);
    const idleFor = performance.now() - idleSince;
    // The idle clock started at the last response, up to 100 ms before.
    assert.ok(idleFor >= 700 && idleFor < 3000, `closed after ${idleFor} ms idle`);
    conn.close();
    assert.deepEqual(closed, ["idle_timeout"]);

    // A connection whose first request's headers stall is closed after the header timeout.
    const slow = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    const stalledSince = performance.now();
    await slow.write(encoder.encode("GET /x HTTP/1.1\r\n"));
    assert.equal(await readResponse(slow), null);
    const stalledFor = performance.now() - stalledSince;
    assert.ok(stalledFor >= 250 && stalledFor < 2000, `closed after ${stalledFor} ms`);
    slow.close();
    assert.deepEqual(closed, ["idle_timeout", "header_timeout"]);

    // After a keep-alive wait, a request whose headers stall: closed after the header timeout from
    // its first byte, not left to the idle timeout.
    const stalls = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    await stalls.write(encoder.encode("GET /x HTTP/1.1\r\nHost: h\r\n\r\n"));
    assert.match((await readResponse(stalls)) ?? "closed", /^HTTP\/1\.1 200 /);
    await new Promise((r) => setTimeout(r, 250));
    await stalls.write(encoder.encode("GET /x HTTP/1.1\r\n"));
    const stallSince = performance.now();
    assert.equal(await readResponse(stalls), null);
    const stallFor = performance.now() - stallSince;
    assert.ok(stallFor >= 250 && stallFor < 2000, `closed after ${stallFor} ms`);
    stalls.close();
    assert.deepEqual(closed, ["idle_timeout", "header_timeout", "header_timeout"]);
  } finally {
    await server.shutdown();
  }
});
