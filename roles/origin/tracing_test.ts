import { createLogger } from "../../common/log.ts";
import assert from "node:assert/strict";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace";
import { bytesSource, OriginClusterClient } from "../../cluster/blob_client.ts";
import { serveTestfs } from "../../storage/backend/testfs_server.ts";
import { digestOfBytes } from "../../storage/digest.ts";
import { freePorts } from "../../tests/harness/procs.ts";
import { ATTR, initTracing, SPAN, type TracingRuntime, withSpan } from "../../tracing/mod.ts";
import { exists } from "../../tests/harness/fs.ts";
import { waitFor } from "../../tests/harness/wait.ts";
import { startTestOrigin, startTestRing, type TestOrigin } from "./_test_util.ts";
import { testTracingConfig } from "../../tracing/_test_util.ts";

const enc = new TextEncoder();
const COMMIT = "PUT /namespace/{namespace}/blobs/{digest}/uploads/{uid}";

function setup(): { exporter: InMemorySpanExporter; runtime: TracingRuntime } {
  const exporter = new InMemorySpanExporter();
  const runtime = initTracing(
    testTracingConfig("origin"),
    { role: "origin", logger: createLogger({ role: "origin", write: () => {} }), exporter },
  );
  return { exporter, runtime };
}

function one(spans: ReadableSpan[], name: string, filter = (_s: ReadableSpan) => true) {
  const found = spans.filter((s) => s.name === name && filter(s));
  assert.equal(found.length, 1, `exactly one ${name}: ${spans.map((s) => s.name).join(", ")}`);
  return found[0];
}

function parentOf(span: ReadableSpan): string | undefined {
  return span.parentSpanContext?.spanId;
}

Deno.test("origin tracing: the push trace covers cache write, metainfo, replication and backend.upload", async () => {
  const { exporter, runtime } = setup();
  const dir = await Deno.makeTempDir({ prefix: "kraken-origin-trace-" });
  const testfs = serveTestfs({ root: `${dir}/testfs` });
  const origins: TestOrigin[] = [];
  try {
    origins.push(
      ...await startTestRing(2, {
        backends: [{ namespace: ".*", backend: { testfs: { addr: testfs.addr, root: "b" } } }],
        writeback: { poll_interval: "50ms" },
      }, { baseDir: dir, tracing: runtime }),
    );
    const hosts = origins.map((o) => o.advertise);
    const data = enc.encode("traced layer");
    const digest = await digestOfBytes(data);
    const cluster = new OriginClusterClient({ hosts });
    const rootTrace = await withSpan(SPAN.proxyCommitUpload, {}, async (span) => {
      await cluster.uploadBlob("TODO", digest, bytesSource(data));
      return span.spanContext().traceId;
    });
    await waitFor("write-back", () => exists(`${dir}/testfs/b/${digest.hex}`));
    await waitFor("backend.upload span", async () => {
      await runtime.forceFlush();
      return exporter.getFinishedSpans().some((s) => s.name === SPAN.backendUpload);
    });
    const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === rootTrace);

    const store = one(spans, SPAN.originStoreBlob);
    assert.deepEqual(
      {
        namespace: store.attributes.namespace,
        digest: store.attributes.digest,
        size: store.attributes.size,
        replicate: store.attributes.replicate,
      },
      { namespace: "TODO", digest: digest.toString(), size: data.length, replicate: true },
    );
    // Client span → server span of the public commit, below origin.store_blob.
    const commitServer = one(spans, COMMIT, (s) => s.kind === 1 /* SERVER */);
    const commitClient = one(spans, COMMIT, (s) => s.kind === 2 /* CLIENT */);
    assert.equal(parentOf(commitClient), store.spanContext().spanId);
    assert.equal(parentOf(commitServer), commitClient.spanContext().spanId);

    const cacheWrite = one(
      spans,
      SPAN.originCacheWrite,
      (s) => parentOf(s) === commitServer.spanContext().spanId,
    );
    assert.equal(cacheWrite.attributes.size, data.length);
    assert.equal(cacheWrite.attributes.namespace, "TODO");
    const metainfo = one(
      spans,
      SPAN.originGenerateMetainfo,
      (s) => parentOf(s) === commitServer.spanContext().spanId,
    );
    assert.equal(metainfo.attributes.pieces, 1);
    const replicate = one(spans, SPAN.originReplicate);
    assert.equal(parentOf(replicate), commitServer.spanContext().spanId);
    assert.ok(hosts.includes(String(replicate.attributes[ATTR.replicationReplica])));
    // The replica's duplicate commit joins the same trace below origin.replicate's client span.
    const dupRoute = "PUT /internal/duplicate/namespace/{namespace}/blobs/{digest}/uploads/{uid}";
    const dupClient = one(spans, dupRoute, (s) => s.kind === 2);
    assert.equal(parentOf(dupClient), replicate.spanContext().spanId);
    const dupServer = one(spans, dupRoute, (s) => s.kind === 1);
    assert.equal(parentOf(dupServer), dupClient.spanContext().spanId);
    one(spans, SPAN.originCacheWrite, (s) => parentOf(s) === dupServer.spanContext().spanId);

    // The asynchronous write-back is a real span in the push trace, child of the commit request.
    const upload = one(spans, SPAN.backendUpload);
    assert.equal(parentOf(upload), commitServer.spanContext().spanId);
    assert.equal(upload.attributes.backend_type, "testfs");
    assert.equal(upload.attributes.bucket, `${testfs.addr}/b`);
    assert.equal(upload.attributes.namespace, "TODO");
    assert.equal(upload.attributes.digest, digest.toString());
    assert.equal(upload.attributes.size, data.length);
    assert.equal(upload.attributes[ATTR.writebackResult], "uploaded");
    assert.equal(typeof upload.attributes.duration_ms, "number");
    // Its backend HTTP call is traced below it.
    const post = one(spans, "POST /files/{path+}");
    assert.equal(parentOf(post), upload.spanContext().spanId);
  } finally {
    for (const o of origins) await o.stop();
    await testfs.shutdown();
    await runtime.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("origin tracing: backend.upload joins the push trace after a restart", async () => {
  const { exporter, runtime } = setup();
  const dir = await Deno.makeTempDir({ prefix: "kraken-origin-trace-" });
  const [port, testfsPort] = freePorts(2);
  const config = {
    listen: { host: "127.0.0.1", port },
    storage: { root: "store" },
    peer: { host: "127.0.0.1", port: 0 },
    backends: [{
      namespace: ".*",
      backend: { testfs: { addr: `127.0.0.1:${testfsPort}`, root: "b" } },
    }],
    // Retries only at start-up: the first instance must not succeed after its failed attempt.
    writeback: { poll_interval: "1h", retry_interval: "0ms" },
  };
  let testfs: ReturnType<typeof serveTestfs> | undefined;
  let origin = await startTestOrigin(config, { baseDir: dir, tracing: runtime });
  try {
    const data = enc.encode("written back after a restart");
    const digest = await digestOfBytes(data);
    const cluster = new OriginClusterClient({ hosts: [origin.addr] });
    const traceId = await withSpan(SPAN.proxyCommitUpload, {}, async (span) => {
      await cluster.uploadBlob("ns", digest, bytesSource(data));
      return span.spanContext().traceId;
    });
    // The backend is down: the first attempt fails and the task stays in the database.
    await waitFor(
      "failed write-back attempt",
      () => origin.logs.some((l) => l.includes('"msg":"write-back failed"')),
    );
    await origin.stop();

    testfs = serveTestfs({ root: `${dir}/testfs`, port: testfsPort });
    origin = await startTestOrigin(config, { baseDir: dir, tracing: runtime });
    await waitFor("write-back after restart", () => exists(`${dir}/testfs/b/${digest.hex}`));
    await waitFor("spans exported", async () => {
      await runtime.forceFlush();
      return exporter.getFinishedSpans().some((s) =>
        s.name === SPAN.backendUpload && s.attributes[ATTR.writebackResult] === "uploaded"
      );
    });
    const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    const commitServer = one(spans, COMMIT, (s) => s.kind === 1);
    const uploads = spans.filter((s) => s.name === SPAN.backendUpload);
    assert.equal(uploads.length, 2, "the failed attempt and the one after the restart");
    for (const u of uploads) assert.equal(parentOf(u), commitServer.spanContext().spanId);
    assert.equal(uploads.filter((u) => u.status.code === 2 /* ERROR */).length, 1);
  } finally {
    await origin.stop();
    await testfs?.shutdown();
    await runtime.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
