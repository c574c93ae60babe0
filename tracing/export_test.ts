import assert from "node:assert/strict";
import { ExportResultCode } from "@opentelemetry/core";
import type { ExportResult } from "@opentelemetry/core";
import { ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { AlwaysOnSampler } from "@opentelemetry/sdk-trace";
import {
  BatchExportProcessor,
  ExportTimeoutError,
  OtlpHttpExporter,
  type PartialExportResult,
} from "./export.ts";
import { parseRetryAfter } from "./otlp_retry.ts";
import type { RecordingSpan } from "./span.ts";
import { KrakenTracerProvider } from "./tracer.ts";

const tracer = new KrakenTracerProvider({
  resource: resourceFromAttributes({ "service.name": "export-test" }),
  sampler: new AlwaysOnSampler(),
  sink: { onEnd() {} },
}).getTracer("export-test");

/** An ended, sampled span. */
function fakeSpan(): RecordingSpan {
  const span = tracer.startSpan("op", { attributes: { k: "v" } }) as RecordingSpan;
  span.end();
  return span;
}

/** A TCP listener that accepts connections and never answers (a hung collector). */
function hungCollector() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of listener) conns.push(conn);
    } catch {
      // closed
    }
  })();
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/v1/traces`,
    get connections() {
      return conns.length;
    },
    async close() {
      listener.close();
      for (const c of conns) c.close();
      await accepting;
    },
  };
}

function exportOnce(exporter: OtlpHttpExporter): Promise<ExportResult> {
  return new Promise((resolve) => exporter.export([], resolve));
}

Deno.test("exporter: a collector that never answers fails the export within one timeout, retries included", async () => {
  const collector = hungCollector();
  const exporter = new OtlpHttpExporter({ url: collector.url, timeoutMs: 300, maxAttempts: 3 });
  try {
    const started = performance.now();
    const result = await exportOnce(exporter);
    const ms = performance.now() - started;
    assert.equal(result.code, ExportResultCode.FAILED);
    assert.ok(result.error instanceof ExportTimeoutError, String(result.error));
    assert.equal(result.error.message, "export timed out after 300 ms");
    // One timeout bounds the whole export, not each of the three attempts.
    assert.ok(ms >= 290 && ms < 800, `export took ${ms.toFixed(0)} ms`);
  } finally {
    await exporter.shutdown();
    await collector.close();
  }
});

Deno.test("exporter: fast failures are retried within the timeout and are not timeouts", async () => {
  let attempts = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    await req.body?.cancel();
    attempts++;
    return new Response("busy", { status: 503 });
  });
  const exporter = new OtlpHttpExporter({
    url: `http://127.0.0.1:${server.addr.port}/v1/traces`,
    timeoutMs: 5000,
    maxAttempts: 3,
    backoffMs: 10,
  });
  try {
    const result = await exportOnce(exporter);
    assert.equal(result.code, ExportResultCode.FAILED);
    assert.ok(!(result.error instanceof ExportTimeoutError));
    assert.match(String(result.error?.message), /collector answered 503/);
    assert.equal(attempts, 3);
  } finally {
    await exporter.shutdown();
    await server.shutdown();
  }
});

/** A stand-in OTLP/HTTP collector: `answer` decides each request; every request is recorded. */
function standIn(answer: (req: Request, n: number) => Response | Promise<Response>) {
  const requests: { at: number; headers: Headers; body: Uint8Array }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const body = new Uint8Array(await req.arrayBuffer());
    requests.push({ at: performance.now(), headers: req.headers, body });
    return answer(req, requests.length);
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/v1/traces`,
    requests,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

Deno.test("exporter: headers reach the collector — one that demands auth rejects without, accepts with", async () => {
  await using collector = standIn((req) =>
    req.headers.get("authorization") === "Bearer s3cret"
      ? new Response(null, { status: 200 })
      : new Response("no token", { status: 401 })
  );
  const without = new OtlpHttpExporter({ url: collector.url, maxAttempts: 3, backoffMs: 1 });
  const denied = await exportOnce(without);
  assert.equal(denied.code, ExportResultCode.FAILED);
  assert.match(String(denied.error?.message), /collector answered 401: no token/);
  assert.equal(collector.requests.length, 1, "401 is not retried");
  const withToken = new OtlpHttpExporter({
    url: collector.url,
    headers: { authorization: "Bearer s3cret" },
  });
  assert.equal((await exportOnce(withToken)).code, ExportResultCode.SUCCESS);
  assert.equal(collector.requests[1].headers.get("content-type"), "application/x-protobuf");
  await without.shutdown();
  await withToken.shutdown();
});

Deno.test("exporter: Retry-After of a 429 is honoured between attempts", async () => {
  await using collector = standIn((_req, n) =>
    n < 3
      ? new Response("slow down", { status: 429, headers: { "retry-after": "1" } })
      : new Response(null, { status: 200 })
  );
  const exporter = new OtlpHttpExporter({
    url: collector.url,
    maxAttempts: 5,
    backoffMs: 1,
    timeoutMs: 10_000,
  });
  const result = await exportOnce(exporter);
  assert.equal(result.code, ExportResultCode.SUCCESS, String(result.error));
  const at = collector.requests.map((r) => r.at);
  assert.equal(at.length, 3);
  for (const gap of [at[1] - at[0], at[2] - at[1]]) {
    // The 1 ms backoff would retry at once; the server asked for a second.
    assert.ok(gap >= 950 && gap < 2500, `gap ${gap.toFixed(0)} ms`);
  }
  // A Retry-After beyond the export timeout ends the export rather than retrying early.
  await using later = standIn(() =>
    new Response(null, { status: 503, headers: { "retry-after": "30" } })
  );
  const bounded = new OtlpHttpExporter({ url: later.url, maxAttempts: 5, timeoutMs: 2000 });
  const started = performance.now();
  assert.equal((await exportOnce(bounded)).code, ExportResultCode.FAILED);
  assert.equal(later.requests.length, 1);
  assert.ok(performance.now() - started < 1000);
  await exporter.shutdown();
  await bounded.shutdown();
});

Deno.test("exporter: gzip compresses the body and says so", async () => {
  await using collector = standIn(() => new Response(null, { status: 200 }));
  const exporter = new OtlpHttpExporter({ url: collector.url, compression: "gzip" });
  const spans = [fakeSpan()];
  assert.equal((await exportSpans(exporter, spans)).code, ExportResultCode.SUCCESS);
  const [req] = collector.requests;
  assert.equal(req.headers.get("content-encoding"), "gzip");
  const plain = new Uint8Array(
    await new Response(
      new Blob([req.body as BlobPart]).stream().pipeThrough(new DecompressionStream("gzip")),
    ).arrayBuffer(),
  );
  assert.deepEqual(plain, ProtobufTraceSerializer.serializeRequest(spans));
  await exporter.shutdown();
});

Deno.test("exporter: a partial success reports the rejected spans", async () => {
  await using collector = standIn(() =>
    Response.json({ partialSuccess: { rejectedSpans: "2", errorMessage: "too old" } })
  );
  const exporter = new OtlpHttpExporter({ url: collector.url, protocol: "http/json" });
  const result = await exportSpans(exporter, [fakeSpan(), fakeSpan(), fakeSpan()]);
  assert.equal(result.code, ExportResultCode.SUCCESS);
  assert.equal(result.rejectedSpans, 2);
  // The batch processor counts them as dropped, not exported.
  const outcomes: number[] = [];
  const processor = new BatchExportProcessor({
    exporter,
    observer: { onExport: (_count, _ok, _ms, _error, rejected) => outcomes.push(rejected ?? 0) },
  });
  for (let i = 0; i < 3; i++) processor.onEnd(fakeSpan());
  await processor.forceFlush();
  assert.deepEqual(outcomes, [2]);
  assert.equal(processor.counters.exported, 1);
  await processor.shutdown();
});

Deno.test("retry: Retry-After takes seconds or an HTTP date", () => {
  assert.equal(parseRetryAfter("3"), 3000);
  assert.equal(parseRetryAfter(null), undefined);
  assert.equal(parseRetryAfter("soon"), undefined);
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:05 GMT", now), 5000);
  assert.equal(parseRetryAfter("Thu, 01 Jan 2025 00:00:05 GMT", now), 0);
});

function exportSpans(exporter: OtlpHttpExporter, spans: RecordingSpan[]) {
  return new Promise<PartialExportResult>((resolve) => exporter.export(spans, resolve));
}

// Resolves once `done()` holds, checking every 5 ms for at most 2 s.
async function until(done: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !done(); waited += 5) {
    if (waited >= 2000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

Deno.test("batch processor: the batch timer runs only while spans are queued, and still exports within the batch timeout", async () => {
  const exported: number[] = [];
  const processor = new BatchExportProcessor({
    exporter: {
      export(spans, done) {
        exported.push(spans.length);
        done({ code: ExportResultCode.SUCCESS });
      },
      shutdown: () => Promise.resolve(),
    },
    batchTimeoutMs: 30,
  });
  assert.equal(processor.timerRunning, false, "nothing queued: no timer");
  processor.onEnd(fakeSpan());
  processor.onEnd(fakeSpan());
  assert.ok(processor.timerRunning);
  await until(() => exported.length > 0, "the first export");
  assert.deepEqual(exported, [2], "both spans at the first tick");
  await until(() => !processor.timerRunning, "the timer to stop");
  processor.onEnd(fakeSpan());
  assert.ok(processor.timerRunning, "the next span starts it again");
  await until(() => exported.length > 1, "the second export");
  assert.deepEqual(exported, [2, 1]);
  await processor.shutdown();
  assert.equal(processor.timerRunning, false);
});
