import assert from "node:assert/strict";
import { bytesSource, OriginClient } from "../../cluster/blob_client.ts";
import { type Digest, digestOfBytes } from "../../storage/digest.ts";
import { generateMetaInfo, PieceLengthTable } from "../../storage/metainfo.ts";
import { serveTestfs } from "../../storage/backend/testfs_server.ts";
import { exists } from "../../tests/harness/fs.ts";
import { waitFor } from "../../tests/harness/wait.ts";
import { startTestOrigin, type TestOrigin, urlOf } from "./_test_util.ts";

const enc = new TextEncoder();

async function withOrigin(
  fn: (origin: TestOrigin, dir: string) => Promise<void>,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kraken-origin-test-" });
  const origin = await startTestOrigin({
    storage: { root: "store" },
    backends: [{ namespace: ".*", backend: { file: { root: "backend" } } }],
    writeback: { poll_interval: "50ms", retry_interval: "0ms" },
    ...extra,
  }, { baseDir: dir });
  try {
    await fn(origin, dir);
  } finally {
    await origin.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

async function req(
  origin: TestOrigin,
  method: string,
  path: string,
  init: { body?: BodyInit; headers?: HeadersInit } = {},
): Promise<{ status: number; headers: Headers; text: string }> {
  const res = await fetch(`${urlOf(origin)}${path}`, { method, ...init });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** Starts an upload and returns its uid. */
async function start(origin: TestOrigin, ns: string, digest: Digest): Promise<string> {
  const r = await req(origin, "POST", `/namespace/${ns}/blobs/${digest}/uploads`);
  assert.equal(r.status, 200, r.text);
  const uid = r.headers.get("location");
  assert.ok(uid);
  return uid;
}

Deno.test("origin: health, locations, upload, download, stat, metainfo, write-back", () =>
  withOrigin(async (origin, dir) => {
    assert.deepEqual(await req(origin, "GET", "/health").then((r) => [r.status, r.text]), [
      200,
      "OK\n",
    ]);
    assert.equal((await req(origin, "GET", "/readiness")).text, "OK\n");

    const data = enc.encode("layer bytes ".repeat(100));
    const digest = await digestOfBytes(data);
    const loc = await req(origin, "GET", `/blobs/${digest}/locations`);
    assert.equal(loc.status, 200);
    assert.equal(loc.text, "");
    assert.equal(loc.headers.get("origin-locations"), origin.advertise);

    await new OriginClient(origin.addr, { chunkSize: 333 }).uploadBlob(
      "library/ubuntu",
      digest,
      bytesSource(data),
    );
    const got = await fetch(`${urlOf(origin)}/namespace/library%2Fubuntu/blobs/${digest}`);
    assert.equal(got.status, 200);
    assert.equal(got.headers.get("content-length"), String(data.length));
    assert.deepEqual(new Uint8Array(await got.arrayBuffer()), data);

    const head = await req(origin, "HEAD", `/internal/namespace/x/blobs/${digest}?local=true`);
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String(data.length));
    assert.equal(head.text, "");

    const mi = await req(origin, "GET", `/internal/namespace/x/blobs/${digest}/metainfo`);
    const expected = await generateMetaInfo(
      digest,
      { stream: ReadableStream.from([data]), size: data.length },
      new PieceLengthTable({ 0: "4MB" }),
    );
    assert.equal(mi.status, 200);
    assert.equal(mi.text, expected.serialize());

    // The write-back lands in the file backend (identity name path: <root>/<hex>).
    const backendFile = `${dir}/backend/${digest.hex}`;
    await waitFor("write-back", () => exists(backendFile));
    assert.deepEqual(await Deno.readFile(backendFile), data);
    // ... and clears the persist marker.
    await waitFor(
      "persist marker cleared",
      async () =>
        !await exists(`${dir}/store/cache/${digest.hex.slice(0, 2)}/${digest.hex}.meta/persist`),
    );

    // Uploading it again: 409 at start, which the client treats as success.
    const again = await req(origin, "POST", `/namespace/ns/blobs/${digest}/uploads`);
    assert.equal(again.status, 409);
    assert.equal(again.text, "");
    await new OriginClient(origin.addr).uploadBlob("ns", digest, bytesSource(data));
  }));

Deno.test("origin: bad input — digests, Content-Range, unknown uploads, wrong digest", () =>
  withOrigin(async (origin, dir) => {
    const data = enc.encode("some content");
    const digest = await digestOfBytes(data);
    const ns = "ns";

    const bad = await req(origin, "POST", `/namespace/${ns}/blobs/sha256:xyz/uploads`);
    assert.equal(bad.status, 400);
    assert.match(bad.text, /invalid sha256 hex/);
    assert.equal((await req(origin, "GET", `/namespace/${ns}/blobs/${digest.hex}`)).status, 400);
    assert.equal((await req(origin, "GET", `/blobs/md5:abc/locations`)).status, 400);

    const uid = await start(origin, ns, digest);
    const patchPath = `/namespace/${ns}/blobs/${digest}/uploads/${uid}`;
    const missing = await req(origin, "PATCH", patchPath, { body: data });
    assert.equal(missing.status, 400);
    assert.match(missing.text, /missing Content-Range/);
    for (const range of ["bytes 0-12", "0,12", "12-0", "a-b", "-12"]) {
      const r = await req(origin, "PATCH", patchPath, {
        body: data,
        headers: { "content-range": range },
      });
      assert.equal(r.status, 400, `Content-Range ${range}`);
    }
    const short = await req(origin, "PATCH", patchPath, {
      body: data.subarray(0, 5),
      headers: { "content-range": "0-12" },
    });
    assert.equal(short.status, 400);
    assert.match(short.text, /needs 12 bytes/);

    const unknown = `/namespace/${ns}/blobs/${digest}/uploads/00000000-0000-4000-8000-000000000000`;
    const r404 = await req(origin, "PATCH", unknown, {
      body: data,
      headers: { "content-range": "0-12" },
    });
    assert.deepEqual([r404.status, r404.text], [404, ""]);
    assert.equal((await req(origin, "PUT", unknown)).status, 404);
    assert.equal(
      (await req(origin, "PUT", `/namespace/${ns}/blobs/${digest}/uploads/nope`)).status,
      404,
    );

    // Wrong bytes for the digest: the commit fails and nothing is stored.
    const wrong = enc.encode("other bytes!");
    const ok = await req(origin, "PATCH", patchPath, {
      body: wrong,
      headers: { "content-range": `0-${wrong.length}` },
    });
    assert.equal(ok.status, 200);
    const commit = await req(origin, "PUT", patchPath);
    assert.equal(commit.status, 400);
    assert.match(commit.text, /digest mismatch/);
    assert.equal((await req(origin, "PUT", patchPath)).status, 404, "the session is gone");
    const stat = await req(origin, "HEAD", `/internal/namespace/${ns}/blobs/${digest}?local=true`);
    assert.equal(stat.status, 404);
    assert.equal(await exists(`${dir}/store/cache/${digest.hex.slice(0, 2)}/${digest.hex}`), false);

    // A proper upload, then duplicates: start, PATCH and commit all answer 409.
    const uid2 = await start(origin, ns, digest);
    const path2 = `/namespace/${ns}/blobs/${digest}/uploads/${uid2}`;
    const uid3 = await start(origin, ns, digest);
    await req(origin, "PATCH", path2, { body: data, headers: { "content-range": "0-12" } });
    assert.equal((await req(origin, "PUT", path2)).status, 200);
    assert.equal(
      (await req(origin, "POST", `/namespace/${ns}/blobs/${digest}/uploads`)).status,
      409,
    );
    const path3 = `/namespace/${ns}/blobs/${digest}/uploads/${uid3}`;
    const dupPatch = await req(origin, "PATCH", path3, {
      body: data,
      headers: { "content-range": "0-12" },
    });
    assert.deepEqual([dupPatch.status, dupPatch.text], [409, ""]);
    assert.equal((await req(origin, "PUT", path3)).status, 409);

    assert.equal(
      (await req(origin, "HEAD", `/internal/namespace/${ns}/blobs/${digest}?local=maybe`)).status,
      400,
    );
    const badPiece = await req(origin, "POST", `/internal/blobs/${digest}/metainfo?piece_length=x`);
    assert.equal(badPiece.status, 400);
    const dupCommit = await req(
      origin,
      "PUT",
      `/internal/duplicate/namespace/${ns}/blobs/${digest}/uploads/${uid3}`,
      { body: "{not json" },
    );
    assert.equal(dupCommit.status, 400);
    assert.match(dupCommit.text, /json decode/);
  }));

Deno.test("origin: path-traversal namespaces never leave the store root", () =>
  withOrigin(async (origin, dir) => {
    let digest!: Digest;
    for (const ns of ["..%2F..%2Fetc", "..%2F..%2F..%2Ftmp%2Fx", "%2Fabs", "..%5C..%5Cx"]) {
      const data = enc.encode(`escape attempt via ${ns}`);
      digest = await digestOfBytes(data);
      const uid = await start(origin, ns, digest);
      const path = `/namespace/${ns}/blobs/${digest}/uploads/${uid}`;
      await req(origin, "PATCH", path, {
        body: data,
        headers: { "content-range": `0-${data.length}` },
      });
      assert.equal((await req(origin, "PUT", path)).status, 200);
      const dl = await req(origin, "GET", `/namespace/${ns}/blobs/${digest}`);
      assert.equal(dl.text, `escape attempt via ${ns}`);
      await waitFor("write-back", () => exists(`${dir}/backend/${digest.hex}`));
    }
    // Dot segments, escaped or not, are normalised away by URL parsing and fail routing.
    for (const ns of ["../../etc", "..", "%2E%2E"]) {
      const raw = await fetch(`${urlOf(origin)}/namespace/${ns}/blobs/${digest}/uploads`, {
        method: "POST",
      });
      await raw.body?.cancel();
      assert.equal(raw.status, 404, ns);
    }
    // Only the store and the backend directory exist: nothing was written beside or above them.
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["backend", "store"]);
    const names = [...Deno.readDirSync(`${dir}/backend`)].map((e) => e.name);
    assert.deepEqual(names.filter((n) => !/^[0-9a-f]{64}$/.test(n)), [".kraken-tmp"]);
  }));

Deno.test("origin: cache miss fetches from the backend (202, then 200), 404 when absent", () =>
  withOrigin(async (origin, dir) => {
    const data = enc.encode("only in the backend");
    const digest = await digestOfBytes(data);
    await Deno.mkdir(`${dir}/backend`, { recursive: true });
    await Deno.writeFile(`${dir}/backend/${digest.hex}`, data);

    const first = await req(origin, "GET", `/namespace/ns/blobs/${digest}`);
    assert.deepEqual([first.status, first.text], [202, ""]);
    let body = "";
    await waitFor("backend fetch", async () => {
      const r = await req(origin, "GET", `/namespace/ns/blobs/${digest}`);
      body = r.text;
      return r.status === 200;
    });
    assert.equal(body, "only in the backend");
    const mi = await req(origin, "GET", `/internal/namespace/ns/blobs/${digest}/metainfo`);
    assert.equal(mi.status, 200);
    assert.equal(JSON.parse(mi.text).Info.Length, data.length);

    const absent = await digestOfBytes(enc.encode("nowhere"));
    assert.equal((await req(origin, "GET", `/namespace/ns/blobs/${absent}`)).status, 404);
    assert.equal((await req(origin, "POST", `/namespace/ns/blobs/${absent}/prefetch`)).status, 404);
    const metaMiss = await req(origin, "GET", `/internal/namespace/ns/blobs/${absent}/metainfo`);
    assert.equal(metaMiss.status, 404);
    assert.equal((await req(origin, "HEAD", `/internal/namespace/ns/blobs/${absent}`)).status, 404);

    // Backend stat through the internal HEAD (not local), and prefetch of a cached blob.
    const other = enc.encode("stat me");
    const otherDigest = await digestOfBytes(other);
    await Deno.writeFile(`${dir}/backend/${otherDigest.hex}`, other);
    const head = await req(origin, "HEAD", `/internal/namespace/ns/blobs/${otherDigest}`);
    assert.deepEqual([head.status, head.headers.get("content-length")], [200, "7"]);
    assert.equal((await req(origin, "POST", `/namespace/ns/blobs/${digest}/prefetch`)).status, 200);

    // Internal delete: 202 with an empty body, then 404.
    const del = await req(origin, "DELETE", `/internal/blobs/${digest}`);
    assert.deepEqual([del.status, del.text, del.headers.get("content-length")], [202, "", "0"]);
    assert.equal((await req(origin, "DELETE", `/internal/blobs/${digest}`)).status, 404);
  }));

Deno.test("origin: metainfo regeneration and duplicate commit with a delayed write-back", () =>
  withOrigin(async (origin, dir) => {
    const data = enc.encode("0123456789");
    const digest = await digestOfBytes(data);
    const uid = await start(origin, "dup", digest);
    await req(origin, "PATCH", `/namespace/dup/blobs/${digest}/uploads/${uid}`, {
      body: data,
      headers: { "content-range": "0-10" },
    });
    const commit = await req(
      origin,
      "PUT",
      `/internal/duplicate/namespace/dup/blobs/${digest}/uploads/${uid}`,
      { body: JSON.stringify({ Delay: 3_600_000_000_000 }) },
    );
    assert.equal(commit.status, 200, commit.text);
    const regen = await req(origin, "POST", `/internal/blobs/${digest}/metainfo?piece_length=4`);
    assert.equal(regen.status, 200);
    const mi = JSON.parse(
      (await req(origin, "GET", `/internal/namespace/dup/blobs/${digest}/metainfo`)).text,
    );
    assert.equal(mi.Info.PieceLength, 4);
    assert.equal(mi.Info.PieceSums.length, 3);
    // The delayed task is persisted but not run: once a blob committed after it without a delay
    // has been written back (the poller has run past the delayed task), the backend still lacks it.
    const control = enc.encode("control blob");
    const controlDigest = await digestOfBytes(control);
    const controlUid = await start(origin, "dup", controlDigest);
    await req(origin, "PATCH", `/namespace/dup/blobs/${controlDigest}/uploads/${controlUid}`, {
      body: control,
      headers: { "content-range": `0-${control.length}` },
    });
    const controlCommit = await req(
      origin,
      "PUT",
      `/namespace/dup/blobs/${controlDigest}/uploads/${controlUid}`,
    );
    assert.equal(controlCommit.status, 200, controlCommit.text);
    const { DatabaseSync } = await import("node:sqlite");
    // Done means the file is in the backend and the task's row is gone (deleted just after).
    await waitFor("the undelayed blob is written back", async () => {
      if (!(await exists(`${dir}/backend/${controlDigest.hex}`))) return false;
      const db = new DatabaseSync(`${dir}/store/origin.db`, { readOnly: true });
      try {
        return db.prepare("SELECT 1 FROM writeback_task WHERE name = ?").get(controlDigest.hex) ===
          undefined;
      } finally {
        db.close();
      }
    });
    assert.equal(await exists(`${dir}/backend/${digest.hex}`), false);
    const db = new DatabaseSync(`${dir}/store/origin.db`, { readOnly: true });
    try {
      const rows = db.prepare("SELECT namespace, name, delay, status FROM writeback_task").all();
      assert.deepEqual(rows.map((r) => ({ ...r })), [
        { namespace: "dup", name: digest.hex, delay: 3_600_000_000_000, status: "failed" },
      ]);
    } finally {
      db.close();
    }
  }));

Deno.test("origin: a must_ready backend that cannot be reached fails start-up, naming the entry", async () => {
  const port = (() => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const p = (l.addr as Deno.NetAddr).port;
    l.close();
    return p;
  })();
  const dir = await Deno.makeTempDir({ prefix: "kraken-origin-test-" });
  try {
    await assert.rejects(
      startTestOrigin({
        storage: { root: "store" },
        backends: [
          { namespace: "^other/", backend: { file: { root: "backend" } } },
          {
            namespace: ".*",
            backend: { testfs: { addr: `127.0.0.1:${port}`, root: "blobs" } },
            must_ready: true,
          },
        ],
      }, { baseDir: dir }),
      new RegExp(
        `^Error: backends\\[1\\] \\(namespace \\.\\*, testfs 127\\.0\\.0\\.1:${port}/blobs\\) is not ready: `,
      ),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("origin: readiness fails while a must_ready backend is unreachable", async () => {
  const backendDir = await Deno.makeTempDir({ prefix: "kraken-origin-testfs-" });
  const server = serveTestfs({ root: backendDir });
  let stopped = false;
  try {
    await withOrigin(async (origin) => {
      assert.equal((await req(origin, "GET", "/readiness")).status, 200);
      await server.shutdown();
      stopped = true;
      const r = await req(origin, "GET", "/readiness");
      assert.equal(r.status, 503);
      assert.match(r.text, /^not ready to serve traffic: /);
    }, {
      backends: [{
        namespace: ".*",
        backend: { testfs: { addr: server.addr, root: "blobs" } },
        must_ready: true,
      }],
    });
  } finally {
    if (!stopped) await server.shutdown();
    await Deno.remove(backendDir, { recursive: true });
  }
});
