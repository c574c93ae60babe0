import assert from "node:assert/strict";
import { HttpStatusError } from "../../http/status_error.ts";
import { TestfsBackend } from "./testfs.ts";
import { serveTestfs } from "./testfs_server.ts";
import { externalTest } from "../../tests/harness/external.ts";

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
    assert.deepEqual(await backend.list(""), [HEX]);
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
    assert.deepEqual((await tags.list("library/ubuntu")).sort(), [
      "library/ubuntu:22.04",
      "library/ubuntu:latest",
    ]);
    assert.deepEqual(await tags.list("nobody/here"), []);
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
  const backend = new TestfsBackend({ addr: "127.0.0.1:9", fetch: hanging, timeoutMs: 10 });
  await assert.rejects(backend.stat("ns", HEX), /timed out after 10 ms/);
});

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
