// Unit tests of the http backend against an in-process file server.

import assert from "node:assert/strict";
import { ReadOnlyBackendError } from "./backend.ts";
import { fillUrlTemplate, HttpBackend, urlTemplateProblem } from "./http.ts";

function startServer(options: { head?: boolean } = {}) {
  const seen: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const { pathname } = new URL(req.url);
    seen.push(`${req.method} ${pathname}`);
    if (req.method === "HEAD" && options.head === false) {
      return new Response(null, { status: 405 });
    }
    if (pathname === "/blobs/abc/data") {
      return new Response(req.method === "HEAD" ? null : "hello", {
        headers: { "content-length": "5" },
      });
    }
    if (pathname === "/blobs/boom/data") return new Response("disk on fire", { status: 500 });
    return new Response("not here", { status: 404 });
  });
  return { base: `http://127.0.0.1:${server.addr.port}`, seen, close: () => server.shutdown() };
}

Deno.test("http: URL templates are Go's %s, checked at config time", () => {
  assert.equal(fillUrlTemplate("http://h/%s?x=100%%", "ab"), "http://h/ab?x=100%");
  assert.equal(urlTemplateProblem("http://h/blobs/%s"), undefined);
  assert.match(urlTemplateProblem("http://h/blobs/") ?? "", /exactly one %s/);
  assert.match(urlTemplateProblem("http://h/%s/%s") ?? "", /exactly one %s/);
  assert.match(urlTemplateProblem("http://h/%d") ?? "", /exactly one %s/);
  assert.match(urlTemplateProblem("ftp://h/%s") ?? "", /http or https/);
  assert.throws(() => new HttpBackend({ downloadUrl: "nope" }), /download_url/);
});

Deno.test("http: stat by HEAD, download by GET, 404 is absent, other errors carry the body", async () => {
  const srv = startServer();
  try {
    const backend = new HttpBackend({ downloadUrl: `${srv.base}/blobs/%s/data` });
    assert.equal(backend.type, "http");
    assert.equal(backend.bucket, new URL(srv.base).host);
    assert.deepEqual(await backend.stat("ns", "abc"), { size: 5 });
    assert.equal(await new Response(await backend.download("ns", "abc")).text(), "hello");
    assert.equal(await backend.stat("ns", "missing"), null);
    assert.equal(await backend.download("ns", "missing"), null);
    await assert.rejects(() => backend.download("ns", "boom"), /status 500: disk on fire/);
    await assert.rejects(() => backend.stat("ns", "a?b"), /invalid name/);
    await assert.rejects(
      () => backend.upload("ns", "abc", new Uint8Array(1)),
      ReadOnlyBackendError,
    );
    await assert.rejects(() => backend.list(""), /cannot list/);
    assert.deepEqual(srv.seen.slice(0, 2), ["HEAD /blobs/abc/data", "GET /blobs/abc/data"]);
  } finally {
    await srv.close();
  }
});

Deno.test("http: a server without HEAD stats as present, size 0 (upstream's stat)", async () => {
  const srv = startServer({ head: false });
  try {
    const backend = new HttpBackend({ downloadUrl: `${srv.base}/blobs/%s/data` });
    assert.deepEqual(await backend.stat("ns", "abc"), { size: 0 });
    assert.equal(await new Response(await backend.download("ns", "abc")).text(), "hello");
  } finally {
    await srv.close();
  }
});

Deno.test("http: the answer timeout names the request", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  (async () => {
    for await (const conn of listener) conns.push(conn); // accepts, never answers
  })();
  try {
    const backend = new HttpBackend({
      downloadUrl: `http://127.0.0.1:${listener.addr.port}/%s`,
      downloadTimeoutMs: 100,
    });
    await assert.rejects(
      () => backend.download("ns", "abc"),
      /GET .*\/abc: no progress for 100 ms \(idle timeout\)/,
    );
  } finally {
    listener.close();
    for (const c of conns) c.close();
  }
});

Deno.test("http: download_backoff retries a 5xx; without it one attempt", async () => {
  let calls = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    calls++;
    // 503 for the first two requests: the one-attempt backend's and the retrying one's first.
    return calls <= 2
      ? new Response("busy", { status: 503 })
      : new Response("hello", { headers: { "content-length": "5" } });
  });
  try {
    const url = `http://127.0.0.1:${server.addr.port}/%s`;
    const once = new HttpBackend({ downloadUrl: url });
    await assert.rejects(() => once.download("ns", "abc"), /status 503: busy/);
    assert.equal(calls, 1);
    const retrying = new HttpBackend({
      downloadUrl: url,
      downloadBackoff: {
        enabled: true,
        initialMs: 1,
        jitter: 0.05,
        multiplier: 2,
        maxMs: 5,
        maxRetries: 2,
      },
    });
    assert.equal(await new Response(await retrying.download("ns", "abc")).text(), "hello");
    assert.equal(calls, 3);
    assert.equal(retrying.stats.retries, 1);
  } finally {
    await server.shutdown();
  }
});
