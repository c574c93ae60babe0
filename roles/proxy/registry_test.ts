import assert from "node:assert/strict";
import { OCI_INDEX, OCI_MANIFEST } from "../../registry/manifest.ts";
import { bytesSource } from "../../cluster/blob_client.ts";
import { type Digest, digestOfBytes } from "../../storage/digest.ts";
import { makeArtifact, makeImage, pushImage, randomBytes } from "../../tests/harness/oci.ts";
import { collectSpans } from "../../tracing/_test_util.ts";
import { type PushStack, startPushStack } from "./_test_util.ts";
import { ATTR, SPAN } from "../../tracing/names.ts";

/** Runs `fn` against a fresh push stack and removes everything afterwards. */
async function withStack(
  fn: (stack: PushStack, dir: string) => Promise<void>,
  options: Parameters<typeof startPushStack>[1] = {},
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const stack = await startPushStack(dir, options);
  try {
    await fn(stack, dir);
  } finally {
    await stack.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

async function errorCode(res: Response): Promise<string> {
  const body = await res.json();
  return body.errors[0].code;
}

/** POST, PATCH each chunk, PUT ?digest: the chunked flow docker uses. Returns the PUT response. */
async function chunkedUpload(
  url: string,
  repo: string,
  chunks: Uint8Array<ArrayBuffer>[],
  digest: Digest,
) {
  const start = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  assert.equal(start.status, 202);
  assert.equal(start.headers.get("range"), "0-0");
  assert.ok(start.headers.get("docker-upload-uuid"));
  let location = start.headers.get("location")!;
  let offset = 0;
  for (const chunk of chunks) {
    const res = await fetch(`${url}${location}`, {
      method: "PATCH",
      body: chunk,
      headers: { "content-range": `${offset}-${offset + chunk.length - 1}` },
    });
    assert.equal(res.status, 202, await res.text());
    offset += chunk.length;
    assert.equal(res.headers.get("range"), `0-${offset - 1}`);
    location = res.headers.get("location")!;
  }
  return await fetch(`${url}${location}?digest=${digest}`, { method: "PUT" });
}

async function putManifest(url: string, repo: string, ref: string, bytes: Uint8Array<ArrayBuffer>) {
  return await fetch(`${url}/v2/${repo}/manifests/${ref}`, {
    method: "PUT",
    body: bytes,
    headers: { "content-type": OCI_MANIFEST },
  });
}

async function listDir(path: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(path)) out.push(e.name);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return out.sort();
}

Deno.test("proxy: chunked, monolithic and single-PUT uploads, then a tagged manifest", async () => {
  await withStack(async ({ url, originClient, buildIndex }) => {
    const repo = "library/demo";
    const image = await makeImage({ layerSizes: [300_000, 1000, 10] });
    const [big, small, tiny] = image.layers;

    assert.equal(
      (await fetch(`${url}/v2/`)).headers.get("docker-distribution-api-version"),
      "registry/2.0",
    );
    const miss = await fetch(`${url}/v2/${repo}/blobs/${big.digest}`, { method: "HEAD" });
    assert.equal(miss.status, 404);

    // Chunked: two PATCHes with Content-Range.
    const put = await chunkedUpload(url, repo, [
      big.bytes.subarray(0, 100_000),
      big.bytes.subarray(100_000),
    ], big.digest);
    assert.equal(put.status, 201, await put.text());
    assert.equal(put.headers.get("docker-content-digest"), big.digest.toString());
    assert.equal(put.headers.get("location"), `/v2/${repo}/blobs/${big.digest}`);

    // Monolithic POST ?digest=.
    const mono = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${small.digest}`, {
      method: "POST",
      body: small.bytes,
    });
    assert.equal(mono.status, 201, await mono.text());

    // POST then a single PUT carrying the body.
    const start = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
    const single = await fetch(`${url}${start.headers.get("location")}?digest=${tiny.digest}`, {
      method: "PUT",
      body: tiny.bytes,
    });
    assert.equal(single.status, 201, await single.text());

    // The config through a streaming PATCH without Content-Range.
    const cfg = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
    const patch = await fetch(`${url}${cfg.headers.get("location")}`, {
      method: "PATCH",
      body: ReadableStream.from([
        image.config.bytes.subarray(0, 5),
        image.config.bytes.subarray(5),
      ]),
    });
    assert.equal(patch.status, 202);
    const cfgPut = await fetch(
      `${url}${patch.headers.get("location")}?digest=${image.config.digest}`,
      {
        method: "PUT",
      },
    );
    assert.equal(cfgPut.status, 201, await cfgPut.text());

    // Every blob is in the origin cluster now; HEAD on the proxy says so with the size.
    for (const blob of [...image.layers, image.config]) {
      assert.deepEqual(await originClient.stat("TODO", blob.digest), { size: blob.bytes.length });
      const head = await fetch(`${url}/v2/${repo}/blobs/${blob.digest}`, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("content-length"), String(blob.bytes.length));
    }
    const got = await fetch(`${url}/v2/${repo}/blobs/${small.digest}`);
    assert.deepEqual(new Uint8Array(await got.arrayBuffer()), small.bytes);

    const man = await putManifest(url, repo, "v1", image.manifest.bytes);
    assert.equal(man.status, 201, await man.text());
    assert.equal(man.headers.get("docker-content-digest"), image.manifest.digest.toString());

    // The tag is in build-index, the manifest in the origin cluster.
    const tag = await fetch(`${buildIndex.url}/tags/${encodeURIComponent(`${repo}:v1`)}`);
    assert.equal(await tag.text(), image.manifest.digest.toString());
    assert.deepEqual(await originClient.stat("TODO", image.manifest.digest), {
      size: image.manifest.bytes.length,
    });

    // Reads a pushing client makes.
    const byTag = await fetch(`${url}/v2/${repo}/manifests/v1`);
    assert.equal(byTag.status, 200);
    assert.equal(byTag.headers.get("content-type"), OCI_MANIFEST);
    assert.equal(byTag.headers.get("docker-content-digest"), image.manifest.digest.toString());
    assert.deepEqual(new Uint8Array(await byTag.arrayBuffer()), image.manifest.bytes);
    const byDigest = await fetch(`${url}/v2/${repo}/manifests/${image.manifest.digest}`, {
      method: "HEAD",
    });
    assert.equal(byDigest.status, 200);
    assert.equal(byDigest.headers.get("content-length"), String(image.manifest.bytes.length));
    const list = await (await fetch(`${url}/v2/${repo}/tags/list`)).json();
    assert.deepEqual(list, { name: repo, tags: ["v1"] });
    const catalog = await (await fetch(`${url}/v2/_catalog`)).json();
    assert.deepEqual(catalog, { repositories: [repo] });
    const unknownTag = await fetch(`${url}/v2/${repo}/manifests/v2`);
    assert.equal(unknownTag.status, 404);
    assert.equal(await errorCode(unknownTag), "MANIFEST_UNKNOWN");

    // Cross-repository mount of a known blob: 201 without a session.
    const mount = await fetch(
      `${url}/v2/other/repo/blobs/uploads/?mount=${small.digest}&from=${repo}`,
      {
        method: "POST",
      },
    );
    assert.equal(mount.status, 201);
  });
});

Deno.test("proxy: a wrong digest on commit is DIGEST_INVALID and stores nothing", async () => {
  await withStack(async ({ url, originClient, proxy }) => {
    const repo = "library/bad";
    const data = randomBytes(5000);
    const wrong = await digestOfBytes(new TextEncoder().encode("something else"));
    const res = await chunkedUpload(url, repo, [data], wrong);
    assert.equal(res.status, 400);
    assert.equal(await errorCode(res), "DIGEST_INVALID");
    const right = await digestOfBytes(data);
    assert.equal(await proxy.store.stat(right), null);
    assert.equal(await proxy.store.stat(wrong), null);
    assert.equal(await originClient.stat("TODO", wrong), null);
    assert.equal(await originClient.stat("TODO", right), null);
    assert.equal(proxy.sessions.size, 0);

    // Monolithic with a wrong digest: same answer.
    const mono = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${wrong}`, {
      method: "POST",
      body: data,
    });
    assert.equal(mono.status, 400);
    assert.equal(await errorCode(mono), "DIGEST_INVALID");
    assert.equal(await proxy.store.stat(wrong), null);

    // A malformed digest parameter.
    const start = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
    const bad = await fetch(`${url}${start.headers.get("location")}?digest=sha256:xyz`, {
      method: "PUT",
    });
    assert.equal(bad.status, 400);
    assert.equal(await errorCode(bad), "DIGEST_INVALID");
  });
});

Deno.test("proxy: unknown or foreign upload ids are BLOB_UPLOAD_UNKNOWN", async () => {
  await withStack(async ({ url }) => {
    const data = randomBytes(10);
    const d = await digestOfBytes(data);
    for (const uid of [crypto.randomUUID(), "not-a-uuid", "..%2F..%2Fetc"]) {
      for (const method of ["PATCH", "PUT", "GET", "DELETE"]) {
        const res = await fetch(`${url}/v2/library/x/blobs/uploads/${uid}?digest=${d}`, {
          method,
          body: method === "PATCH" || method === "PUT" ? data : undefined,
        });
        assert.equal(res.status, 404, `${method} ${uid}`);
        assert.equal(await errorCode(res), "BLOB_UPLOAD_UNKNOWN");
      }
    }
    // A session belongs to its repository.
    const start = await fetch(`${url}/v2/library/x/blobs/uploads/`, { method: "POST" });
    const uid = start.headers.get("docker-upload-uuid");
    const foreign = await fetch(`${url}/v2/library/y/blobs/uploads/${uid}`, {
      method: "PATCH",
      body: data,
    });
    assert.equal(foreign.status, 404);
    assert.equal(await errorCode(foreign), "BLOB_UPLOAD_UNKNOWN");
    // A PATCH whose Content-Range does not continue the upload.
    const gap = await fetch(`${url}/v2/library/x/blobs/uploads/${uid}`, {
      method: "PATCH",
      body: data,
      headers: { "content-range": "5-14" },
    });
    assert.equal(gap.status, 416);
    assert.equal(await errorCode(gap), "RANGE_INVALID");
    // Aborted sessions are gone.
    const del = await fetch(`${url}/v2/library/x/blobs/uploads/${uid}`, { method: "DELETE" });
    assert.equal(del.status, 204);
    const after = await fetch(`${url}/v2/library/x/blobs/uploads/${uid}`, { method: "GET" });
    assert.equal(after.status, 404);
    await after.body?.cancel();
  });
});

Deno.test("proxy: manifests referencing missing blobs or malformed are refused, no tag", async () => {
  await withStack(async ({ url, originClient, buildIndex }) => {
    const repo = "library/incomplete";
    const image = await makeImage({ layerSizes: [100, 200] });
    // Only the config and the first layer are pushed.
    for (const blob of [image.config, image.layers[0]]) {
      const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${blob.digest}`, {
        method: "POST",
        body: blob.bytes,
      });
      assert.equal(res.status, 201);
    }
    const res = await putManifest(url, repo, "v1", image.manifest.bytes);
    assert.equal(res.status, 400);
    const body = await res.json();
    assert.equal(body.errors[0].code, "MANIFEST_BLOB_UNKNOWN");
    assert.equal(body.errors[0].detail.digest, image.layers[1].digest.toString());
    const tag = await fetch(`${buildIndex.url}/tags/${encodeURIComponent(`${repo}:v1`)}`);
    assert.equal(tag.status, 404);
    await tag.body?.cancel();
    assert.equal(await originClient.stat("TODO", image.manifest.digest), null);

    const invalid = [
      new TextEncoder().encode("{not json"),
      new TextEncoder().encode(JSON.stringify({ schemaVersion: 1, name: repo })),
      new TextEncoder().encode(
        JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, layers: [] }),
      ),
      new TextEncoder().encode(JSON.stringify({ schemaVersion: 2, mediaType: "text/plain" })),
    ];
    for (const bytes of invalid) {
      const r = await putManifest(url, repo, "v1", bytes);
      assert.equal(r.status, 400);
      assert.equal(await errorCode(r), "MANIFEST_INVALID");
    }
    // Pushing by digest checks the digest.
    const wrongRef = await putManifest(url, repo, `${image.config.digest}`, image.manifest.bytes);
    assert.equal(wrongRef.status, 400);
    assert.equal(await errorCode(wrongRef), "DIGEST_INVALID");
  });
});

Deno.test("proxy: path-traversal and invalid names or tags are 4xx and store nothing", async () => {
  await withStack(async ({ url, buildIndex, proxy }, dir) => {
    const data = randomBytes(64);
    const d = await digestOfBytes(data);
    const image = await makeImage({ layerSizes: [10] });
    const names = [
      "..%2F..%2Fetc",
      "library%2F..%2F..%2Fx",
      "Library/Upper",
      "a//b",
      "-lead",
      "x%00y",
    ];
    for (const name of names) {
      for (
        const [method, path, body] of [
          ["POST", `/v2/${name}/blobs/uploads/`, undefined],
          ["POST", `/v2/${name}/blobs/uploads/?digest=${d}`, data],
          ["HEAD", `/v2/${name}/blobs/${d}`, undefined],
          ["PUT", `/v2/${name}/manifests/latest`, image.manifest.bytes],
        ] as const
      ) {
        const res = await fetch(`${url}${path}`, { method, body });
        assert.equal(res.status, 400, `${method} ${path}`);
        if (method === "HEAD") await res.body?.cancel();
        else assert.equal(await errorCode(res), "NAME_INVALID");
      }
    }
    for (const tag of ["..%2F..%2Fetc", "bad%2Ftag", ".hidden", "a".repeat(129), "tag%3Ax"]) {
      const res = await putManifest(url, "library/ok", tag, image.manifest.bytes);
      assert.equal(res.status, 400, tag);
      const code = await errorCode(res);
      assert.ok(code === "TAG_INVALID" || code === "DIGEST_INVALID", `${tag}: ${code}`);
    }
    assert.deepEqual(await listDir(`${dir}/proxy/blobs/uploads`), []);
    assert.deepEqual(await listDir(`${dir}/proxy/blobs/cache`), []);
    assert.deepEqual(await listDir(`${dir}/proxy/sessions`), []);
    assert.equal(proxy.sessions.size, 0);
    assert.deepEqual((await (await fetch(`${buildIndex.url}/list/`)).json()).result, []);
    assert.deepEqual(await listDir(`${dir}/etc`), []);
  });
});

Deno.test("proxy: with the origin cluster down, HEAD is 404 and a commit fails without caching", async () => {
  await withStack(async ({ url, origin, proxy }) => {
    await origin.stop();
    const data = randomBytes(3000);
    const d = await digestOfBytes(data);
    const head = await fetch(`${url}/v2/library/down/blobs/${d}`, { method: "HEAD" });
    assert.equal(head.status, 404);
    const res = await fetch(`${url}/v2/library/down/blobs/uploads/?digest=${d}`, {
      method: "POST",
      body: data,
    });
    assert.equal(res.status, 500);
    assert.equal(await errorCode(res), "UNKNOWN");
    // Not left in the proxy cache, so a retry uploads it again instead of skipping it.
    assert.equal(await proxy.store.stat(d), null);
    assert.equal(proxy.sessions.size, 0);
  });
});

Deno.test("proxy: idle sessions expire, and a restarted proxy continues an upload", async () => {
  await withStack(async (stack) => {
    const { url, proxy } = stack;
    const data = randomBytes(2000);
    const d = await digestOfBytes(data);
    const start = await fetch(`${url}/v2/library/slow/blobs/uploads/`, { method: "POST" });
    const location = start.headers.get("location")!;
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(await proxy.prune(), 1);
    const gone = await fetch(`${url}${location}`, { method: "PATCH", body: data });
    assert.equal(gone.status, 404);
    assert.equal(await errorCode(gone), "BLOB_UPLOAD_UNKNOWN");

    // Restart: the session file and the staged bytes survive, the upload completes.
    const start2 = await fetch(`${url}/v2/library/slow/blobs/uploads/`, { method: "POST" });
    const loc2 = start2.headers.get("location")!;
    const half = await fetch(`${url}${loc2}`, { method: "PATCH", body: data.subarray(0, 1000) });
    assert.equal(half.status, 202);
    await proxy.stop();
    const second = await stack.restartProxy();
    try {
      const url2 = `http://127.0.0.1:${second.port}`;
      const rest = await fetch(`${url2}${loc2}`, { method: "PATCH", body: data.subarray(1000) });
      assert.equal(rest.status, 202, await rest.text());
      assert.equal(rest.headers.get("range"), "0-1999");
      const done = await fetch(`${url2}${loc2}?digest=${d}`, { method: "PUT" });
      assert.equal(done.status, 201, await done.text());
      assert.deepEqual(await stack.originClient.stat("TODO", d), { size: 2000 });
    } finally {
      await second.stop();
    }
  }, { upload: { ttl: "10ms" } });
});

Deno.test("proxy: one trace per upload session; manifest PUT reaches origin and build-index", async () => {
  const collector = collectSpans("proxy");
  try {
    await withStack(async ({ url }) => {
      const repo = "library/traced";
      const image = await makeImage({ layerSizes: [4000] });
      const layer = image.layers[0];
      const put = await chunkedUpload(url, repo, [
        layer.bytes.subarray(0, 1500),
        layer.bytes.subarray(1500),
      ], layer.digest);
      assert.equal(put.status, 201, await put.text());
      const cfg = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${image.config.digest}`, {
        method: "POST",
        body: image.config.bytes,
      });
      assert.equal(cfg.status, 201);
      const man = await putManifest(url, repo, "v1", image.manifest.bytes);
      assert.equal(man.status, 201, await man.text());

      const spans = await collector.spans();
      const byName = (name: string) => spans.filter((s) => s.name === name);
      const idOf = (s: { spanContext(): { spanId: string } }) => s.spanContext().spanId;

      const uploads = byName(SPAN.proxyUpload);
      assert.equal(uploads.length, 2, "one proxy.upload per session");
      const chunked = uploads.find((s) =>
        s.attributes.repo === repo && byName(SPAN.proxyUploadChunk)
            .filter((c) => c.parentSpanContext?.spanId === idOf(s)).length === 2
      )!;
      assert.ok(chunked, "the chunked session has two upload_chunk children");
      assert.equal(chunked.attributes[ATTR.uploadOutcome], "committed");
      const postServer = spans.find((s) => idOf(s) === chunked.parentSpanContext?.spanId)!;
      assert.equal(postServer.name, "POST /v2/{name+}/blobs/uploads/");
      const trace = chunked.spanContext().traceId;

      const children = spans.filter((s) => s.parentSpanContext?.spanId === idOf(chunked));
      assert.deepEqual(children.map((s) => s.name).sort(), [
        SPAN.proxyCommitUpload,
        SPAN.proxyStartUpload,
        SPAN.proxyUploadChunk,
        SPAN.proxyUploadChunk,
      ]);
      for (const child of children) assert.equal(child.spanContext().traceId, trace);
      const chunks = children.filter((s) => s.name === SPAN.proxyUploadChunk)
        .sort((a, b) => Number(a.attributes.range_start) - Number(b.attributes.range_start));
      assert.deepEqual(
        chunks.map((
          c,
        ) => [c.attributes.range_start, c.attributes.range_end, c.attributes.chunk_size]),
        [
          [0, 1500, 1500],
          [1500, layer.bytes.length, layer.bytes.length - 1500],
        ],
      );
      // Each later request's span links to that request's own server span.
      for (const chunk of chunks) {
        const link = chunk.links[0]?.context;
        const server = spans.find((s) => link && idOf(s) === link.spanId);
        assert.equal(server?.name, "PATCH /v2/{name+}/blobs/uploads/{uuid}");
      }
      const commit = children.find((s) => s.name === SPAN.proxyCommitUpload)!;
      assert.equal(commit.attributes.digest, layer.digest.toString());
      assert.equal(commit.attributes.total_size, layer.bytes.length);
      const store = spans.find((s) =>
        s.name === SPAN.originStoreBlob && s.parentSpanContext?.spanId === idOf(commit)
      );
      assert.ok(store, "origin.store_blob under proxy.commit_upload");
      assert.equal(store.attributes.namespace, "TODO");
      const start = children.find((s) => s.name === SPAN.proxyStartUpload)!;
      assert.equal(start.attributes.repo, repo);
      assert.equal(start.attributes.namespace, "TODO");
      assert.match(String(start.attributes.upload_id), /^[0-9a-f-]{36}$/);

      const putManifestSpan = byName(SPAN.proxyPutManifest)[0];
      const under = spans.filter((s) => s.parentSpanContext?.spanId === idOf(putManifestSpan)).map((
        s,
      ) => s.name);
      assert.ok(under.includes(SPAN.originStoreBlob), under.join(", "));
      assert.ok(under.includes(SPAN.buildIndexPutTag), under.join(", "));
      // The build-index's own put_tag runs in the same trace, below its server span.
      const serverPut = spans.filter((s) =>
        s.name === SPAN.buildIndexPutTag && s.parentSpanContext?.spanId !== idOf(putManifestSpan)
      );
      assert.equal(serverPut.length, 1);
      assert.equal(serverPut[0].spanContext().traceId, putManifestSpan.spanContext().traceId);
    }, { tracing: collector.runtime });
  } finally {
    await collector.runtime.shutdown();
  }
});

Deno.test("proxy: Range GETs from the cache and from the origin cluster; 416 with a message", async () => {
  await withStack(async ({ url, originClient }) => {
    const repo = "library/ranges";
    const cached = randomBytes(200_000);
    const cachedDigest = await digestOfBytes(cached);
    const up = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${cachedDigest}`, {
      method: "POST",
      body: cached,
    });
    assert.equal(up.status, 201, await up.text());
    // Only in the origin cluster: the proxy streams it from there and cuts the range.
    const remote = randomBytes(150_000);
    const remoteDigest = await digestOfBytes(remote);
    await originClient.uploadBlob(repo, remoteDigest, bytesSource(remote));
    for (const [bytes, digest] of [[cached, cachedDigest], [remote, remoteDigest]] as const) {
      const blobUrl = `${url}/v2/${repo}/blobs/${digest}`;
      const res = await fetch(blobUrl, { headers: { range: "bytes=70000-99999" } });
      assert.equal(res.status, 206);
      assert.equal(res.headers.get("content-range"), `bytes 70000-99999/${bytes.length}`);
      assert.deepEqual(new Uint8Array(await res.arrayBuffer()), bytes.slice(70_000, 100_000));
      const tail = await fetch(blobUrl, { headers: { range: "bytes=-5" } });
      assert.equal(tail.status, 206);
      assert.deepEqual(new Uint8Array(await tail.arrayBuffer()), bytes.slice(-5));
      for (const range of [`bytes=${bytes.length}-`, "bytes=0-10,5-20"]) {
        const bad = await fetch(blobUrl, { headers: { range } });
        assert.equal(bad.status, 416, range);
        assert.equal(bad.headers.get("content-range"), `bytes */${bytes.length}`);
        const body = await bad.json();
        assert.equal(body.errors[0].code, "RANGE_INVALID");
        assert.match(body.errors[0].message, /not satisfiable/);
      }
      const other = await fetch(blobUrl, {
        headers: { range: "bytes=0-9", "if-range": '"sha256:something-else"' },
      });
      assert.equal(other.status, 200, "If-Range names another entity: the whole blob");
      await other.body?.cancel();
      const same = await fetch(blobUrl, {
        headers: { range: "bytes=0-9", "if-range": `"${digest}"` },
      });
      assert.equal(same.status, 206);
      await same.body?.cancel();
      const whole = await fetch(blobUrl);
      assert.equal(whole.headers.get("accept-ranges"), "bytes");
      assert.deepEqual(new Uint8Array(await whole.arrayBuffer()), bytes);
    }
  });
});

Deno.test("proxy: sha512 is refused where content is stored and unknown where it is read", async () => {
  await withStack(async ({ url }) => {
    const repo = "library/sha512";
    const sha512 = `sha512:${"ab".repeat(64)}`;
    for (
      const [method, path, status, code] of [
        ["GET", `blobs/${sha512}`, 404, "BLOB_UNKNOWN"],
        ["HEAD", `blobs/${sha512}`, 404, ""],
        ["GET", `manifests/${sha512}`, 404, "MANIFEST_UNKNOWN"],
        ["POST", `blobs/uploads/?digest=${sha512}`, 400, "DIGEST_INVALID"],
        ["PUT", `manifests/${sha512}`, 400, "DIGEST_INVALID"],
      ] as const
    ) {
      const res = await fetch(`${url}/v2/${repo}/${path}`, {
        method,
        body: method === "POST" ? "x" : undefined,
      });
      assert.equal(res.status, status, `${method} ${path}`);
      if (code === "") continue;
      const body = await res.json();
      assert.equal(body.errors[0].code, code, `${method} ${path}`);
      assert.match(body.errors[0].message, /sha512/, `${method} ${path}`);
    }
    // A manifest naming sha512 content (subject or layer) cannot be stored.
    const sha256 = (await digestOfBytes(new TextEncoder().encode("c"))).toString();
    for (
      const extra of [{ subject: { mediaType: OCI_MANIFEST, digest: sha512, size: 1 } }, {
        layers: [{ mediaType: "application/octet-stream", digest: sha512, size: 1 }],
      }]
    ) {
      const doc = {
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: "a/b", digest: sha256, size: 1 },
        layers: [],
        ...extra,
      };
      const res = await putManifest(url, repo, "v1", new TextEncoder().encode(JSON.stringify(doc)));
      assert.equal(res.status, 400);
      const body = await res.json();
      assert.equal(body.errors[0].code, "MANIFEST_INVALID");
      assert.match(body.errors[0].message, /sha512/);
    }
    // A session's commit with a sha512 digest: refused, the session stays usable.
    const start = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
    const location = start.headers.get("location")!;
    const commit = await fetch(`${url}${location}?digest=${sha512}`, { method: "PUT", body: "x" });
    assert.equal(commit.status, 400);
    assert.equal(await errorCode(commit), "DIGEST_INVALID");
    const bytes = new TextEncoder().encode("x");
    const retry = await fetch(`${url}${location}?digest=${await digestOfBytes(bytes)}`, {
      method: "PUT",
      body: bytes,
    });
    assert.equal(retry.status, 201, await retry.text());
    // A mount of sha512 content cannot succeed: an upload session instead.
    const mount = await fetch(`${url}/v2/${repo}/blobs/uploads/?mount=${sha512}&from=other`, {
      method: "POST",
    });
    assert.equal(mount.status, 202);
    assert.match(mount.headers.get("location") ?? "", /\/blobs\/uploads\//);
  });
});

Deno.test("proxy: a mount of a blob the cluster lacks falls back to an upload session", async () => {
  await withStack(async ({ url }) => {
    const bytes = randomBytes(1000);
    const digest = await digestOfBytes(bytes);
    const mount = await fetch(`${url}/v2/library/b/blobs/uploads/?mount=${digest}&from=library/a`, {
      method: "POST",
    });
    assert.equal(mount.status, 202);
    const location = mount.headers.get("location")!;
    const put = await fetch(`${url}${location}?digest=${digest}`, { method: "PUT", body: bytes });
    assert.equal(put.status, 201, await put.text());
    const again = await fetch(`${url}/v2/library/c/blobs/uploads/?mount=${digest}&from=library/b`, {
      method: "POST",
    });
    assert.equal(again.status, 201);
    assert.equal(again.headers.get("docker-content-digest"), digest.toString());
  });
});

Deno.test("proxy: referrers — subject recorded in build-index, OCI-Subject, index with filter", async () => {
  await withStack(async ({ url, buildIndex }) => {
    const repo = "library/app";
    const image = await makeImage({ layerSizes: [1000] });
    await pushImage(url, repo, "v1", image);
    const sbom = await makeArtifact({
      subject: image.manifest,
      artifactType: "application/spdx+json",
      annotations: { "org.example.kind": "sbom" },
      payload: new TextEncoder().encode('{"spdxVersion":"SPDX-2.3"}'),
    });
    const signature = await makeArtifact({
      subject: image.manifest,
      configMediaType: "application/vnd.example.signature.config.v1+json",
      payload: randomBytes(64),
    });
    for (const artifact of [sbom, signature]) {
      await pushImage(url, repo, artifact.manifest.digest.toString(), artifact);
      // Pushing again is idempotent and answers OCI-Subject.
      const res = await putManifest(
        url,
        repo,
        `${artifact.manifest.digest}`,
        artifact.manifest.bytes,
      );
      assert.equal(res.status, 201, await res.text());
      assert.equal(res.headers.get("oci-subject"), image.manifest.digest.toString());
    }
    // The record is a build-index tag of the repository, pointing at the referrer.
    const record =
      `${repo}:_oci/referrers/sha256-${image.manifest.digest.hex}/sha256-${sbom.manifest.digest.hex}`;
    const tag = await fetch(`${buildIndex.url}/tags/${encodeURIComponent(record)}`);
    assert.equal(await tag.text(), sbom.manifest.digest.toString());

    const res = await fetch(`${url}/v2/${repo}/referrers/${image.manifest.digest}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), OCI_INDEX);
    assert.equal(res.headers.get("oci-filters-applied"), null);
    const index = await res.json();
    assert.equal(index.schemaVersion, 2);
    assert.equal(index.mediaType, OCI_INDEX);
    const byDigest = (d: Digest) =>
      index.manifests.find((m: { digest: string }) => m.digest === `${d}`);
    assert.equal(index.manifests.length, 2);
    assert.deepEqual(byDigest(sbom.manifest.digest), {
      mediaType: OCI_MANIFEST,
      digest: sbom.manifest.digest.toString(),
      size: sbom.manifest.bytes.length,
      artifactType: "application/spdx+json",
      annotations: { "org.example.kind": "sbom" },
    });
    assert.equal(
      byDigest(signature.manifest.digest).artifactType,
      "application/vnd.example.signature.config.v1+json",
      "without artifactType, the config's media type",
    );

    const filtered = await fetch(
      `${url}/v2/${repo}/referrers/${image.manifest.digest}?artifactType=application/spdx%2Bjson`,
    );
    assert.equal(filtered.headers.get("oci-filters-applied"), "artifactType");
    assert.deepEqual(
      (await filtered.json()).manifests.map((m: { digest: string }) => m.digest),
      [sbom.manifest.digest.toString()],
    );
    // No referrers: an empty index, 200 (also for sha512 digests and other repositories).
    for (
      const path of [
        `${repo}/referrers/${sbom.manifest.digest}`,
        `${repo}/referrers/sha512:${"cd".repeat(64)}`,
        `library/elsewhere/referrers/${image.manifest.digest}`,
      ]
    ) {
      const empty = await fetch(`${url}/v2/${path}`);
      assert.equal(empty.status, 200, path);
      assert.deepEqual((await empty.json()).manifests, [], path);
    }
    // Records are no tags.
    const list = await (await fetch(`${url}/v2/${repo}/tags/list`)).json();
    assert.deepEqual(list.tags, ["v1"]);
  });
});

Deno.test("proxy: referrers — bad input gets the spec's status, code and a message", async () => {
  await withStack(async ({ url, buildIndex }) => {
    const image = await makeImage({ layerSizes: [500] });
    await pushImage(url, "library/other", "v1", image);
    // A subject that is another repository's manifest.
    const foreign = await makeArtifact({
      subject: image.manifest,
      artifactType: "application/spdx+json",
      payload: randomBytes(32),
    });
    for (const blob of [foreign.config, ...foreign.layers]) {
      const up = await fetch(`${url}/v2/library/app/blobs/uploads/?digest=${blob.digest}`, {
        method: "POST",
        body: blob.bytes,
      });
      assert.equal(up.status, 201);
    }
    const res = await putManifest(url, "library/app", "sbom", foreign.manifest.bytes);
    assert.equal(res.status, 400);
    const body = await res.json();
    assert.equal(body.errors[0].code, "MANIFEST_INVALID");
    assert.match(body.errors[0].message, /not a manifest of repository library\/app/);
    const tag = await fetch(`${buildIndex.url}/tags/${encodeURIComponent("library/app:sbom")}`);
    assert.equal(tag.status, 404, "nothing tagged");
    await tag.body?.cancel();
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, /^kraken_proxy_subject_checks_total\{result="refused"\} 1$/m);
    // In its own repository the same artifact is fine; a subject not pushed yet is too.
    const own = await putManifest(url, "library/other", "sbom", foreign.manifest.bytes);
    assert.equal(own.status, 201, await own.text());
    const early = await makeArtifact({
      subject: { digest: await digestOfBytes(randomBytes(8)), bytes: randomBytes(8) },
      payload: foreign.layers[0].bytes,
    });
    assert.equal(
      (await putManifest(url, "library/app", "early", early.manifest.bytes)).status,
      201,
    );

    // A malformed artifactType filter, a malformed digest.
    for (
      const [query, code] of [
        [`${image.manifest.digest}?artifactType=not-a-type`, "UNSUPPORTED"],
        [`${image.manifest.digest}?artifactType=a/b%20c`, "UNSUPPORTED"],
        ["sha256:abc", "DIGEST_INVALID"],
      ]
    ) {
      const bad = await fetch(`${url}/v2/library/other/referrers/${query}`);
      assert.equal(bad.status, 400, query);
      const err = await bad.json();
      assert.equal(err.errors[0].code, code, query);
      assert.ok(err.errors[0].message.length > 10, query);
    }
  });
});

Deno.test("proxy: a manifest whose missing blobs are all foreign layers with urls is accepted", async () => {
  await withStack(async ({ url, buildIndex }) => {
    const repo = "library/windows";
    const image = await makeImage({ layerSizes: [300] });
    await pushImage(url, repo, "base", image);
    const foreign = await digestOfBytes(randomBytes(16));
    const manifestWith = (layer: Record<string, unknown>) =>
      new TextEncoder().encode(JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: {
          mediaType: "application/vnd.oci.image.config.v1+json",
          digest: image.config.digest.toString(),
          size: image.config.bytes.length,
        },
        layers: [layer, {
          mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
          digest: image.layers[0].digest.toString(),
          size: image.layers[0].bytes.length,
        }],
      }));
    const layer = {
      mediaType: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
      digest: foreign.toString(),
      size: 16,
      urls: ["https://example.com/layer.tar.gz"],
    };
    const ok = await putManifest(url, repo, "v1", manifestWith(layer));
    assert.equal(ok.status, 201, await ok.text());
    const tag = await fetch(`${buildIndex.url}/tags/${encodeURIComponent(`${repo}:v1`)}`);
    assert.equal(tag.status, 200, "build-index does not ask for the foreign layer either");
    await tag.body?.cancel();
    const docker = await putManifest(
      url,
      repo,
      "v2",
      manifestWith({
        ...layer,
        mediaType: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
      }),
    );
    assert.equal(docker.status, 201, await docker.text());
    // Without urls, or as an ordinary layer, the missing blob is refused.
    for (const bad of [{ ...layer, urls: undefined }, { ...layer, mediaType: OCI_MANIFEST }]) {
      const res = await putManifest(url, repo, "v3", manifestWith(bad));
      assert.equal(res.status, 400);
      const body = await res.json();
      assert.equal(body.errors[0].code, "MANIFEST_BLOB_UNKNOWN");
      assert.equal(body.errors[0].detail.digest, foreign.toString());
    }
  });
});
