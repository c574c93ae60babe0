/**
 * OTLP/gRPC span export: `opentelemetry.proto.collector.trace.v1.TraceService/Export` as a unary
 * call through `@grpc/grpc-js` (which runs under Deno over `node:http2`), the request encoded by
 * the same protobuf serializer the OTLP/HTTP exporter uses.
 *
 * Retries follow the OTLP specification: `CANCELLED`, `DEADLINE_EXCEEDED`, `ABORTED`,
 * `OUT_OF_RANGE`, `UNAVAILABLE` and `DATA_LOSS` are retryable, `RESOURCE_EXHAUSTED` only when the
 * server sent a `google.rpc.RetryInfo` (in `grpc-status-details-bin`), whose delay is then waited.
 * Compression `gzip` is grpc-js's message compression; TLS uses the given CA and client pair.
 *
 * @module
 */

import { type ExportResult, ExportResultCode } from "@opentelemetry/core";
import { ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import { encodeTraceRequest } from "./otlp_serialize.ts";
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace";
import * as grpc from "@grpc/grpc-js";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import type { OtlpExporterOptions, PartialExportResult } from "./export.ts";
import { type AttemptOutcome, sendWithRetries } from "./otlp_retry.ts";

/** The OTLP trace export method's path. */
export const TRACE_EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/** gRPC status codes the OTLP specification lets an exporter retry. */
export const RETRYABLE_GRPC_CODES: ReadonlySet<number> = new Set([
  grpc.status.CANCELLED,
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.ABORTED,
  grpc.status.OUT_OF_RANGE,
  grpc.status.UNAVAILABLE,
  grpc.status.DATA_LOSS,
]);

const RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo";

/** Options of {@linkcode OtlpGrpcExporter}. */
export interface OtlpGrpcExporterOptions extends OtlpExporterOptions {
  /** `http://host:port` (plaintext) or `https://host:port` (TLS). */
  url: string;
}

/**
 * Reads the retry delay (ms) of a `google.rpc.Status` (the `grpc-status-details-bin` trailer)
 * holding a `google.rpc.RetryInfo`; undefined when there is none or the bytes are not one.
 */
export function retryInfoDelayMs(statusDetails: Uint8Array): number | undefined {
  try {
    const status = new BinaryReader(statusDetails);
    while (status.pos < status.len) {
      const [field, wireType] = status.tag();
      if (field !== 3) {
        status.skip(wireType);
        continue;
      }
      // details: google.protobuf.Any { type_url = 1; value = 2; }
      const any = new BinaryReader(status.bytes());
      let typeUrl = "";
      let value: Uint8Array | undefined;
      while (any.pos < any.len) {
        const [f, w] = any.tag();
        if (f === 1) typeUrl = any.string();
        else if (f === 2) value = any.bytes();
        else any.skip(w);
      }
      if (typeUrl !== RETRY_INFO_TYPE || value === undefined) continue;
      // RetryInfo { google.protobuf.Duration retry_delay = 1; }
      const info = new BinaryReader(value);
      while (info.pos < info.len) {
        const [f, w] = info.tag();
        if (f !== 1) {
          info.skip(w);
          continue;
        }
        const duration = new BinaryReader(info.bytes());
        let seconds = 0;
        let nanos = 0;
        while (duration.pos < duration.len) {
          const [df, dw] = duration.tag();
          if (df === 1) seconds = Number(duration.int64());
          else if (df === 2) nanos = duration.int32();
          else duration.skip(dw);
        }
        return seconds * 1000 + nanos / 1e6;
      }
    }
  } catch {
    // Not a Status: no hint.
  }
  return undefined;
}

const identity = (b: Buffer) => b;
const toBuffer = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** Exports spans over OTLP/gRPC. */
export class OtlpGrpcExporter implements SpanExporter {
  readonly #client: grpc.Client;
  readonly #metadata: grpc.Metadata;
  readonly #timeoutMs: number;
  readonly #maxAttempts: number;
  readonly #backoffMs: number;
  readonly #shutdown = new AbortController();

  /** Creates an exporter for one collector address; connects lazily. */
  constructor(options: OtlpGrpcExporterOptions) {
    const url = new URL(options.url);
    const secure = url.protocol === "https:";
    const tls = options.tls ?? {};
    const credentials = secure
      ? grpc.credentials.createSsl(
        tls.ca ? Buffer.from(tls.ca) : null,
        tls.key ? Buffer.from(tls.key) : null,
        tls.cert ? Buffer.from(tls.cert) : null,
      )
      : grpc.credentials.createInsecure();
    const channelOptions: grpc.ChannelOptions = {};
    if (options.compression === "gzip") {
      channelOptions["grpc.default_compression_algorithm"] = grpc.compressionAlgorithms.gzip;
    }
    this.#client = new grpc.Client(url.host, credentials, channelOptions);
    this.#metadata = new grpc.Metadata();
    for (const [key, value] of Object.entries(options.headers ?? {})) {
      this.#metadata.set(key.toLowerCase(), value);
    }
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#maxAttempts = Math.max(1, options.maxAttempts ?? 3);
    this.#backoffMs = options.backoffMs ?? 100;
  }

  /** Serialises and sends one batch, retrying retryable failures. */
  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    if (this.#shutdown.signal.aborted) {
      resultCallback({ code: ExportResultCode.FAILED, error: new Error("exporter is shut down") });
      return;
    }
    encodeTraceRequest(spans).then((body) =>
      sendWithRetries((signal) => this.#attempt(toBuffer(body), signal), {
        timeoutMs: this.#timeoutMs,
        maxAttempts: this.#maxAttempts,
        backoffMs: this.#backoffMs,
        shutdown: this.#shutdown.signal,
      })
    ).then(
      (ok) =>
        resultCallback(
          {
            code: ExportResultCode.SUCCESS,
            rejectedSpans: ok.rejectedSpans,
          } as PartialExportResult,
        ),
      (error) => resultCallback({ code: ExportResultCode.FAILED, error }),
    );
  }

  #attempt(body: Buffer, signal: AbortSignal): Promise<AttemptOutcome> {
    return new Promise((resolve) => {
      const call = this.#client.makeUnaryRequest(
        TRACE_EXPORT_METHOD,
        identity,
        identity,
        body,
        this.#metadata,
        { deadline: Date.now() + this.#timeoutMs },
        (error, response) => {
          signal.removeEventListener("abort", cancel);
          if (!error) {
            let rejected: number | undefined;
            let message: string | undefined;
            try {
              const parsed = ProtobufTraceSerializer.deserializeResponse(
                new Uint8Array(response ?? []),
              );
              rejected = Number(parsed.partialSuccess?.rejectedSpans ?? 0) || undefined;
              message = parsed.partialSuccess?.errorMessage;
            } catch {
              // An OK status means accepted, whatever the body.
            }
            resolve({ ok: true, rejectedSpans: rejected, message });
            return;
          }
          const details = error.metadata?.get("grpc-status-details-bin")[0];
          const retryAfterMs = details instanceof Uint8Array
            ? retryInfoDelayMs(details)
            : undefined;
          const retryable = RETRYABLE_GRPC_CODES.has(error.code) ||
            (error.code === grpc.status.RESOURCE_EXHAUSTED && retryAfterMs !== undefined);
          resolve({
            ok: false,
            retryable,
            retryAfterMs,
            error: new Error(
              `collector answered gRPC ${grpc.status[error.code]}: ${error.details}`,
            ),
          });
        },
      );
      const cancel = () => call.cancel();
      signal.addEventListener("abort", cancel, { once: true });
    });
  }

  /** Aborts in-flight calls and closes the channel; later exports fail fast. */
  shutdown(): Promise<void> {
    this.#shutdown.abort(new Error("exporter shut down"));
    this.#client.close();
    return Promise.resolve();
  }

  /** Nothing is buffered here; the processor owns the queue. */
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
}
