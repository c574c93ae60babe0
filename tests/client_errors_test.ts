/**
 * Bad client input gets a 4xx with a message, never a 5xx (issue 9, findings 4 and 8): real
 * processes for testfs, an origin, build-index, the proxy, a tracker and an agent, driven with
 * hostile requests (path traversal in listings, bodies that do not match their ranges, bodies cut
 * short, a duplicate commit that is not JSON, wrong digests). A rejected proxy chunk leaves the
 * upload as it was, so the client can retry it.
 */

import assert from "node:assert/strict";
import { startDownloadCluster } from "./harness/cluster.ts";
import { ProcessGroup } from "./harness/procs.ts";

const enc = new TextEncoder();

async function answer(
  res: Response,
): Promise<{ status: number; text: string; headers: Headers }> {
  return { status: res.status, text: await res.text(), headers: res.headers };
}

/** Asserts a 4xx whose body says something (upstream's plain-text or registry JSON errors). */
function assertClientError(
  got: { status: number; text: string },
  status: number,
  message: RegExp,
  what: string,
): void {
  assert.equal(got.status, status, `${what}: status (body ${JSON.stringify(got.text)})`);
  assert.match(got.text, message, `${what}: message`);
}

/**
 * Sends one HTTP/1.1 request whose body is `sent` although `Content-Length` announces
 * `announced` bytes, half-closes the connection (the client gave up) and returns the answer.
 */
async function truncatedRequest(
  addr: string,
  head: string,
  announced: number,
  sent: Uint8Array,
): Promise<{ status: number; text: string }> {
  const [hostname, port] = addr.split(":");
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    await conn.write(
      enc.encode(`${head}\r\nHost: ${addr}\r\nContent-Length: ${announced}\r\n\r\n`),
    );
    await conn.write(sent);
    await conn.closeWrite();
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(16 * 1024);
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    const raw = new TextDecoder().decode(
      chunks.reduce((a, b) => new Uint8Array([...a, ...b]), new Uint8Array()),
    );
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1] ?? 0);
    return { status, text: raw.slice(raw.indexOf("\r\n\r\n") + 4) };
  } finally {
    conn.close();
  }
}

async function sha256(data: Uint8Array): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", data as BufferSource));
  return `sha256:${Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

Deno.test({
  name: "client errors: 4xx with a message from every role, rejected chunks leave no trace",
  async fn(t) {
    await using group = new ProcessGroup();
    const dir = await Deno.makeTempDir({ prefix: "kraken-client-errors-" });
    const cluster = await startDownloadCluster({ dir, group, origins: 1, agents: 1 });
    const bi = `http://${cluster.buildIndex.addr}`;
    const origin = `http://${cluster.origins[0].addr}`;
    const proxy = `http://${cluster.proxy.addr}`;
    const agent = `http://${cluster.agents[0].addr}`;

    await t.step("build-index: `..` in a listing prefix or repository is 400", async () => {
      for (
        const path of [
          "/list/..%2F..%2F..",
          "/list/..%2Fblobs",
          "/list/library%2F..%2F..%2F..",
          "/list/%2E%2E%2Fblobs",
          "/list/a%2F.%2Fb",
          "/repositories/..%2F..%2F../tags",
          "/repositories/library%2F..%2F../tags",
        ]
      ) {
        const got = await answer(await fetch(`${bi}${path}`));
        assertClientError(got, 400, /path segment/, `GET ${path}`);
      }
      // An ordinary prefix still lists.
      assert.equal((await answer(await fetch(`${bi}/list/library`))).status, 200);
    });

    await t.step("agent: build-index's 400 for a tag passes through with its message", async () => {
      const got = await answer(await fetch(`${agent}/tags/${encodeURIComponent("a/../b:1")}`));
      assertClientError(got, 400, /invalid path segment/, "agent GET /tags/a/../b:1");
    });

    const data = enc.encode("x".repeat(100));
    const digest = await sha256(data);
    const startUpload = async (): Promise<string> => {
      const res = await fetch(`${origin}/namespace/ns/blobs/${digest}/uploads`, { method: "POST" });
      await res.body?.cancel();
      assert.equal(res.status, 200);
      return res.headers.get("location")!;
    };
    const patch = (uid: string, range: string, body: Uint8Array) =>
      fetch(`${origin}/namespace/ns/blobs/${digest}/uploads/${uid}`, {
        method: "PATCH",
        headers: { "content-range": range },
        body: body as BodyInit,
      }).then(answer);

    await t.step("origin: a chunk body shorter than its Content-Range is 400", async () => {
      const uid = await startUpload();
      assertClientError(
        await patch(uid, "0-100", data.subarray(0, 50)),
        400,
        /needs 100 bytes/,
        "short PATCH",
      );
      const cut = await truncatedRequest(
        cluster.origins[0].addr,
        `PATCH /namespace/ns/blobs/${digest}/uploads/${uid} HTTP/1.1\r\nContent-Range: 0-100`,
        100,
        data.subarray(0, 40),
      );
      assertClientError(cut, 400, /request body/, "PATCH cut short");
    });

    await t.step("origin: a commit whose bytes hash differently is 400", async () => {
      const uid = await startUpload();
      const wrong = enc.encode("y".repeat(100));
      assert.equal((await patch(uid, "0-100", wrong)).status, 200);
      const got = await answer(
        await fetch(`${origin}/namespace/ns/blobs/${digest}/uploads/${uid}`, { method: "PUT" }),
      );
      assertClientError(got, 400, /digest mismatch/, "commit with the wrong bytes");
    });

    await t.step("origin: a duplicate commit whose body is not JSON is 400", async () => {
      const uid = await startUpload();
      assert.equal((await patch(uid, "0-100", data)).status, 200);
      for (const body of ["not json", "[1]", '{"Delay": "soon"}']) {
        const got = await answer(
          await fetch(`${origin}/internal/duplicate/namespace/ns/blobs/${digest}/uploads/${uid}`, {
            method: "PUT",
            body,
          }),
        );
        assertClientError(got, 400, /json decode/, `duplicate commit ${body}`);
      }
      // The session survived the bad requests: a good body commits it.
      const ok = await fetch(
        `${origin}/internal/duplicate/namespace/ns/blobs/${digest}/uploads/${uid}`,
        { method: "PUT", body: '{"Delay": 0}' },
      );
      await ok.body?.cancel();
      assert.equal(ok.status, 200);
    });

    await t.step("origin: a bad `local` flag on stat is 400", async () => {
      const res = await fetch(`${origin}/internal/namespace/ns/blobs/${digest}?local=maybe`, {
        method: "HEAD",
      });
      await res.body?.cancel();
      assert.equal(res.status, 400);
    });

    await t.step("build-index: a bad replicate flag or duplicate body is 400", async () => {
      const tag = encodeURIComponent("library/x:1");
      const put = await answer(
        await fetch(`${bi}/tags/${tag}/digest/${digest}?replicate=maybe`, { method: "PUT" }),
      );
      assertClientError(put, 400, /replicate/, "PUT tag ?replicate=maybe");
      const dup = await answer(
        await fetch(`${bi}/internal/duplicate/tags/${tag}/digest/${digest}`, {
          method: "PUT",
          body: "not json",
        }),
      );
      assertClientError(dup, 400, /json decode/, "duplicate tag with a non-JSON body");
    });

    // The proxy's upload session: 100 bytes accepted, then bad chunks that must change nothing.
    const name = "library/hostile";
    const res = await fetch(`${proxy}/v2/${name}/blobs/uploads/`, { method: "POST" });
    await res.body?.cancel();
    assert.equal(res.status, 202);
    const location = `${proxy}${res.headers.get("location")}`;
    const proxyPatch = (range: string | null, body: Uint8Array) =>
      fetch(location, {
        method: "PATCH",
        headers: range ? { "content-range": range } : {},
        body: body as BodyInit,
      }).then(answer);
    const range = async () => {
      const got = await fetch(location);
      await got.body?.cancel();
      assert.equal(got.status, 204);
      return got.headers.get("range");
    };
    assert.equal((await proxyPatch("0-99", data)).status, 202);
    assert.equal(await range(), "0-99");

    await t.step(
      "proxy: a chunk longer than its Content-Range is rejected and discarded",
      async () => {
        const got = await proxyPatch("100-149", data);
        assertClientError(got, 400, /BLOB_UPLOAD_INVALID/, "PATCH 100-149 with 100 bytes");
        assert.equal(await range(), "0-99", "the rejected bytes are gone");
      },
    );

    await t.step(
      "proxy: a chunk shorter than its Content-Range is rejected and discarded",
      async () => {
        const got = await proxyPatch("100-199", data.subarray(0, 30));
        assertClientError(got, 400, /BLOB_UPLOAD_INVALID/, "PATCH 100-199 with 30 bytes");
        assert.equal(await range(), "0-99", "the rejected bytes are gone");
      },
    );

    await t.step("proxy: a PATCH body cut short of its Content-Length is 400", async () => {
      const path = new URL(location).pathname;
      for (const extra of ["", "\r\nContent-Range: 100-199"]) {
        const got = await truncatedRequest(
          cluster.proxy.addr,
          `PATCH ${path} HTTP/1.1${extra}`,
          100,
          data.subarray(0, 40),
        );
        assertClientError(got, 400, /BLOB_UPLOAD_INVALID/, `PATCH cut short${extra}`);
        assert.equal(await range(), "0-99", "the bytes of the cut chunk are gone");
      }
    });

    await t.step("proxy: a manifest body cut short of its Content-Length is 400", async () => {
      const got = await truncatedRequest(
        cluster.proxy.addr,
        `PUT /v2/${name}/manifests/v1 HTTP/1.1\r\nContent-Type: application/vnd.oci.image.manifest.v1+json`,
        400,
        enc.encode('{"schemaVersion": 2, "mediaType": "application/vnd.oci'),
      );
      assertClientError(got, 400, /MANIFEST_INVALID/, "manifest PUT cut short");
    });

    await t.step("proxy: the retried chunk is accepted and the blob commits", async () => {
      const retry = await proxyPatch("100-149", data.subarray(0, 50));
      assert.equal(retry.status, 202, retry.text);
      assert.equal(retry.headers.get("range"), "0-149");
      const whole = new Uint8Array([...data, ...data.subarray(0, 50)]);
      const put = await fetch(`${location}?digest=${await sha256(whole)}`, { method: "PUT" });
      await put.body?.cancel();
      assert.equal(put.status, 201);
    });
  },
});
