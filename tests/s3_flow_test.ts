/**
 * The `s3` backend end to end (issue 10), against moto's S3 server with authentication on:
 *
 * - a push through the proxy lands every blob in the bucket (listed through the S3 API),
 *   byte-identical; an image only the bucket holds pulls through an agent from cold origins, in one
 *   trace with the origin's `backend.download` and its `GetObject` client span;
 * - an origin killed (SIGKILL) during the multipart write-back of a 256 MiB blob resumes after a
 *   restart: the parts sent, counted in the server's log, are at most the parts of the blob + 1,
 *   and the resumed `backend.upload` (with `kraken.backend.parts_resumed`) is in the push's trace;
 * - a multipart upload no write-back task will resume (left in the bucket) is aborted by the
 *   origin's sweep at start-up, counted and logged; the upload of a pending task is kept;
 * - refused credentials with `must_ready` stop start-up naming the entry; a missing bucket leaves the
 *   write-back pending and visible (log, metrics) until the bucket exists;
 * - an endpoint answering 503 `SlowDown` for a while (a relay in front of the server): requests are
 *   retried, the write-back waits, and every blob arrives once it answers again.
 */

import assert from "node:assert/strict";
import {
  waitForBackendDownloadTrace,
  waitForBackendUploadTrace,
} from "./harness/backend_traces.ts";
import { runLoneOrigin, startDownloadCluster, startUploadCluster } from "./harness/cluster.ts";
import { startJaeger } from "./harness/jaeger.ts";
import { makeImage, pullImage, pushImage } from "./harness/oci.ts";
import { ProcessGroup } from "./harness/procs.ts";
import { s3BackendBlock, s3Env, type S3Server, startFlakyRelay, startS3 } from "./harness/s3.ts";
import { findSpans, formatTree } from "./harness/trace_tree.ts";
import { waitFor } from "./harness/wait.ts";
import { ATTR, SPAN } from "../tracing/names.ts";

const MiB = 1024 * 1024;
const BUCKET = "kraken-blobs";

function s3Block(s3: { endpoint: string }, extra: Record<string, unknown> = {}) {
  return s3BackendBlock(s3, BUCKET, extra);
}

/** `UploadPart` requests answered 200 for `key`, from the server's log. */
function partsSent(s3: S3Server, key: string): number {
  return s3.requests().filter((r) =>
    r.method === "PUT" && r.status === 200 && r.target.startsWith(`/${BUCKET}/${key}?`) &&
    r.target.includes("partNumber=")
  ).length;
}

Deno.test("s3 backend: push lands every blob in the bucket; a bucket-only image pulls through an agent in one trace", async () => {
  await using jaeger = await startJaeger();
  await using group = new ProcessGroup();
  const s3 = await startS3({ buckets: [BUCKET] });
  const dir = await Deno.makeTempDir({ prefix: "kraken-s3-flow-" });
  try {
    const cluster = await startDownloadCluster({
      dir,
      group,
      otlpEndpoint: jaeger.otlpHttpEndpoint,
      agents: 1,
      env: s3Env(s3),
      originBackend: () => s3Block(s3),
    });
    const pushed = await makeImage({ layers: 2, layerSize: 512 * 1024 });
    await pushImage(`http://${cluster.proxy.addr}`, "demo/pushed", "v1", pushed, {
      chunkSize: 256 * 1024,
    });
    const blobs = [pushed.config, ...pushed.layers, pushed.manifest];
    await waitFor("every pushed blob in the bucket", async () => {
      const keys = new Set(await s3.listKeys(BUCKET));
      return blobs.every((b) => keys.has(`kraken/${b.digest.hex}`));
    }, { timeoutMs: 30_000, intervalMs: 250 });
    for (const blob of blobs) {
      assert.deepEqual(await s3.getObject(BUCKET, `kraken/${blob.digest.hex}`), blob.bytes);
    }

    // An image only the bucket holds (no origin has seen it); its tag is in the build-index's backend.
    const cold = await makeImage({ layers: 2, layerSize: 300 * 1024 });
    for (const blob of [cold.config, ...cold.layers, cold.manifest]) {
      await s3.putObject(BUCKET, `kraken/${blob.digest.hex}`, blob.bytes);
    }
    await cluster.putTestfsTag("demo/cold", "v1", cold.manifest.digest.toString());
    const pulled = await pullImage(`http://${cluster.agents[0].registry}`, "demo/cold", "v1");
    assert.equal(pulled.manifestDigest, cold.manifest.digest.toString());
    for (const blob of [cold.config, ...cold.layers]) {
      assert.deepEqual(pulled.blobs.get(blob.digest.toString()), blob.bytes);
    }

    const layer = cold.layers[0].digest;
    const { trace, span } = await waitForBackendDownloadTrace(jaeger, layer.toString());
    assert.equal(span.attributes[ATTR.backendType], "s3", formatTree(trace));
    assert.equal(span.attributes[ATTR.bucket], BUCKET, formatTree(trace));
    assert.equal(span.attributes[ATTR.backendKey], `kraken/${layer.hex}`, formatTree(trace));
    const get = findSpans(trace, (s) =>
      s.attributes[ATTR.rpcMethod] === "GetObject" &&
      s.attributes[ATTR.awsS3Key] === `kraken/${layer.hex}`)[0];
    assert.ok(get, formatTree(trace));
    assert.equal(get.attributes[ATTR.rpcSystem], "aws-api");
    assert.equal(get.attributes[ATTR.rpcService], "S3");
    assert.equal(get.attributes[ATTR.awsS3Bucket], BUCKET);
    // Credentials are nowhere in the trace.
    assert.ok(!JSON.stringify(trace).includes(s3.credentials.secretAccessKey));
  } finally {
    await group.stopAll();
    await s3.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("s3 backend: an origin killed during a multipart write-back resumes it after a restart", async () => {
  await using jaeger = await startJaeger();
  await using group = new ProcessGroup();
  const s3 = await startS3({ buckets: [BUCKET] });
  const dir = await Deno.makeTempDir({ prefix: "kraken-s3-kill-" });
  try {
    const partSize = 8 * MiB;
    const cluster = await startUploadCluster({
      dir,
      group,
      origins: 1,
      otlpEndpoint: jaeger.otlpHttpEndpoint,
      env: s3Env(s3),
      originBackend: () => s3Block(s3, { upload_part_size: "8MB", upload_concurrency: 1 }),
    });
    const image = await makeImage({ layers: 1, layerSize: 256 * MiB });
    const layer = image.layers[0];
    const total = Math.ceil(layer.bytes.length / partSize);
    const key = `kraken/${layer.digest.hex}`;
    await pushImage(`http://${cluster.proxy.addr}`, "demo/big", "v1", image, {
      chunkSize: 16 * MiB,
    });
    await waitFor("a third of the parts stored", () => partsSent(s3, key) >= total / 3, {
      timeoutMs: 120_000,
      intervalMs: 100,
    });
    cluster.origins[0].process.kill("SIGKILL");
    await cluster.origins[0].process.stopped;
    const beforeRestart = partsSent(s3, key);
    assert.ok(
      beforeRestart < total,
      `the upload finished before the kill (${beforeRestart} parts)`,
    );
    await cluster.restartOrigin(0);
    await waitFor("the blob in the bucket", async () => (await s3.listKeys(BUCKET)).includes(key), {
      timeoutMs: 180_000,
      intervalMs: 500,
    });
    const sent = partsSent(s3, key);
    assert.ok(sent <= total + 1, `${sent} parts sent for ${total} (killed after ${beforeRestart})`);
    assert.ok(sent >= total, `${sent} parts sent for ${total}`);
    const stored = await s3.getObject(BUCKET, key);
    assert.equal(stored.length, layer.bytes.length);
    assert.ok(stored.every((b, i) => b === layer.bytes[i]), "the stored blob differs");

    // The resumed write-back joined the push's trace (its context was stored with the task) and
    // says how many parts it found stored.
    const { trace, span } = await waitForBackendUploadTrace(
      jaeger,
      layer.digest.toString(),
      (s) => s.attributes[ATTR.backendPartsResumed] !== undefined,
      { timeoutMs: 30_000 },
    );
    const resumed = span.attributes[ATTR.backendPartsResumed] as number;
    assert.ok(
      resumed >= beforeRestart && resumed < total,
      `${resumed} resumed\n${formatTree(trace)}`,
    );
    assert.equal(span.attributes[ATTR.backendParts], total, formatTree(trace));
    assert.equal(
      (span.attributes[ATTR.backendPartsSent] as number) + resumed,
      total,
      formatTree(trace),
    );
    assert.equal(span.attributes[ATTR.backendKey], key, formatTree(trace));
    assert.equal(span.attributes[ATTR.writebackResult], "uploaded", formatTree(trace));
    assert.ok(
      findSpans(trace, (s) => s.service === "kraken-proxy" && s.name === SPAN.proxyCommitUpload)
        .length > 0,
      formatTree(trace),
    );
    // The restarted origin's sweep left the upload of its pending task alone.
    const metrics = await (await fetch(`http://${cluster.origins[0].addr}/metrics`)).text();
    assert.match(metrics, /kraken_backend_abandoned_uploads_aborted_total\{backend="s3"\} 0/);
  } finally {
    await group.stopAll();
    await s3.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("s3 backend: an origin aborts multipart uploads no write-back task will resume", async () => {
  await using group = new ProcessGroup();
  const s3 = await startS3({ buckets: [BUCKET] });
  const dir = await Deno.makeTempDir({ prefix: "kraken-s3-sweep-" });
  try {
    // Left by a write-back whose task is gone (its blob left the cache, its database was lost).
    const orphan = `kraken/${"ab".repeat(32)}`;
    await s3.createMultipartUpload(BUCKET, orphan);
    // Not under the origins' layout: not theirs to sweep.
    await s3.createMultipartUpload(BUCKET, "other-tool/upload");
    const cluster = await startUploadCluster({
      dir,
      group,
      origins: 1,
      env: s3Env(s3),
      // moto reports every upload as started in 2010: any age counts as old here.
      originBackend: () => s3Block(s3, { multipart_sweep_min_age: "1h" }),
    });
    const origin = cluster.origins[0];
    await waitFor(
      "the start-up sweep in the log",
      () => /"msg":"aborted abandoned uploads"/.test(origin.process.log()),
      { timeoutMs: 20_000, intervalMs: 250 },
    );
    assert.match(origin.process.log(), /"aborted":1,"kept":0,"limited":false/);
    assert.deepEqual((await s3.listMultipartUploads(BUCKET)).map((u) => u.key), [
      "other-tool/upload",
    ]);
    const metrics = await (await fetch(`http://${origin.addr}/metrics`)).text();
    assert.match(metrics, /kraken_backend_abandoned_uploads_aborted_total\{backend="s3"\} 1/);
  } finally {
    await group.stopAll();
    await s3.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("s3 backend: refused credentials stop a must_ready origin; a missing bucket loses nothing", async () => {
  await using group = new ProcessGroup();
  const s3 = await startS3({ buckets: [BUCKET] });
  const dir = await Deno.makeTempDir({ prefix: "kraken-s3-fail-" });
  try {
    // must_ready with a secret the server refuses: the origin does not start and says which entry.
    const secret = "wrong-secret-0123456789abcdef";
    const refused = await runLoneOrigin({
      dir,
      group,
      name: "refused-origin",
      backend: s3Block(s3),
      env: { AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: secret },
    });
    assert.equal(refused.code, 1, refused.log);
    assert.match(refused.log, /backends\[0\] \(namespace \.\*, s3 kraken-blobs\) is not ready/);
    assert.match(refused.log, /status 403/);
    assert.ok(!refused.log.includes(secret), "the secret is in the log");

    // No must_ready and a bucket that does not exist yet: the write-back waits, visibly.
    const cluster = await startUploadCluster({
      dir,
      group,
      origins: 1,
      env: s3Env(s3),
      originBackend: () => s3Block(s3, { bucket: "late-bucket" }),
    });
    const image = await makeImage({ layers: 1, layerSize: 64 * 1024 });
    await pushImage(`http://${cluster.proxy.addr}`, "demo/late", "v1", image);
    const origin = cluster.origins[0];
    await waitFor(
      "the write-back failure in the log",
      async () => /NoSuchBucket/.test(await Deno.readTextFile(`${dir}/origin1.log`)),
      {
        timeoutMs: 20_000,
        intervalMs: 250,
      },
    );
    const metrics = await (await fetch(`http://${origin.addr}/metrics`)).text();
    assert.match(metrics, /kraken_backend_request_failures_total\{backend="s3"\} [1-9]/);
    await s3.createBucket("late-bucket");
    const keys = [image.config, ...image.layers, image.manifest].map((b) =>
      `kraken/${b.digest.hex}`
    );
    await waitFor("every blob in the late bucket", async () => {
      const listed = new Set(await s3.listKeys("late-bucket"));
      return keys.every((k) => listed.has(k));
    }, { timeoutMs: 30_000, intervalMs: 250 });
  } finally {
    await group.stopAll();
    await s3.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("s3 backend: an endpoint answering 503 SlowDown for a while loses nothing", async () => {
  await using group = new ProcessGroup();
  const s3 = await startS3({ buckets: [BUCKET] });
  const relay = startFlakyRelay(s3.endpoint, { failing: true });
  const dir = await Deno.makeTempDir({ prefix: "kraken-s3-503-" });
  try {
    const cluster = await startUploadCluster({
      dir,
      group,
      origins: 1,
      env: s3Env(s3),
      originBackend: () => s3Block({ endpoint: relay.endpoint }),
    });
    const image = await makeImage({ layers: 2, layerSize: 128 * 1024 });
    await pushImage(`http://${cluster.proxy.addr}`, "demo/slow", "v1", image);
    await waitFor(
      "the write-back refused with 503",
      // The stat comes first: a HEAD answer has no body, so the log shows the status.
      async () =>
        relay.refused >= 6 && /status 503/.test(await Deno.readTextFile(`${dir}/origin1.log`)),
      {
        timeoutMs: 30_000,
        intervalMs: 250,
      },
    );
    const metrics = await (await fetch(`http://${cluster.origins[0].addr}/metrics`)).text();
    assert.match(metrics, /kraken_backend_retries_total\{backend="s3"\} [1-9]/);
    assert.deepEqual(await s3.listKeys(BUCKET), []);
    relay.failing = false;
    const blobs = [image.config, ...image.layers, image.manifest];
    await waitFor("every blob in the bucket", async () => {
      const listed = new Set(await s3.listKeys(BUCKET));
      return blobs.every((b) => listed.has(`kraken/${b.digest.hex}`));
    }, { timeoutMs: 60_000, intervalMs: 250 });
    for (const blob of blobs) {
      assert.deepEqual(await s3.getObject(BUCKET, `kraken/${blob.digest.hex}`), blob.bytes);
    }
  } finally {
    await group.stopAll();
    await relay.close();
    await s3.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
