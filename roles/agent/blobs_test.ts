import assert from "node:assert/strict";
import { SpanStatusCode } from "@opentelemetry/api";
import { fileBodyOf } from "../../http/file_response.ts";
import { Router } from "../../http/router.ts";
import { serveHttp } from "../../http/serve.ts";
import { BlobStore } from "../../storage/blob_store.ts";
import { digestOfBytes } from "../../storage/digest.ts";
import { collectSpans } from "../../tracing/_test_util.ts";
import { activeSpanIds, ATTR, SPAN } from "../../tracing/mod.ts";
import { waitFor } from "../../tests/harness/wait.ts";
import { AgentBlobs } from "./blobs.ts";

const SERVER_SPAN = "GET /namespace/{namespace}/blobs/{digest}";

/**
 * A router serving `bytes` from a fresh agent cache under `root` through `collector`'s server
 * middleware; a `Range: bytes=a-b` header asks for part of the blob.
 */
async function cachedBlobRouter(
  root: string,
  collector: ReturnType<typeof collectSpans>,
  bytes: Uint8Array,
) {
  const store = await BlobStore.open({ root });
  const digest = await digestOfBytes(bytes);
  await store.putBlob(digest, bytes);
  const blobs = new AgentBlobs(store, { download: () => Promise.reject(new Error("cached")) });
  const router = new Router()
    .use(collector.runtime.serverMiddleware())
    .get(
      "/namespace/{namespace}/blobs/{digest}",
      (ctx) =>
        blobs.serve(ctx, ctx.params.namespace, digest, {
          range: (size) => {
            const header = ctx.req.headers.get("range");
            if (!header) return null;
            const [start, end] = header.replace("bytes=", "").split("-").map(Number);
            return { start, end: Math.min(end, size - 1) };
          },
        }),
    );
  return { router, digest };
}

async function withBlobRoute(
  fn: (
    get: () => Promise<{ res: Response; fileBody: boolean }>,
    spans: () => Promise<string[]>,
    collector: ReturnType<typeof collectSpans>,
    size: number,
  ) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "agent-blobs-" });
  const collector = collectSpans("agent");
  try {
    // Streamed (not read at once) and in several of the store's 1 MiB chunks.
    const bytes = new Uint8Array(3 * 1024 * 1024 + 5).map((_, i) => i * 7);
    const { router, digest } = await cachedBlobRouter(root, collector, bytes);
    const get = async () => {
      const res = await router.handle(
        new Request(`http://agent/namespace/ns/blobs/${digest}`),
      );
      return { res, fileBody: fileBodyOf(res) !== undefined };
    };
    const names = async () => (await collector.spans()).map((s) => s.name);
    await fn(get, names, collector, bytes.length);
  } finally {
    await collector.runtime.shutdown();
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("agent blobs: stream_response and download_blob end with the body, which reaches the listener unwrapped", async () => {
  await withBlobRoute(async (get, names, collector, size) => {
    const { res, fileBody } = await get();
    // stream_response, the request metrics and the server span wait on the file body itself: no
    // wrapper stream, so the listener sends it from the file.
    assert.ok(fileBody);
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

Deno.test("agent blobs: over the listener, whole and ranged GETs are exact and a client going away mid-body still ends every span", async () => {
  const root = await Deno.makeTempDir({ prefix: "agent-blobs-" });
  const collector = collectSpans("agent");
  try {
    const bytes = new Uint8Array(64 * 1024 * 1024).map((_, i) => (i * 31) >> 3);
    const { router, digest } = await cachedBlobRouter(root, collector, bytes);
    const server = await serveHttp({
      hostname: "127.0.0.1",
      port: 0,
      handler: (req, info) => router.handle(req, info),
    });
    try {
      const url = `http://127.0.0.1:${server.addr.port}/namespace/ns/blobs/${digest}`;
      const whole = new Uint8Array(await (await fetch(url)).arrayBuffer());
      assert.ok(whole.length === bytes.length && whole.every((b, i) => b === bytes[i]));
      const ranged = await fetch(url, { headers: { range: "bytes=3000000-3999999" } });
      assert.equal(ranged.status, 206);
      assert.deepEqual(
        new Uint8Array(await ranged.arrayBuffer()),
        bytes.subarray(3000000, 4000000),
      );
      const done = await waitFor("both GETs' spans", async () => {
        const spans = (await collector.spans()).filter((s) => s.name === SPAN.agentStreamResponse);
        return spans.length === 2 ? spans : undefined;
      }, { intervalMs: 20 });
      assert.deepEqual(done.map((s) => s.attributes[ATTR.bytesSent]).sort(), [
        1000000,
        bytes.length,
      ]);
      assert.ok(done.every((s) => s.status.code === SpanStatusCode.UNSET));

      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
      await conn.write(
        new TextEncoder().encode(`GET /namespace/ns/blobs/${digest} HTTP/1.1\r\nhost: x\r\n\r\n`),
      );
      assert.ok((await conn.read(new Uint8Array(65536))) !== null);
      conn.close();
      const spans = await waitFor("the cut GET's spans", async () => {
        const all = await collector.spans();
        return all.filter((s) => s.name === SPAN.agentDownloadBlob).length === 3 &&
            all.filter((s) => s.name === SERVER_SPAN).length === 3
          ? all
          : undefined;
      }, { intervalMs: 20 });
      const failed = (name: string) =>
        spans.filter((s) => s.name === name && s.status.code === SpanStatusCode.ERROR);
      const cut = failed(SPAN.agentStreamResponse);
      assert.equal(cut.length, 1);
      assert.ok((cut[0].attributes[ATTR.bytesSent] as number) < bytes.length);
      assert.equal(failed(SERVER_SPAN).length, 1);
    } finally {
      await server.shutdown();
    }
  } finally {
    await collector.runtime.shutdown();
    await Deno.remove(root, { recursive: true });
  }
});

/**
 * `store` behind a proxy that records the name of every method called on it (the calls still
 * reach the store itself, whose private fields a plain proxy would hide).
 */
function recordingStore(store: BlobStore): { store: BlobStore; calls: string[] } {
  const calls: string[] = [];
  const proxy = new Proxy(store, {
    get(target, key) {
      const value = Reflect.get(target, key, target);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        calls.push(String(key));
        return value.apply(target, args);
      };
    },
  });
  return { store: proxy, calls };
}

Deno.test("agent blobs: a cached GET opens the blob once and takes its size from the open file; a HEAD only stats it", async () => {
  const root = await Deno.makeTempDir({ prefix: "agent-blobs-" });
  try {
    const bytes = new Uint8Array(64 * 1024).map((_, i) => i * 13);
    const digest = await digestOfBytes(bytes);
    const cache = await BlobStore.open({ root });
    await cache.putBlob(digest, bytes);
    const { store, calls } = recordingStore(cache);
    const blobs = new AgentBlobs(store, { download: () => Promise.reject(new Error("cached")) });
    const router = new Router()
      .get("/b", (ctx) => blobs.serve(ctx, "ns", digest, { head: ctx.req.method === "HEAD" }));
    const res = await router.handle(new Request("http://agent/b"));
    assert.equal(res.headers.get("content-length"), String(bytes.length));
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), bytes);
    // Each file-system call is a round trip through the runtime's blocking pool (~70 µs of CPU
    // on the project's VM): the cache lookup is the open itself.
    assert.deepEqual(calls, ["open"]);
    calls.length = 0;
    const head = await router.handle(new Request("http://agent/b", { method: "HEAD" }));
    assert.equal(head.headers.get("content-length"), String(bytes.length));
    assert.deepEqual(calls, ["stat"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("agent blobs: a miss downloads, then serves the downloaded blob; a blob gone again after its download is an error", async () => {
  const root = await Deno.makeTempDir({ prefix: "agent-blobs-" });
  try {
    const bytes = new Uint8Array(1000).map((_, i) => i);
    const digest = await digestOfBytes(bytes);
    const store = await BlobStore.open({ root });
    let downloads = 0;
    const blobs = new AgentBlobs(store, {
      download: async () => {
        if (++downloads === 1) await store.putBlob(digest, bytes);
      },
    });
    const router = new Router().get("/b", (ctx) => blobs.serve(ctx, "ns", digest));
    const res = await router.handle(new Request("http://agent/b"));
    assert.equal(res.status, 200);
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), bytes);
    assert.equal(downloads, 1);
    await store.delete(digest);
    const gone = await router.handle(new Request("http://agent/b"));
    assert.equal(gone.status, 500);
    assert.match(await gone.text(), /vanished from the cache/);
    assert.equal(downloads, 2);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("agent blobs: the download span is active for a miss's P2P download only, not for a cache hit", async () => {
  const root = await Deno.makeTempDir({ prefix: "agent-blobs-" });
  const collector = collectSpans("agent");
  try {
    const bytes = new Uint8Array(1000).map((_, i) => i);
    const digest = await digestOfBytes(bytes);
    const store = await BlobStore.open({ root });
    const activeInDownload: (string | undefined)[] = [];
    const blobs = new AgentBlobs(store, {
      download: async () => {
        activeInDownload.push(activeSpanIds()?.spanId);
        await store.putBlob(digest, bytes);
      },
    });
    const activeInHandler: (string | undefined)[] = [];
    const router = new Router()
      .use(collector.runtime.serverMiddleware())
      .get("/b", (ctx) =>
        blobs.serve(ctx, "ns", digest, {
          headers: () => {
            activeInHandler.push(activeSpanIds()?.spanId);
            return {};
          },
        }));
    for (let i = 0; i < 2; i++) {
      const res = await router.handle(new Request("http://agent/b"));
      assert.deepEqual(new Uint8Array(await res.arrayBuffer()), bytes);
    }
    const spans = await collector.spans();
    const downloads = spans.filter((s) => s.name === SPAN.agentDownloadBlob);
    const servers = spans.filter((s) => s.name === "GET /b");
    assert.equal(downloads.length, 2);
    // The miss: the scheduler's spans would be children of agent.download_blob.
    assert.deepEqual(activeInDownload, [downloads[0].spanContext().spanId]);
    // Outside the download the server span stays the active one, hit or miss.
    assert.deepEqual(activeInHandler, servers.map((s) => s.spanContext().spanId));
    for (const d of downloads) {
      const children = spans.filter((s) => s.parentSpanContext?.spanId === d.spanContext().spanId);
      assert.deepEqual(children.map((s) => s.name).sort(), [
        SPAN.agentCacheLookup,
        SPAN.agentStreamResponse,
      ]);
    }
  } finally {
    await collector.runtime.shutdown();
    await Deno.remove(root, { recursive: true });
  }
});
