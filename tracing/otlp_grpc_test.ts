import assert from "node:assert/strict";
import http2 from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { ExportResultCode } from "@opentelemetry/core";
import { ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { AlwaysOnSampler } from "@opentelemetry/sdk-trace";
import type { PartialExportResult } from "./export.ts";
import { OtlpGrpcExporter, retryInfoDelayMs, TRACE_EXPORT_METHOD } from "./otlp_grpc.ts";
import type { RecordingSpan } from "./span.ts";
import { KrakenTracerProvider } from "./tracer.ts";

const tracer = new KrakenTracerProvider({
  resource: resourceFromAttributes({ "service.name": "grpc-test" }),
  sampler: new AlwaysOnSampler(),
  sink: { onEnd() {} },
}).getTracer("grpc-test");

function fakeSpan(): RecordingSpan {
  const span = tracer.startSpan("op") as RecordingSpan;
  span.end();
  return span;
}

/** A google.rpc.Status carrying a RetryInfo of `ms`. */
function statusWithRetryInfo(ms: number): Buffer {
  const duration = new BinaryWriter().uint32(8).int64(Math.floor(ms / 1000))
    .uint32(16).int32((ms % 1000) * 1e6).finish();
  const retryInfo = new BinaryWriter().uint32(10).bytes(duration).finish();
  const any = new BinaryWriter().uint32(10).string("type.googleapis.com/google.rpc.RetryInfo")
    .uint32(18).bytes(retryInfo).finish();
  const status = new BinaryWriter().uint32(8).int32(8).uint32(18).string("busy")
    .uint32(26).bytes(any).finish();
  return Buffer.from(status);
}

type Answer = (metadata: grpc.Metadata, n: number) => {
  error?: Partial<grpc.StatusObject>;
  response?: Uint8Array;
};

/** A stand-in OTLP/gRPC collector on 127.0.0.1: `answer` decides each call; calls are recorded. */
async function standIn(answer: Answer) {
  const calls: { at: number; metadata: grpc.Metadata; body: Buffer }[] = [];
  const server = new grpc.Server();
  server.addService({
    Export: {
      path: TRACE_EXPORT_METHOD,
      requestStream: false,
      responseStream: false,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => b,
    },
  }, {
    Export(call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) {
      calls.push({ at: performance.now(), metadata: call.metadata, body: call.request });
      const { error, response } = answer(call.metadata, calls.length);
      if (error) done(error as grpc.ServiceError, null);
      else done(null, Buffer.from(response ?? new Uint8Array()));
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      "127.0.0.1:0",
      grpc.ServerCredentials.createInsecure(),
      (e, p) => e ? reject(e) : resolve(p),
    )
  );
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    [Symbol.asyncDispose]: () =>
      new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

function exportSpans(exporter: OtlpGrpcExporter, spans = [fakeSpan()]) {
  return new Promise<PartialExportResult>((resolve) => exporter.export(spans, resolve));
}

Deno.test("grpc exporter: metadata reaches the collector — one that demands auth rejects without, accepts with", async () => {
  await using collector = await standIn((metadata) =>
    metadata.get("authorization")[0] === "Bearer s3cret"
      ? {}
      : { error: { code: grpc.status.UNAUTHENTICATED, details: "no token" } }
  );
  const without = new OtlpGrpcExporter({ url: collector.url, maxAttempts: 3, backoffMs: 1 });
  const denied = await exportSpans(without);
  assert.equal(denied.code, ExportResultCode.FAILED);
  assert.match(String(denied.error?.message), /UNAUTHENTICATED: no token/);
  assert.equal(collector.calls.length, 1, "UNAUTHENTICATED is not retried");
  const withToken = new OtlpGrpcExporter({
    url: collector.url,
    headers: { Authorization: "Bearer s3cret" },
  });
  const spans = [fakeSpan(), fakeSpan()];
  assert.equal((await exportSpans(withToken, spans)).code, ExportResultCode.SUCCESS);
  assert.deepEqual(
    new Uint8Array(collector.calls[1].body),
    ProtobufTraceSerializer.serializeRequest(spans),
  );
  await without.shutdown();
  await withToken.shutdown();
});

Deno.test("grpc exporter: UNAVAILABLE is retried, RESOURCE_EXHAUSTED only with RetryInfo, whose delay is waited", async () => {
  await using collector = await standIn((_m, n) => {
    if (n === 1) return { error: { code: grpc.status.UNAVAILABLE, details: "restarting" } };
    if (n === 2) {
      const metadata = new grpc.Metadata();
      metadata.set("grpc-status-details-bin", statusWithRetryInfo(700));
      return { error: { code: grpc.status.RESOURCE_EXHAUSTED, details: "busy", metadata } };
    }
    return {};
  });
  const exporter = new OtlpGrpcExporter({ url: collector.url, maxAttempts: 5, backoffMs: 1 });
  const result = await exportSpans(exporter);
  assert.equal(result.code, ExportResultCode.SUCCESS, String(result.error));
  const at = collector.calls.map((c) => c.at);
  assert.equal(at.length, 3);
  assert.ok(at[1] - at[0] < 500, `UNAVAILABLE backs off briefly: ${at[1] - at[0]} ms`);
  assert.ok(at[2] - at[1] >= 650, `RetryInfo's 700 ms waited: ${(at[2] - at[1]).toFixed(0)} ms`);
  await exporter.shutdown();

  await using plain = await standIn(() => ({
    error: { code: grpc.status.RESOURCE_EXHAUSTED, details: "quota" },
  }));
  const once = new OtlpGrpcExporter({ url: plain.url, maxAttempts: 5, backoffMs: 1 });
  assert.equal((await exportSpans(once)).code, ExportResultCode.FAILED);
  assert.equal(plain.calls.length, 1, "RESOURCE_EXHAUSTED without RetryInfo is final");
  await once.shutdown();
});

Deno.test("grpc exporter: a partial success reports the rejected spans", async () => {
  // ExportTraceServiceResponse { partial_success { rejected_spans: 1, error_message: "late" } }
  const response = new BinaryWriter()
    .uint32(10).bytes(new BinaryWriter().uint32(8).int64(1).uint32(18).string("late").finish())
    .finish();
  await using collector = await standIn(() => ({ response }));
  const exporter = new OtlpGrpcExporter({ url: collector.url });
  const result = await exportSpans(exporter, [fakeSpan(), fakeSpan()]);
  assert.equal(result.code, ExportResultCode.SUCCESS, String(result.error));
  assert.equal(result.rejectedSpans, 1);
  await exporter.shutdown();
});

Deno.test("grpc exporter: gzip sends compressed messages with grpc-encoding: gzip", async () => {
  // A bare HTTP/2 server sees what grpc-js's own server hides: the header and the message flag.
  const seen: { encoding?: string; compressedFlag?: number; message?: Uint8Array } = {};
  const server = http2.createServer();
  server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => {
      const frame = Buffer.concat(chunks);
      seen.encoding = String(headers["grpc-encoding"]);
      seen.compressedFlag = frame[0];
      seen.message = frame.subarray(5);
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, {
        waitForTrailers: true,
      });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const exporter = new OtlpGrpcExporter({ url: `http://127.0.0.1:${port}`, compression: "gzip" });
  try {
    const spans = [fakeSpan()];
    const result = await exportSpans(exporter, spans);
    assert.equal(result.code, ExportResultCode.SUCCESS, String(result.error));
    assert.equal(seen.encoding, "gzip");
    assert.equal(seen.compressedFlag, 1);
    const plain = new Uint8Array(
      await new Response(
        new Blob([seen.message as BlobPart]).stream().pipeThrough(
          new DecompressionStream("gzip"),
        ),
      ).arrayBuffer(),
    );
    assert.deepEqual(plain, ProtobufTraceSerializer.serializeRequest(spans));
  } finally {
    await exporter.shutdown();
    await new Promise((resolve) => server.close(resolve));
  }
});

Deno.test("grpc exporter: RetryInfo is read from a google.rpc.Status, garbage is no hint", () => {
  assert.equal(retryInfoDelayMs(statusWithRetryInfo(2500)), 2500);
  assert.equal(retryInfoDelayMs(new Uint8Array([0xff, 0xff, 0xff])), undefined);
  assert.equal(retryInfoDelayMs(new Uint8Array()), undefined);
});
