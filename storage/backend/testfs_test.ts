import assert from "node:assert/strict";
import { HttpStatusError } from "../../http/status_error.ts";
import { startSlowRelay } from "../../tests/harness/slow_relay.ts";
import { BackendTimeoutError, TestfsBackend } from "./testfs.ts";
import { createTestfsHandler, serveTestfs } from "./testfs_server.ts";
import { serveHttp } from "../../http/serve.ts";
import { loadKeyPair } from "../../http/tls.ts";
import { externalTest } from "../../tests/harness/external.ts";
import { createTestCa } from "../../tests/harness/certs.ts";
import { ConfigError } from "../../common/schema.ts";
import { plainFetch } from "./backend.ts";
import { parseBackendsConfig } from "./config.ts";

const enc = new TextEncoder();
const HEX = "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d";

async function withServer(
  fn: (addr: string, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kraken-testfs-test-" });
  const server = serveTestfs({ root: dir });
  try {
    await fn(server.addr, dir);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("testfs: client and server round-trip blobs (identity under a root)", () =>
  withServer(async (addr, dir) => {
    const calls: string[] = [];
    const tracedFetch: typeof fetch = (input, init) => {
      calls.push(`${init?.method} ${input}`);
      return fetch(input, init);
    };
    const backend = new TestfsBackend({ addr, root: "blobs", fetch: tracedFetch });
    assert.equal(backend.type, "testfs");
    assert.equal(backend.bucket, `${addr}/blobs`);

    assert.equal(await backend.stat("ns", HEX), null);
    assert.equal(await backend.download("ns", HEX), null);
    await backend.upload("ns", HEX, enc.encode("hello world"));
    assert.deepEqual(await backend.stat("ns", HEX), { size: 11 });
    assert.equal(await new Response(await backend.download("ns", HEX)).text(), "hello world");
    assert.equal(await Deno.readTextFile(`${dir}/blobs/${HEX}`), "hello world");

    await backend.upload("ns", HEX, new Blob(["streamed ", "body"]).stream());
    assert.equal(await new Response(await backend.download("ns", HEX)).text(), "streamed body");
    assert.deepEqual((await backend.list("")).names, [HEX]);
    assert.ok(calls.includes(`HEAD http://${addr}/files/blobs/${HEX}`));
    assert.ok(calls.includes(`GET http://${addr}/list/blobs`));
  }));

Deno.test("testfs: docker_tag layout and listing per repository", () =>
  withServer(async (addr, dir) => {
    const tags = new TestfsBackend({ addr, root: "tags", namePath: "docker_tag" });
    const value = enc.encode(`sha256:${HEX}`);
    await tags.upload("library/ubuntu:latest", "library/ubuntu:latest", value);
    await tags.upload("library/ubuntu:22.04", "library/ubuntu:22.04", value);
    await tags.upload("other:1", "other:1", value);
    assert.equal(
      await Deno.readTextFile(
        `${dir}/tags/docker/registry/v2/repositories/library/ubuntu/_manifests/tags/latest/current/link`,
      ),
      `sha256:${HEX}`,
    );
    assert.deepEqual((await tags.list("library/ubuntu")).names, [
      "library/ubuntu:22.04",
      "library/ubuntu:latest",
    ]);
    assert.deepEqual((await tags.list("nobody/here")).names, []);
  }));

Deno.test("testfs server: ':' maps to '/', as upstream", () =>
  withServer(async (addr, dir) => {
    const ids = new TestfsBackend({ addr });
    await ids.upload("ns", "repo:tag", enc.encode("v"));
    assert.equal(await Deno.readTextFile(`${dir}/repo/tag`), "v");
    const res = await fetch(`http://${addr}/list/repo`);
    assert.deepEqual(await res.json(), ["repo/tag"]);
  }));

Deno.test("testfs server: health, unknown routes, wrong methods", () =>
  withServer(async (addr) => {
    let res = await fetch(`http://${addr}/health`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "OK");
    res = await fetch(`http://${addr}/nope`);
    await res.body?.cancel();
    assert.equal(res.status, 404);
    res = await fetch(`http://${addr}/files/x`, { method: "DELETE" });
    await res.body?.cancel();
    assert.equal(res.status, 405);
  }));

Deno.test("testfs server: hostile paths are refused with 400 and never leave root", () =>
  withServer(async (addr, dir) => {
    const hostile = [
      "/files/a/%2e%2e%2f..%2fescape",
      "/files/..%2Fescape",
      "/files/%2Fetc%2Fpasswd",
      "/files/a%00b",
      "/files/a//b",
      "/files/",
      "/files/a/%E0%A4%A",
      "/list/..%2F..",
    ];
    for (const path of hostile) {
      for (const method of path.startsWith("/list/") ? ["GET"] : ["HEAD", "GET", "POST"]) {
        const res = await fetch(`http://${addr}${path}`, {
          method,
          body: method === "POST" ? "x" : undefined,
        });
        await res.body?.cancel();
        assert.equal(res.status, 400, `${method} ${path}`);
      }
    }
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dir)), []);
  }));

Deno.test("testfs client: unexpected statuses become HttpStatusError", async () => {
  const failing: typeof fetch = () => Promise.resolve(new Response("boom", { status: 500 }));
  const backend = new TestfsBackend({ addr: "127.0.0.1:9", fetch: failing });
  await assert.rejects(
    backend.stat("ns", HEX),
    (e) => e instanceof HttpStatusError && e.status === 500,
  );
  await assert.rejects(backend.upload("ns", HEX, enc.encode("x")), /status 500: boom/);
  await assert.rejects(backend.download("ns", HEX), HttpStatusError);
  await assert.rejects(backend.list(""), HttpStatusError);
  assert.throws(() => new TestfsBackend({ addr: "http://x:1" }), /host:port/);
});

Deno.test("testfs client: a hung server times out", async () => {
  const hanging: typeof fetch = (_i, init) =>
    new Promise((_res, reject) =>
      init?.signal?.addEventListener("abort", () => reject(init.signal?.reason))
    );
  const backend = new TestfsBackend({ addr: "127.0.0.1:9", fetch: hanging, idleTimeoutMs: 10 });
  await assert.rejects(backend.stat("ns", HEX), BackendTimeoutError);
  await assert.rejects(backend.stat("ns", HEX), /no progress for 10 ms \(idle timeout\)/);
});

Deno.test("testfs client: an upload moving slowly but steadily for many idle timeouts succeeds", () =>
  withServer(async (addr, dir) => {
    // 32 MiB at about 4 MiB/s: 8 s, well over twice the idle timeout of 3 s (the origin's process
    // test goes further). The idle timeout must exceed the time the sockets' buffers (about 4 MiB
    // on loopback) take to drain, during which the client sees no progress.
    const relay = startSlowRelay(addr, { toServer: { bytesPerTick: 64 * 1024, tickMs: 15 } });
    const blob = crypto.getRandomValues(new Uint8Array(64 * 1024));
    const size = 32 * 1024 * 1024;
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= size) return controller.close();
        controller.enqueue(blob);
        sent += blob.length;
      },
    }, { highWaterMark: 0 });
    try {
      const backend = new TestfsBackend({ addr: relay.addr, root: "blobs", idleTimeoutMs: 3000 });
      const started = performance.now();
      await backend.upload("ns", HEX, body);
      const ms = performance.now() - started;
      assert.ok(ms > 2 * 3000, `the upload was not slow (${ms.toFixed(0)} ms)`);
      assert.equal((await Deno.stat(`${dir}/blobs/${HEX}`)).size, size);
      assert.equal(backend.idleTimeouts, 0);
      assert.equal(relay.connections, 1);
    } finally {
      await relay.close();
    }
  }));

Deno.test("testfs client: a stalled upload fails after the idle timeout and is counted", () =>
  withServer(async (addr, dir) => {
    const relay = startSlowRelay(addr, {
      toServer: { bytesPerTick: 64 * 1024, tickMs: 1, stallAfterBytes: 256 * 1024 },
    });
    try {
      const backend = new TestfsBackend({ addr: relay.addr, root: "blobs", idleTimeoutMs: 300 });
      const started = performance.now();
      await assert.rejects(
        backend.upload("ns", HEX, new Uint8Array(16 * 1024 * 1024)),
        (error: Error) =>
          error instanceof BackendTimeoutError &&
          /^POST http:\/\/.*: no progress for 300 ms \(idle timeout\)$/.test(error.message),
      );
      const ms = performance.now() - started;
      assert.ok(ms >= 300 && ms < 3000, `failed after ${ms.toFixed(0)} ms`);
      assert.equal(backend.idleTimeouts, 1);
      await assert.rejects(Deno.stat(`${dir}/blobs/${HEX}`), Deno.errors.NotFound);
    } finally {
      await relay.close();
    }
  }));

Deno.test("testfs client: a download times out only while waiting on the server", () =>
  withServer(async (addr) => {
    const data = new Uint8Array(1024 * 1024).map((_, i) => i % 251);
    await new TestfsBackend({ addr, root: "blobs" }).upload("ns", HEX, data);
    // The caller pausing longer than the idle timeout between reads is fine.
    const direct = new TestfsBackend({ addr, root: "blobs", idleTimeoutMs: 100 });
    const reader = (await direct.download("ns", HEX))!.getReader();
    let got = 0;
    let pauses = 0;
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      got += r.value.length;
      if (pauses++ < 2) await new Promise((res) => setTimeout(res, 150));
    }
    assert.equal(got, data.length);
    // A server that stops sending mid-body fails the read with the timeout.
    const relay = startSlowRelay(addr, {
      toClient: { bytesPerTick: 16 * 1024, tickMs: 1, stallAfterBytes: 64 * 1024 },
    });
    try {
      const stalled = new TestfsBackend({ addr: relay.addr, root: "blobs", idleTimeoutMs: 300 });
      const body = await stalled.download("ns", HEX);
      await assert.rejects(new Response(body).arrayBuffer(), BackendTimeoutError);
    } finally {
      await relay.close();
    }
  }));

externalTest("testfs server: runs as its own process", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kraken-testfs-proc-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-write",
      new URL("./testfs_server.ts", import.meta.url).pathname,
      "--root",
      dir,
      "--port",
      "0",
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
    reader.releaseLock();
    const addr = out.match(/listening on (\S+)/)?.[1];
    assert.ok(addr, out);
    const backend = new TestfsBackend({ addr, root: "blobs" });
    await backend.upload("ns", HEX, enc.encode("from another process"));
    assert.deepEqual(await backend.stat("ns", HEX), { size: 20 });
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await child.stdout.cancel().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("testfs: every request names its route template and expects 404", () =>
  withServer(async (addr) => {
    const seen: string[] = [];
    const backend = new TestfsBackend({
      addr,
      root: "blobs",
      fetch: (url, init) => {
        seen.push(`${init.method} ${init.route} [${init.expectedStatus}]`);
        return fetch(url, init);
      },
    });
    await backend.upload("ns", "abc", new TextEncoder().encode("x"));
    await backend.stat("ns", "abc");
    await backend.download("ns", "abc").then((body) => body?.cancel());
    await backend.list("");
    assert.deepEqual(seen, [
      "POST /files/{path+} [404]",
      "HEAD /files/{path+} [404]",
      "GET /files/{path+} [404]",
      "GET /list/{path+} [404]",
    ]);
  }));

externalTest(
  "testfs over TLS: the backend verifies the server with tls.cas and sends https",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "kraken-testfs-tls-" });
    const ca = await createTestCa(`${dir}/ca`);
    const other = await createTestCa(`${dir}/other`, "other-ca");
    const cert = await ca.issue("testfs");
    const server = serveTestfs({
      root: `${dir}/root`,
      tls: { cert: await Deno.readTextFile(cert.cert), key: await Deno.readTextFile(cert.key) },
    });
    try {
      const urls: string[] = [];
      const backend = new TestfsBackend({
        addr: server.addr,
        root: "blobs",
        tls: { cas: [ca.cert] },
        fetch: (url, init) => {
          urls.push(url);
          return plainFetch(url, init);
        },
      });
      await backend.upload("ns", HEX, enc.encode("over tls"));
      assert.deepEqual(await backend.stat("ns", HEX), { size: 8 });
      assert.equal(await new Response(await backend.download("ns", HEX)).text(), "over tls");
      // A streamed body of many chunks.
      await backend.upload("ns", HEX, new Blob([new Uint8Array(300_000).fill(1), "end"]).stream());
      assert.equal((await backend.stat("ns", HEX))?.size, 300_003);
      assert.deepEqual((await backend.list("")).names, [HEX]);
      assert.ok(
        urls.length > 0 && urls.every((u) => u.startsWith(`https://${server.addr}/`)),
        urls.join(),
      );

      // The server's certificate names 127.0.0.1; a CA that did not sign it, or another name, is
      // refused at the handshake: nothing is sent.
      const foreign = new TestfsBackend({ addr: server.addr, tls: { cas: [other.cert] } });
      await assert.rejects(() => foreign.stat("ns", HEX), /certificate|issuer/i);
      const misnamed = new TestfsBackend({
        addr: server.addr,
        tls: { cas: [ca.cert], name: "elsewhere.example" },
      });
      await assert.rejects(() => misnamed.stat("ns", HEX), /elsewhere\.example|altname/i);
      // A plaintext client gets no answer from the TLS port.
      const plain = new TestfsBackend({ addr: server.addr, idleTimeoutMs: 2000 });
      await assert.rejects(() => plain.stat("ns", HEX));
    } finally {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

externalTest("testfs backend: a bad tls file is a start-up error naming its key", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kraken-testfs-tls-" });
  try {
    await Deno.writeTextFile(`${dir}/not-a-ca.pem`, "hello\n");
    const entry = (cas: string[]) => [{
      namespace: ".*",
      backend: { testfs: { addr: "127.0.0.1:1", tls: { cas: cas.map((path) => ({ path })) } } },
    }];
    assert.throws(
      () => parseBackendsConfig(entry([`${dir}/missing.pem`])),
      (e: unknown) =>
        e instanceof ConfigError &&
        /^backends\[0\]\.backend\.testfs: tls\.cas\[0\]\.path: cannot read .*missing\.pem/.test(
          e.message,
        ),
    );
    assert.throws(
      () => parseBackendsConfig(entry([`${dir}/not-a-ca.pem`])),
      /tls\.cas\[0\]\.path: .*not-a-ca\.pem holds no PEM certificate/,
    );
    // client.disabled: plain http whatever else is set.
    const [plain] = parseBackendsConfig([{
      namespace: ".*",
      backend: {
        testfs: {
          addr: "127.0.0.1:1",
          tls: { cas: [{ path: `${dir}/missing.pem` }], client: { disabled: true } },
        },
      },
    }]);
    assert.equal(plain.backend.type, "testfs");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

externalTest(
  "testfs backend: tls.client's certificate is presented (a listener that verifies it)",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "kraken-testfs-mtls-" });
    const ca = await createTestCa(`${dir}/ca`);
    const pair = loadKeyPair(await ca.issue("testfs"), "tls.server");
    const identity = await ca.issue("origin", { client: true, passphrase: "pw" });
    // The roles' listener with its client-certificate rule, serving testfs's routes.
    const handler = createTestfsHandler(`${dir}/root`);
    const server = await serveHttp({
      hostname: "127.0.0.1",
      port: 0,
      tls: {
        cert: pair.cert,
        key: pair.key,
        ca: [await Deno.readTextFile(ca.cert)],
        verifyLoopback: true,
      },
      handler: (req) => handler(req),
    });
    const addr = `127.0.0.1:${server.addr.port}`;
    try {
      const withCert = new TestfsBackend({ addr, tls: { cas: [ca.cert], identity } });
      await withCert.upload("ns", HEX, enc.encode("mutual"));
      assert.deepEqual(await withCert.stat("ns", HEX), { size: 6 });
      const without = new TestfsBackend({ addr, tls: { cas: [ca.cert] } });
      await assert.rejects(
        () => without.upload("ns", HEX, enc.encode("anonymous")),
        (e: unknown) => e instanceof HttpStatusError && e.status === 403,
      );
      assert.equal(await new Response(await without.download("ns", HEX)).text(), "mutual");
    } finally {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
