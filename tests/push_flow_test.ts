/**
 * The upload path end to end (issue: a `docker push` is one trace in Jaeger): real processes for
 * testfs, two origins, build-index and proxy; a real skopeo pushes a generated image; a real Jaeger
 * receives the spans. Also the crash case: an origin killed after acknowledging a commit and before
 * its write-back ran completes the write-back after restart, in the original trace.
 */

import assert from "node:assert/strict";
import { startUploadCluster } from "./harness/cluster.ts";
import { exists } from "./harness/fs.ts";
import { startJaeger } from "./harness/jaeger.ts";
import { type Image, makeImage, writeOciLayout } from "./harness/oci.ts";
import { ProcessGroup } from "./harness/procs.ts";
import { skopeo } from "./harness/skopeo.ts";
import {
  assertTree,
  findSpans,
  formatTree,
  type SpanNode,
  type TraceTree,
} from "./harness/trace_tree.ts";
import { waitFor, type WaitForOptions } from "./harness/wait.ts";
import { SPAN } from "../tracing/names.ts";

/** Traces arrive in exporter batches from several processes: poll Jaeger gently, for a while. */
const JAEGER_WAIT: WaitForOptions = { timeoutMs: 20_000, intervalMs: 200 };

async function skopeoPush(layoutDir: string, registry: string, ref: string): Promise<void> {
  await skopeo([
    "copy",
    "--dest-tls-verify=false",
    "--retry-times=0",
    `oci:${layoutDir}:latest`,
    `docker://${registry}/${ref}`,
  ]);
}

async function status(url: string, init?: RequestInit): Promise<number> {
  const res = await fetch(url, init);
  await res.body?.cancel();
  return res.status;
}

/**
 * The trace in which `proxy.commit_upload` committed `digest`, once it holds `minSpans` spans and a
 * `backend.upload` span satisfying `backendDone` (by default: one that succeeded).
 */
async function uploadTrace(
  jaeger: Awaited<ReturnType<typeof startJaeger>>,
  digest: string,
  minSpans: number,
  backendDone: (s: SpanNode) => boolean = (s) => s.status !== "error",
): Promise<TraceTree> {
  const id = await waitFor(`the upload trace of ${digest}`, async () => {
    const traces = await jaeger.findTraces({
      service: "kraken-proxy",
      operation: SPAN.proxyCommitUpload,
      limit: 100,
    });
    return traces.flatMap((t) => t.spans)
      .find((s) => s.name === SPAN.proxyCommitUpload && s.attributes.digest === digest)?.traceId;
  }, JAEGER_WAIT);
  return await waitFor(`${minSpans} spans in trace ${id}`, async () => {
    const tree = await jaeger.getTrace(id);
    // Spans arrive in batches from four processes: wait for the last ones of each side (the
    // session's root, the origin's commit server span, the write-back).
    const has = (pred: (s: SpanNode) => boolean) =>
      tree !== undefined && findSpans(tree, pred).length > 0;
    return tree && tree.spans.length >= minSpans &&
        has((s) => s.name === SPAN.backendUpload && backendDone(s)) &&
        has((s) => s.name === SPAN.proxyUpload) &&
        has((s) =>
          s.service === "kraken-origin" && s.kind === "server" &&
          s.name === "PUT /namespace/{namespace}/blobs/{digest}/uploads/{uid}"
        )
      ? tree
      : undefined;
  }, JAEGER_WAIT);
}

function blobsOf(image: Image) {
  return [...image.layers, image.config];
}

Deno.test("push: skopeo push through the proxy is one trace per blob upload in Jaeger", async () => {
  await using jaeger = await startJaeger();
  await using group = new ProcessGroup();
  const dir = await Deno.makeTempDir({ prefix: "kraken-push-" });
  try {
    const cluster = await startUploadCluster({
      dir,
      group,
      otlpEndpoint: jaeger.otlpHttpEndpoint,
    });
    const image = await makeImage({ layers: 3, layerSize: 300 * 1024 });
    await writeOciLayout(`${dir}/image`, image);
    await skopeoPush(`${dir}/image`, cluster.proxy.addr, "demo/app:v1");

    // The tag is on build-index and points at the pushed manifest.
    const tag = await fetch(`http://${cluster.buildIndex.addr}/tags/demo%2Fapp:v1`);
    assert.equal(tag.status, 200);
    assert.equal(await tag.text(), image.manifest.digest.toString());

    for (const blob of [...blobsOf(image), image.manifest]) {
      const hex = blob.digest.hex;
      // Every blob is on both origins of the ring (upload + replication)...
      for (const origin of cluster.origins) {
        assert.equal(
          await status(
            `http://${origin.addr}/internal/namespace/TODO/blobs/${blob.digest}?local=true`,
            { method: "HEAD" },
          ),
          200,
          `${blob.digest} missing on ${origin.addr}`,
        );
      }
      // ...its metainfo is served...
      const meta = await fetch(
        `http://${cluster.origins[0].addr}/internal/namespace/TODO/blobs/${blob.digest}/metainfo`,
      );
      assert.equal(meta.status, 200);
      const info = (await meta.json()).Info;
      assert.equal(info.Name, hex);
      assert.equal(info.Length, blob.bytes.length);
      // ...and the write-back put a byte-identical copy in the backend.
      const backendFile = `${cluster.testfs.dataDir}/blobs/${hex}`;
      await waitFor(`backend copy of ${hex}`, () => exists(backendFile), JAEGER_WAIT);
      assert.deepEqual(await Deno.readFile(backendFile), blob.bytes);
    }

    // One trace per blob upload session, shaped as the span catalogue says.
    for (const blob of blobsOf(image)) {
      const tree = await uploadTrace(jaeger, blob.digest.toString(), 12);
      const proxyUpload = findSpans(tree, (s) => s.name === SPAN.proxyUpload);
      assert.equal(proxyUpload.length, 1, formatTree(tree));
      const commitServer: (s: SpanNode) => boolean = (s) =>
        s.service === "kraken-origin" && s.kind === "server" &&
        s.name === "PUT /namespace/{namespace}/blobs/{digest}/uploads/{uid}";
      assertTree(
        { ...tree, roots: [proxyUpload[0]] },
        {
          name: SPAN.proxyUpload,
          service: "kraken-proxy",
          children: [
            { name: SPAN.proxyStartUpload },
            {
              name: SPAN.proxyUploadChunk,
              minLinks: 1,
              attrs: { chunk_size: (v) => typeof v === "number" && v > 0 },
            },
            {
              name: SPAN.proxyCommitUpload,
              attrs: { digest: blob.digest.toString(), total_size: blob.bytes.length },
              children: [{
                name: SPAN.originStoreBlob,
                service: "kraken-proxy",
                attrs: { digest: blob.digest.toString(), namespace: "TODO" },
                children: [
                  {
                    name: "POST /namespace/{namespace}/blobs/{digest}/uploads",
                    kind: "client",
                    children: [{
                      name: "POST /namespace/{namespace}/blobs/{digest}/uploads",
                      service: "kraken-origin",
                      kind: "server",
                    }],
                  },
                  {
                    name: "PUT /namespace/{namespace}/blobs/{digest}/uploads/{uid}",
                    kind: "client",
                    children: [{
                      name: "PUT /namespace/{namespace}/blobs/{digest}/uploads/{uid}",
                      service: "kraken-origin",
                      children: [
                        { name: SPAN.originCacheWrite, service: "kraken-origin" },
                        { name: SPAN.originReplicate, service: "kraken-origin" },
                      ],
                    }],
                  },
                ],
              }],
            },
          ],
        },
      );
      // The asynchronous write-back joined the same trace, under the commit that queued it.
      const backendUpload = findSpans(tree, (s) => s.name === SPAN.backendUpload);
      assert.equal(backendUpload.length >= 1, true, formatTree(tree));
      const commit = findSpans(tree, commitServer);
      assert.ok(
        backendUpload.some((b) => commit.some((c) => c.spanId === b.parentSpanId)),
        `backend.upload is not under the commit:\n${formatTree(tree)}`,
      );
      assert.equal(backendUpload[0].attributes.digest, blob.digest.toString());
      // The replica on the other origin wrote its own spans into the same trace.
      const replicaServer = findSpans(
        tree,
        (s) => s.kind === "server" && s.name.startsWith("PUT /internal/duplicate/"),
      );
      assert.ok(replicaServer.length >= 1, formatTree(tree));
    }

    // The manifest put reaches build-index inside the push's manifest trace.
    const manifestTree = await waitFor("the manifest trace", async () => {
      const traces = await jaeger.findTraces({
        service: "kraken-proxy",
        operation: SPAN.proxyPutManifest,
      });
      return traces.find((t) =>
        findSpans(t, (s) => s.service === "kraken-build-index" && s.name === SPAN.buildIndexPutTag)
          .length > 0
      );
    }, JAEGER_WAIT);
    assertTree(
      { ...manifestTree, roots: findSpans(manifestTree, (s) => s.name === SPAN.proxyPutManifest) },
      {
        name: SPAN.proxyPutManifest,
        service: "kraken-proxy",
        children: [{ name: SPAN.originStoreBlob }, { name: SPAN.buildIndexPutTag }],
      },
    );
  } finally {
    await group.stopAll();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("push: bad input is refused with a clear 4xx and nothing is stored", async () => {
  await using group = new ProcessGroup();
  const dir = await Deno.makeTempDir({ prefix: "kraken-bad-" });
  try {
    const cluster = await startUploadCluster({ dir, group });
    const registry = `http://${cluster.proxy.addr}`;
    const body = new TextEncoder().encode("some bytes");
    const wrong = `sha256:${"ab".repeat(32)}`;
    // Wrong digest on commit.
    const start = await fetch(`${registry}/v2/demo/app/blobs/uploads/`, { method: "POST" });
    assert.equal(start.status, 202);
    const location = new URL(start.headers.get("location")!, registry);
    location.searchParams.set("digest", wrong);
    const put = await fetch(location, { method: "PUT", body });
    assert.equal(put.status, 400);
    assert.equal((await put.json()).errors[0].code, "DIGEST_INVALID");
    assert.equal(await status(`${registry}/v2/demo/app/blobs/${wrong}`, { method: "HEAD" }), 404);
    // Unknown upload id.
    const unknown = await fetch(
      `${registry}/v2/demo/app/blobs/uploads/00000000-0000-0000-0000-000000000000`,
      { method: "PATCH", body },
    );
    assert.equal(unknown.status, 404);
    assert.equal((await unknown.json()).errors[0].code, "BLOB_UPLOAD_UNKNOWN");
    // A manifest that references missing blobs.
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: wrong, size: 2 },
      layers: [],
    });
    const mput = await fetch(`${registry}/v2/demo/app/manifests/v1`, {
      method: "PUT",
      headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" },
      body: manifest,
    });
    assert.equal(mput.status, 400);
    assert.equal((await mput.json()).errors[0].code, "MANIFEST_BLOB_UNKNOWN");
    assert.equal(await status(`http://${cluster.buildIndex.addr}/tags/demo%2Fapp:v1`), 404);
    // Path traversal in the repository name and in the tag.
    for (const path of ["/v2/../../etc/blobs/uploads/", "/v2/demo/..%2F..%2Fetc/blobs/uploads/"]) {
      const res = await fetch(`${registry}${path}`, { method: "POST" });
      assert.ok(res.status >= 400 && res.status < 500, `${path}: ${res.status}`);
      await res.body?.cancel();
    }
    const badTag = await fetch(`${registry}/v2/demo/app/manifests/..%2F..%2Fx`, {
      method: "PUT",
      headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" },
      body: manifest,
    });
    assert.ok(badTag.status >= 400 && badTag.status < 500, String(badTag.status));
    await badTag.body?.cancel();
    // Origin: bad Content-Range and traversal namespaces.
    const origin = `http://${cluster.origins[0].addr}`;
    const d = `sha256:${"cd".repeat(32)}`;
    const ostart = await fetch(`${origin}/namespace/TODO/blobs/${d}/uploads`, { method: "POST" });
    assert.equal(ostart.status, 200);
    const uid = ostart.headers.get("location");
    const badRange = await fetch(`${origin}/namespace/TODO/blobs/${d}/uploads/${uid}`, {
      method: "PATCH",
      headers: { "content-range": "bytes 0-9" },
      body,
    });
    assert.equal(badRange.status, 400);
    assert.ok((await badRange.text()).length > 0);
    const evil = await fetch(
      `${origin}/namespace/..%2F..%2F..%2Fetc/blobs/${d}/uploads`,
      { method: "POST" },
    );
    await evil.body?.cancel();
    for await (const entry of Deno.readDir(dir)) {
      assert.notEqual(entry.name, "etc", "a hostile namespace wrote outside the store");
    }
    // Nothing reached the backend.
    const backendBlobs = `${cluster.testfs.dataDir}/blobs`;
    const stored = await exists(backendBlobs)
      ? Array.from(Deno.readDirSync(backendBlobs)).map((e) => e.name)
      : [];
    assert.deepEqual(stored, []);
  } finally {
    await group.stopAll();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("push: an origin killed before write-back finishes it after restart, in the same trace", async () => {
  await using jaeger = await startJaeger();
  await using group = new ProcessGroup();
  const dir = await Deno.makeTempDir({ prefix: "kraken-crash-" });
  try {
    const cluster = await startUploadCluster({
      dir,
      group,
      origins: 1,
      otlpEndpoint: jaeger.otlpHttpEndpoint,
    });
    // With the backend down, the write-back cannot run: the task stays in the origin's queue.
    await cluster.testfs.process.stop();
    const image = await makeImage({ layers: 1, layerSize: 100 * 1024 });
    const layer = image.layers[0];
    await writeOciLayout(`${dir}/image`, image);
    const registry = `http://${cluster.proxy.addr}`;
    // Upload one blob through the proxy; the origin acknowledges the commit.
    const start = await fetch(`${registry}/v2/crash/app/blobs/uploads/`, { method: "POST" });
    assert.equal(start.status, 202);
    const location = new URL(start.headers.get("location")!, registry);
    location.searchParams.set("digest", layer.digest.toString());
    const put = await fetch(location, { method: "PUT", body: layer.bytes as BodyInit });
    assert.equal(put.status, 201, await put.text());
    const origin = cluster.origins[0];
    assert.equal(
      await status(
        `http://${origin.addr}/internal/namespace/TODO/blobs/${layer.digest}?local=true`,
        {
          method: "HEAD",
        },
      ),
      200,
    );
    // Let the origin export the commit's spans (the batch interval is 100 ms), so the trace can
    // show where the write-back hangs; then kill -9: no clean shutdown, no flush.
    await waitFor("the origin's commit span in Jaeger", async () => {
      const traces = await jaeger.findTraces({ service: "kraken-origin", limit: 50 });
      // The commit's server span ends after its response body, so it is exported last: wait for it
      // in the same trace as the cache write of this blob.
      return traces.some((t) =>
          findSpans(
              t,
              (s) =>
                s.name === SPAN.originCacheWrite && s.attributes.digest === layer.digest.toString(),
            )
              .length > 0 &&
          findSpans(t, (s) =>
              s.service === "kraken-origin" && s.kind === "server" &&
              s.name === "PUT /namespace/{namespace}/blobs/{digest}/uploads/{uid}").length > 0
        )
        ? true
        : undefined;
    }, JAEGER_WAIT);
    origin.process.kill("SIGKILL");
    await origin.process.stopped;
    await cluster.restartTestfs();
    const restarted = await cluster.restartOrigin(0);
    const backendFile = `${cluster.testfs.dataDir}/blobs/${layer.digest.hex}`;
    await waitFor(
      "the write-back after restart",
      () => exists(backendFile),
      { ...JAEGER_WAIT, timeoutMs: 30_000 },
    );
    assert.deepEqual(await Deno.readFile(backendFile), layer.bytes);
    // The write-back span of the restarted process is in the push's trace, under its commit.
    const pidOf = (s: SpanNode) => s.resource["process.pid"];
    const tree = await uploadTrace(
      jaeger,
      layer.digest.toString(),
      8,
      (s) => s.status !== "error" && pidOf(s) === restarted.process.pid,
    );
    const uploads = findSpans(tree, (s) => s.name === SPAN.backendUpload);
    assert.ok(uploads.length >= 1, formatTree(tree));
    const commit = findSpans(
      tree,
      (s) =>
        s.kind === "server" && s.name === "PUT /namespace/{namespace}/blobs/{digest}/uploads/{uid}",
    );
    assert.ok(
      uploads.some((u) => commit.some((c) => c.spanId === u.parentSpanId)),
      formatTree(tree),
    );
    assert.ok(
      uploads.some((u) => pidOf(u) === restarted.process.pid),
      `no backend.upload from the restarted origin (pid ${restarted.process.pid}):\n${
        formatTree(tree, { attributes: true })
      }`,
    );
  } finally {
    await group.stopAll();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
