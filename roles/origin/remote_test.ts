import assert from "node:assert/strict";
import { bytesSource, OriginClient } from "../../cluster/blob_client.ts";
import { digestOfBytes } from "../../storage/digest.ts";
import { exists, withTempDir } from "../../tests/harness/fs.ts";
import { freePorts } from "../../tests/harness/procs.ts";
import { waitFor } from "../../tests/harness/wait.ts";
import { startTestOrigin, type TestOrigin, urlOf } from "./_test_util.ts";

const enc = new TextEncoder();

/** Two one-origin clusters, each with its own `file` backend under `dir`. */
async function withClusters(fn: (a: TestOrigin, b: TestOrigin, dir: string) => Promise<void>) {
  await withTempDir(async (dir) => {
    const start = (name: string) =>
      startTestOrigin({
        storage: { root: `${name}/store` },
        backends: [{ namespace: ".*", backend: { file: { root: `${name}/backend` } } }],
        writeback: { poll_interval: "50ms", retry_interval: "0ms" },
      }, { baseDir: dir });
    const a = await start("a");
    const b = await start("b");
    try {
      await fn(a, b, dir);
    } finally {
      await a.stop();
      await b.stop();
    }
  }, { prefix: "kraken-origin-remote-test-" });
}

const remoteUrl = (from: TestOrigin, ns: string, digest: string, remote: string) =>
  `${urlOf(from)}/namespace/${encodeURIComponent(ns)}/blobs/${digest}/remote/${remote}`;

Deno.test("origin: replicate-to-remote uploads a cached blob to the other cluster, which writes it back", () =>
  withClusters(async (a, b, dir) => {
    const data = enc.encode("remote layer ".repeat(50));
    const digest = await digestOfBytes(data);
    const ns = "library/app:v1";
    await new OriginClient(a.addr).uploadBlob(ns, digest, bytesSource(data));

    const res = await fetch(remoteUrl(a, ns, `${digest}`, b.addr), { method: "POST" });
    assert.equal(res.status, 200, await res.text());
    assert.deepEqual(await new OriginClient(b.addr).stat(ns, digest, { local: true }), {
      size: data.length,
    });
    // The remote cluster took it through the public upload: its own write-back runs.
    await waitFor("the remote's write-back", () => exists(`${dir}/b/backend/${digest.hex}`));

    // Sending it again is fine: the remote answers 409 "have it", which is success.
    const again = await fetch(remoteUrl(a, ns, `${digest}`, b.addr), { method: "POST" });
    assert.equal(again.status, 200, await again.text());
  }));

Deno.test("origin: replicate-to-remote fetches an uncached blob from the backend first (202, then 200)", () =>
  withClusters(async (a, b, dir) => {
    const data = enc.encode("only in the backend");
    const digest = await digestOfBytes(data);
    await Deno.mkdir(`${dir}/a/backend`, { recursive: true });
    await Deno.writeFile(`${dir}/a/backend/${digest.hex}`, data);
    const url = remoteUrl(a, "ns", `${digest}`, b.addr);
    const first = await fetch(url, { method: "POST" });
    await first.body?.cancel();
    assert.equal(first.status, 202);
    const done = await waitFor("the fetched blob to replicate", async () => {
      const res = await fetch(url, { method: "POST" });
      await res.body?.cancel();
      return res.status === 200 ? true : undefined;
    });
    assert.ok(done);
    assert.ok(await new OriginClient(b.addr).stat("ns", digest, { local: true }));

    const missing = await fetch(remoteUrl(a, "ns", `sha256:${"0".repeat(64)}`, b.addr), {
      method: "POST",
    });
    await missing.body?.cancel();
    assert.equal(missing.status, 404);
  }));

Deno.test("origin: replicate-to-remote refuses a bad remote (400) and reports an unreachable one (502)", () =>
  withClusters(async (a) => {
    const data = enc.encode("x");
    const digest = await digestOfBytes(data);
    await new OriginClient(a.addr).uploadBlob("ns", digest, bytesSource(data));
    const bad = await fetch(remoteUrl(a, "ns", `${digest}`, "no-port"), { method: "POST" });
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /remote must be host:port/);
    const [port] = freePorts(1);
    const down = await fetch(remoteUrl(a, "ns", `${digest}`, `127.0.0.1:${port}`), {
      method: "POST",
    });
    assert.equal(down.status, 502);
    assert.match(await down.text(), new RegExp(`remote cluster 127.0.0.1:${port}: .*unavailable`));
  }));
