import assert from "node:assert/strict";
import http from "node:http";
import https from "node:https";
import { createTestCa } from "../tests/harness/certs.ts";
import { externalTest } from "../tests/harness/external.ts";
import { nodeFetch } from "./node_fetch.ts";
import { serveHttp } from "./serve.ts";
import { loadKeyPair } from "./tls.ts";

/** What the server saw of one request. */
interface Seen {
  method: string;
  contentLength: string | null;
  chunked: boolean;
  bytes: number;
}

/** A listener recording each request and answering by path (`/204`, `/cookies`, `/slow`). */
async function recorder(tls?: { cert: string; key: string; ca: string[] }) {
  const seen: Seen[] = [];
  const held: ReadableStreamDefaultController<Uint8Array>[] = [];
  const server = await serveHttp({
    hostname: "127.0.0.1",
    port: 0,
    tls,
    handler: async (req) => {
      const body = new Uint8Array(await req.arrayBuffer());
      seen.push({
        method: req.method,
        contentLength: req.headers.get("content-length"),
        chunked: req.headers.get("transfer-encoding") === "chunked",
        bytes: body.length,
      });
      const path = new URL(req.url).pathname;
      if (path === "/204") return new Response(null, { status: 204 });
      if (path === "/cookies") {
        const headers = new Headers();
        headers.append("set-cookie", "a=1");
        headers.append("set-cookie", "b=2");
        return new Response("ok", { headers });
      }
      if (path === "/slow") {
        // Headers and two bytes now, the rest never: a read waits until the caller aborts.
        return new Response(
          new ReadableStream({
            start(c) {
              held.push(c);
              c.enqueue(new Uint8Array(1));
              c.enqueue(new Uint8Array(1));
            },
          }),
        );
      }
      return new Response(`${req.method} ${body.length}`);
    },
  });
  const base = `${tls ? "https" : "http"}://127.0.0.1:${server.addr.port}`;
  /** Ends the bodies `/slow` held open, so the server can shut down. */
  const release = () => held.forEach((c) => c.close());
  return { seen, server, base, release };
}

function streamOf(chunks: number, size: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent++ === chunks) return controller.close();
      controller.enqueue(new Uint8Array(size).fill(sent));
    },
  });
}

Deno.test("nodeFetch: a streamed body keeps the caller's Content-Length; bytes get theirs", async () => {
  const { seen, server, base } = await recorder();
  try {
    const streamed = await nodeFetch(`${base}/put`, {
      method: "PUT",
      body: streamOf(16, 4096),
      headers: { "content-length": String(16 * 4096) },
    });
    assert.equal(await streamed.text(), `PUT ${16 * 4096}`);
    const chunked = await nodeFetch(`${base}/put`, { method: "PUT", body: streamOf(3, 10) });
    assert.equal(await chunked.text(), "PUT 30");
    const bytes = await nodeFetch(new URL(`${base}/post`), {
      method: "POST",
      body: new Uint8Array(1234),
    });
    assert.equal(await bytes.text(), "POST 1234");
    const text = await nodeFetch(`${base}/post`, { method: "POST", body: "héllo" });
    assert.equal(await text.text(), "POST 6");
    const empty = await nodeFetch(`${base}/post`, { method: "POST" });
    assert.equal(await empty.text(), "POST 0");
    const params = await nodeFetch(`${base}/post`, {
      method: "POST",
      body: new URLSearchParams({ a: "b" }),
    });
    assert.equal(await params.text(), "POST 3");
    assert.deepEqual(seen.map((s) => [s.method, s.contentLength, s.chunked, s.bytes]), [
      ["PUT", String(16 * 4096), false, 16 * 4096],
      ["PUT", null, true, 30],
      ["POST", "1234", false, 1234],
      ["POST", "6", false, 6],
      ["POST", "0", false, 0],
      ["POST", "3", false, 3],
    ]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("nodeFetch: HEAD and 204 have no body; repeated headers are kept", async () => {
  const { server, base } = await recorder();
  try {
    const head = await nodeFetch(`${base}/x`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.body, null);
    const none = await nodeFetch(`${base}/204`);
    assert.equal(none.status, 204);
    assert.equal(none.body, null);
    const cookies = await nodeFetch(`${base}/cookies`);
    assert.deepEqual(cookies.headers.getSetCookie(), ["a=1", "b=2"]);
    await cookies.body?.cancel();
  } finally {
    await server.shutdown();
  }
});

Deno.test("nodeFetch: an abort fails the request, or a pending body read, with its reason", async () => {
  const { server, base, release } = await recorder();
  try {
    const before = new AbortController();
    before.abort(new Error("gave up early"));
    await assert.rejects(() => nodeFetch(`${base}/x`, { signal: before.signal }), /gave up early/);
    const during = new AbortController();
    const res = await nodeFetch(`${base}/slow`, { signal: during.signal });
    const reader = res.body!.getReader();
    for (let got = 0; got < 2;) got += (await reader.read()).value?.length ?? 0;
    const pending = reader.read();
    during.abort(new Error("gave up reading"));
    await assert.rejects(() => pending, /gave up reading/);
  } finally {
    release();
    await server.shutdown();
  }
});

Deno.test("nodeFetch: a refused connection rejects", async () => {
  const probe = await serveHttp({
    hostname: "127.0.0.1",
    port: 0,
    handler: () => Promise.resolve(new Response()),
  });
  const port = probe.addr.port;
  await probe.shutdown();
  await assert.rejects(() => nodeFetch(`http://127.0.0.1:${port}/x`), /ECONNREFUSED|refused/i);
});

externalTest("nodeFetch: options.agent carries the TLS settings (CA, name)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kraken-node-fetch-" });
  const ca = await createTestCa(`${dir}/ca`);
  const pair = loadKeyPair(await ca.issue("server"), "tls.server");
  const { server, base } = await recorder({ cert: pair.cert, key: pair.key, ca: [] });
  const trusting = new https.Agent({ ca: [await Deno.readTextFile(ca.cert)] });
  try {
    const res = await nodeFetch(`${base}/put`, {
      method: "PUT",
      body: streamOf(2, 5),
      headers: { "content-length": "10" },
    }, { agent: trusting });
    assert.equal(await res.text(), "PUT 10");
    // The default agent trusts only the system roots: the test CA's certificate is refused.
    await assert.rejects(() => nodeFetch(`${base}/x`), /certificate|self.signed|issuer/i);
    // An http.Agent for an http URL works as well.
    const plain = await recorder();
    try {
      const agent = new http.Agent({ keepAlive: false });
      const answer = await nodeFetch(`${plain.base}/x`, {}, { agent });
      assert.equal(await answer.text(), "GET 0");
      agent.destroy();
    } finally {
      await plain.server.shutdown();
    }
  } finally {
    trusting.destroy();
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
