import assert from "node:assert/strict";
import { SpanStatusCode } from "@opentelemetry/api";
import { Router } from "../../http/router.ts";
import { BlobStore } from "../../storage/blob_store.ts";
import { digestOfBytes } from "../../storage/digest.ts";
import { collectSpans } from "../../tracing/_test_util.ts";
import { ATTR, SPAN } from "../../tracing/mod.ts";
import { AgentBlobs } from "./blobs.ts";

const SERVER_SPAN = "GET /namespace/{namespace}/blobs/{digest}";

async function withBlobRoute(
  fn: (
    get: () => Promise<{ res: Response; trackerCallbacks: number }>,
    spans: () => Promise<string[]>,
    collector: ReturnType<typeof collectSpans>,
    size: number,
  ) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "agent-blobs-" });
  const collector = collectSpans("agent");
  try {
    const store = await BlobStore.open({ root });
    // Streamed (not read at once) and in several of the store's 1 MiB chunks.
    const bytes = new Uint8Array(3 * 1024 * 1024 + 5).map((_, i) => i * 7);
    const digest = await digestOfBytes(bytes);
    await store.putBlob(digest, bytes);
    const blobs = new AgentBlobs(store, { download: () => Promise.reject(new Error("cached")) });
    let state: Record<string, unknown> = {};
    const router = new Router()
      .use((ctx, next) => {
        state = ctx.state;
        return next();
      })
      .use(collector.runtime.serverMiddleware())
      .get(
        "/namespace/{namespace}/blobs/{digest}",
        (ctx) => blobs.serve(ctx, ctx.params.namespace, digest),
      );
    const get = async () => {
      const res = await router.handle(
        new Request(`http://agent/namespace/ns/blobs/${digest}`),
      );
      const tracker = state["tracing.bodyTracker"] as { callbacks: unknown[] } | undefined;
      return { res, trackerCallbacks: tracker?.callbacks.length ?? 0 };
    };
    const names = async () => (await collector.spans()).map((s) => s.name);
    await fn(get, names, collector, bytes.length);
  } finally {
    await collector.runtime.shutdown();
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("agent blobs: stream_response and download_blob end with the body, in the request's one body tracker", async () => {
  await withBlobRoute(async (get, names, collector, size) => {
    const { res, trackerCallbacks } = await get();
    // stream_response, the request metrics and the server span wait on the same tracker.
    assert.equal(trackerCallbacks, 3);
    const reader = res.body!.getReader();
    let received = (await reader.read()).value!.byteLength;
    assert.ok(received < size);
    assert.deepEqual(
      (await names()).filter((n) => n !== SPAN.agentCacheLookup),
      [],
      "nothing but the cache lookup ends before the body does",
    );
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      received += value.byteLength;
    }
    assert.equal(received, size);
    const spans = await collector.spans();
    assert.deepEqual(
      spans.map((s) => s.name).sort(),
      [SERVER_SPAN, SPAN.agentCacheLookup, SPAN.agentDownloadBlob, SPAN.agentStreamResponse].sort(),
    );
    const stream = spans.find((s) => s.name === SPAN.agentStreamResponse)!;
    assert.equal(stream.attributes[ATTR.bytesSent], size);
    assert.equal(stream.attributes[ATTR.size], size);
    assert.equal(stream.status.code, SpanStatusCode.UNSET);
    const download = spans.find((s) => s.name === SPAN.agentDownloadBlob)!;
    assert.equal(download.attributes[ATTR.size], size);
    const server = spans.find((s) => s.name === SERVER_SPAN)!;
    assert.equal(stream.parentSpanContext?.spanId, download.spanContext().spanId);
    assert.equal(download.parentSpanContext?.spanId, server.spanContext().spanId);
  });
});

Deno.test("agent blobs: a body cut short fails stream_response with the bytes handed on", async () => {
  await withBlobRoute(async (get, _names, collector, size) => {
    const { res } = await get();
    const reader = res.body!.getReader();
    const first = (await reader.read()).value!.byteLength;
    await reader.cancel(new Error("client went away"));
    const spans = await collector.spans();
    const stream = spans.find((s) => s.name === SPAN.agentStreamResponse)!;
    // What went through the tracker: the chunk read, plus any the body stream read ahead.
    const sent = stream.attributes[ATTR.bytesSent] as number;
    assert.ok(sent >= first && sent < size, `${first} ≤ ${sent} < ${size}`);
    assert.equal(stream.status.code, SpanStatusCode.ERROR);
    assert.ok(spans.some((s) => s.name === SPAN.agentDownloadBlob));
    assert.ok(spans.some((s) => s.name === SERVER_SPAN));
  });
});
