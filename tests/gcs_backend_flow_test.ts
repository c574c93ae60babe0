/**
 * The `gcs` backend end to end (issue 10) against fake-gcs-server, with real role processes:
 *
 * - a push through the proxy is written back: every blob is in the bucket (listed through the
 *   JSON API, page by page), byte-identical; a blob only the bucket holds pulls through an agent
 *   with cold origins, in one trace with the origin's `backend.download`;
 * - with `must_ready: true`, a missing bucket or a refused service-account key stops the origin
 *   at start-up with a message naming the entry; without it, the write-back stays pending and is
 *   retried (logs, `kraken_backend_request_failures_total`) until the bucket exists, and nothing
 *   is lost;
 * - a connection the server drops mid-upload (a relay that cuts after N bytes): the upload goes on
 *   from what the server holds and the object is byte-identical.
 */

import assert from "node:assert/strict";
import { waitForBackendDownloadTrace } from "./harness/backend_traces.ts";
import { runLoneOrigin, startDownloadCluster, startUploadCluster } from "./harness/cluster.ts";
import { startFakeGcs, startGcsTokenServer } from "./harness/gcs.ts";
import { startJaeger } from "./harness/jaeger.ts";
import { makeImage, randomBytes, writeOciLayout } from "./harness/oci.ts";
import { ProcessGroup } from "./harness/procs.ts";
import { skopeo } from "./harness/skopeo.ts";
import { startSlowRelay } from "./harness/slow_relay.ts";
import { findSpans, formatTree } from "./harness/trace_tree.ts";
import { waitFor } from "./harness/wait.ts";
import { bytesSource, OriginClient } from "../cluster/blob_client.ts";
import { digestOfBytes } from "../storage/digest.ts";
import { ATTR } from "../tracing/names.ts";

/** The origins' and build-index's `gcs` blocks on one bucket: blobs at `/`, tags in registry layout. */
function gcsBackends(endpoint: string, extra: Record<string, unknown> = {}) {
  return {
    originBackend: () => ({
      gcs: { bucket: "kraken", root_directory: "/", name_path: "identity", endpoint, ...extra },
    }),
    buildIndexBackend: () => ({
      gcs: { bucket: "kraken", root_directory: "/", name_path: "docker_tag", endpoint, ...extra },
    }),
  };
}

Deno.test("gcs backend: a push lands in the bucket; a blob only the bucket holds pulls in one trace", async () => {
  await using jaeger = await startJaeger();
  await using gcs = await startFakeGcs({ buckets: ["kraken"] });
  await using group = new ProcessGroup();
  const dir = await Deno.makeTempDir({ prefix: "kraken-gcs-" });
  try {
    const cluster = await startDownloadCluster({
      dir,
      group,
      otlpEndpoint: jaeger.otlpHttpEndpoint,
      agents: 1,
      ...gcsBackends(gcs.endpoint),
    });
    const image = await makeImage({ layers: 3, layerSize: 512 * 1024 });
    await writeOciLayout(`${dir}/image`, image);
    await skopeo([
      "copy",
      "--dest-tls-verify=false",
      `oci:${dir}/image:latest`,
      `docker://${cluster.proxy.addr}/demo/app:v1`,
    ]);
    const blobs = [image.manifest, image.config, ...image.layers];
    // Write-back is asynchronous: wait until the bucket lists every blob (3-name pages).
    const listed = await waitFor("every blob in the bucket", async () => {
      const names = await gcs.listObjects("kraken", "", 3);
      return blobs.every((b) => names.includes(`/${b.digest.hex}`)) ? names : undefined;
    }, { timeoutMs: 30_000, intervalMs: 250 });
    for (const blob of blobs) {
      assert.deepEqual(await gcs.getObject("kraken", `/${blob.digest.hex}`), blob.bytes);
    }
    // The tag went to the bucket too, in the registry layout.
    assert.ok(
      listed.includes("/docker/registry/v2/repositories/demo/app/_manifests/tags/v1/current/link"),
      listed.join("\n"),
    );

    // A second image exists only in the bucket: the origins never saw it.
    const cold = await makeImage({ layers: 2, layerSize: 256 * 1024 });
    for (const blob of [cold.manifest, cold.config, ...cold.layers]) {
      await gcs.putObject("kraken", `/${blob.digest.hex}`, blob.bytes);
    }
    await gcs.putObject(
      "kraken",
      "/docker/registry/v2/repositories/demo/cold/_manifests/tags/v1/current/link",
      new TextEncoder().encode(cold.manifest.digest.toString()),
    );
    await skopeo([
      "copy",
      "--src-tls-verify=false",
      `docker://${cluster.agents[0].registry}/demo/cold:v1`,
      `oci:${dir}/pulled:v1`,
    ]);
    for (const blob of [cold.config, ...cold.layers]) {
      assert.deepEqual(
        await Deno.readFile(`${dir}/pulled/blobs/sha256/${blob.digest.hex}`),
        blob.bytes,
      );
    }
    const layer = cold.layers[0].digest.toString();
    const { trace, span } = await waitForBackendDownloadTrace(jaeger, layer);
    assert.equal(span.attributes[ATTR.backendType], "gcs", formatTree(trace));
    assert.equal(span.attributes[ATTR.bucket], "kraken", formatTree(trace));
    assert.equal(
      span.attributes[ATTR.backendKey],
      `/${cold.layers[0].digest.hex}`,
      formatTree(trace),
    );
    // Its GCS calls are client spans of the storage service.
    const calls = findSpans(
      trace,
      (s) => s.kind === "client" && s.attributes[ATTR.gcpClientService] === "storage",
    );
    assert.ok(
      calls.some((s) => s.name === "GET /storage/v1/b/{bucket}/o/{object}"),
      formatTree(trace),
    );
  } finally {
    await group.stopAll();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("gcs backend: must_ready stops an origin naming the entry; otherwise write-back waits for the bucket", async () => {
  await using gcs = await startFakeGcs({ buckets: ["present"] });
  await using tokens = await startGcsTokenServer();
  await using group = new ProcessGroup();
  const dir = await Deno.makeTempDir({ prefix: "kraken-gcs-ready-" });
  try {
    // A missing bucket.
    const missing = await runLoneOrigin({
      dir,
      group,
      name: "missing",
      backend: { gcs: { bucket: "absent", root_directory: "/", endpoint: gcs.endpoint } },
    });
    assert.notEqual(missing.code, 0, missing.log);
    assert.match(missing.log, /backends\[0\] \(namespace \.\*, gcs[^)]*\) is not ready/);
    assert.match(missing.log, /404/);

    // A key the token endpoint does not accept (signed by another key).
    const other = await startGcsTokenServer();
    const foreignKey = { ...JSON.parse(other.keyJson), token_uri: tokens.tokenUri };
    await other.close();
    const refused = await runLoneOrigin({
      dir,
      group,
      name: "refused",
      backend: {
        gcs: { bucket: "present", root_directory: "/", endpoint: gcs.endpoint, username: "kraken" },
      },
      auth: { gcs: { kraken: { gcs: { access_blob: JSON.stringify(foreignKey) } } } },
    });
    assert.notEqual(refused.code, 0, refused.log);
    assert.match(refused.log, /backends\[0\] \(namespace \.\*, gcs[^)]*\) is not ready/);
    assert.match(refused.log, /invalid_grant/);
    assert.ok(!refused.log.includes("PRIVATE KEY"), "the key must never be logged");
    assert.ok(tokens.refused >= 1);

    // Without must_ready the origin runs; the write-back waits until the bucket exists.
    const cluster = await startUploadCluster({
      dir: `${dir}/cluster`,
      group,
      origins: 1,
      writebackInterval: "500ms",
      originBackend: () => ({
        gcs: {
          bucket: "later",
          root_directory: "/",
          endpoint: gcs.endpoint,
          username: "kraken",
        },
      }),
      originExtra: { auth: { gcs: { kraken: { gcs: { access_blob: tokens.keyJson } } } } },
    });
    const blob = randomBytes(300 * 1024);
    const digest = await digestOfBytes(blob);
    const origin = `http://${cluster.origins[0].addr}`;
    await new OriginClient(cluster.origins[0].addr).uploadBlob(
      "demo/app",
      digest,
      bytesSource(blob),
    );
    const failing = await waitFor("a failed write-back in the metrics", async () => {
      const text = await (await fetch(`${origin}/metrics`)).text();
      const m = /kraken_backend_request_failures_total\{[^}]*backend="gcs"[^}]*\} (\d+)/.exec(text);
      return m && Number(m[1]) > 0 ? text : undefined;
    }, { timeoutMs: 20_000, intervalMs: 250 });
    assert.ok(failing);
    assert.match(cluster.origins[0].process.log(), /backend request failed/);
    assert.equal(await gcs.getObject("later", `/${digest.hex}`), undefined);
    await gcs.createBucket("later");
    const stored = await waitFor(
      "the blob written back once the bucket exists",
      () => gcs.getObject("later", `/${digest.hex}`),
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    assert.deepEqual(stored, blob);
    assert.ok(tokens.granted.length >= 1, "the origin used the service-account key");
  } finally {
    await group.stopAll();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("gcs backend: a connection dropped mid-upload — the upload goes on, nothing lost", async () => {
  await using gcs = await startFakeGcs({ buckets: ["kraken"] });
  await using group = new ProcessGroup();
  const dir = await Deno.makeTempDir({ prefix: "kraken-gcs-cut-" });
  const relay = startSlowRelay(gcs.addr, { cutAfterBytes: 700 * 1024 });
  try {
    const cluster = await startUploadCluster({
      dir,
      group,
      origins: 1,
      writebackInterval: "500ms",
      originBackend: () => ({
        gcs: {
          bucket: "kraken",
          root_directory: "/",
          endpoint: `http://${relay.addr}`,
          upload_part_size: "256KB",
        },
      }),
    });
    const blob = randomBytes(2 * 1024 * 1024 + 12345);
    const digest = await digestOfBytes(blob);
    await new OriginClient(cluster.origins[0].addr).uploadBlob(
      "demo/app",
      digest,
      bytesSource(blob),
    );
    // fake-gcs-server holds a short object for a moment when the offset query finishes the
    // session (the backend then deletes it and starts over): judge the bucket once the origin
    // reports the write-back done.
    await waitFor("the write-back done", () => {
      const log = cluster.origins[0].process.log();
      return log.includes('"msg":"written back"') && log.includes(digest.hex);
    }, { timeoutMs: 30_000, intervalMs: 250 });
    const stored = await gcs.getObject("kraken", `/${digest.hex}`);
    assert.ok(stored, "the blob is in the bucket");
    assert.ok(relay.cut, "the relay cut a connection");
    assert.equal(stored.length, blob.length);
    assert.deepEqual(stored, blob);
    // The cut chunk failed, the offset was asked for, and the upload went on: fake-gcs-server
    // finishes the session on that query (short), so here it goes on by starting over, which is
    // counted and logged as a retry.
    const log = cluster.origins[0].process.log();
    assert.match(log, /"msg":"backend request failed"[^\n]*"method":"PUT","route":"\{session\}"/);
    assert.match(log, /resumable upload finished with \d+ of 2109497 bytes; starting over/);
    const metrics = await (await fetch(`http://${cluster.origins[0].addr}/metrics`)).text();
    assert.match(metrics, /kraken_backend_retries_total\{[^}]*backend="gcs"[^}]*\} [1-9]/);
    console.log(
      `gcs cut test: ${relay.bytesToServer} bytes to the server for a ${blob.length}-byte blob, ` +
        `${relay.connections} connections`,
    );
  } finally {
    await relay.close();
    await group.stopAll();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
