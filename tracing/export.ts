/**
 * Span export: a bounded batch queue ({@linkcode BatchExportProcessor}) in front of an OTLP/HTTP
 * exporter that sends protobuf with `fetch` ({@linkcode OtlpHttpExporter}).
 *
 * Nothing here ever makes a request wait: ended spans are appended to an in-memory queue, a full
 * queue drops (and counts) the span, and exports run in the background one batch at a time, each
 * bounded by one timeout (retries included, as `OTEL_EXPORTER_OTLP_TIMEOUT` means), so a collector
 * that is down or never answers costs a bounded amount of memory and no latency, and a hung one
 * fails an export per timeout ({@linkcode ExportTimeoutError}) for the breaker to count.
 *
 * @module
 */

import { type ExportResult, ExportResultCode } from "@opentelemetry/core";
import { JsonTraceSerializer, ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace";
import { TraceFlags } from "@opentelemetry/api";
import type { OtlpCompression } from "./otel_env.ts";
import {
  type AttemptOutcome,
  ExportTimeoutError,
  parseRetryAfter,
  RETRYABLE_HTTP_STATUSES,
  sendWithRetries,
} from "./otlp_retry.ts";
import { encodeTraceRequest } from "./otlp_serialize.ts";
import type { RecordingSpan, SpanSink } from "./span.ts";

export { ExportTimeoutError };

/**
 * An {@linkcode ExportResult} that may say how many spans the collector rejected (OTLP partial
 * success); the built-in exporters set it, the batch processor counts them as dropped.
 */
export interface PartialExportResult extends ExportResult {
  /** Spans of an accepted request the collector rejected. */
  rejectedSpans?: number;
}

/** Observes export outcomes: the self-metrics and the circuit breaker hang off this seam. */
export interface ExportObserver {
  /** A span was dropped because the queue was full. */
  onQueueFull?(): void;
  /**
   * An export finished: `count` spans, `ok` or not, after `ms` milliseconds; `rejected` of an
   * accepted batch were refused by the collector (partial success) and not exported.
   */
  onExport?(count: number, ok: boolean, ms: number, error?: Error, rejected?: number): void;
}

/** Options of {@linkcode BatchExportProcessor}; defaults are the ERD's (§6.1, Appendix B). */
export interface BatchOptions {
  /** The exporter batches go to. */
  exporter: SpanExporter;
  /** Spans per export request. Default 512. */
  maxBatchSize?: number;
  /** Spans held at most; more are dropped and counted. Default 2048. */
  maxQueueSize?: number;
  /** Longest time a span waits before export. Default 5000 ms. */
  batchTimeoutMs?: number;
  /** Outcome observer (metrics, breaker). */
  observer?: ExportObserver;
}

/** Counters of the export path. */
export interface ExportCounters {
  /** Spans accepted into the queue. */
  queued: number;
  /** Spans dropped because the queue was full. */
  droppedQueueFull: number;
  /** Spans successfully exported. */
  exported: number;
  /** Export requests that failed (after retries). */
  exportErrors: number;
}

/** A bounded queue of ended spans exported in batches in the background. */
export class BatchExportProcessor implements SpanSink {
  /** Export counters (read by the self-metrics). */
  readonly counters: ExportCounters = {
    queued: 0,
    droppedQueueFull: 0,
    exported: 0,
    exportErrors: 0,
  };
  readonly #exporter: SpanExporter;
  readonly #maxBatch: number;
  readonly #maxQueue: number;
  readonly #observer: ExportObserver;
  #queue: RecordingSpan[] = [];
  readonly #interval: number;
  // The batch timer: runs while spans are queued, stops at a tick that finds none.
  #timer: ReturnType<typeof setInterval> | undefined;
  #kick: ReturnType<typeof setTimeout> | undefined;
  #exporting: Promise<void> | undefined;
  #closed = false;

  /**
   * Creates an empty processor. Its batch timer (unref'd: it never keeps a process alive) runs only
   * while spans are queued, so an idle process is not woken for it.
   */
  constructor(options: BatchOptions) {
    this.#exporter = options.exporter;
    this.#maxBatch = options.maxBatchSize ?? 512;
    this.#maxQueue = options.maxQueueSize ?? 2048;
    this.#observer = options.observer ?? {};
    this.#interval = options.batchTimeoutMs ?? 5000;
  }

  /** Whether the batch timer is running (spans were queued since its last tick found none). */
  get timerRunning(): boolean {
    return this.#timer !== undefined;
  }

  #tick(): void {
    if (this.#queue.length === 0 && !this.#exporting) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    void this.#drain();
  }

  /** Spans currently waiting for export. */
  get queueSize(): number {
    return this.#queue.length;
  }

  /** Queues a sampled span; never blocks, drops when full. */
  onEnd(span: RecordingSpan): void {
    if (this.#closed || (span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    if (this.#queue.length >= this.#maxQueue) {
      this.counters.droppedQueueFull++;
      this.#observer.onQueueFull?.();
      this.#scheduleDrain();
      return;
    }
    this.#queue.push(span);
    this.counters.queued++;
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#tick(), this.#interval);
      Deno.unrefTimer(this.#timer);
    }
    if (this.#queue.length >= this.#maxBatch) this.#scheduleDrain();
  }

  #scheduleDrain(): void {
    if (this.#kick !== undefined || this.#exporting) return;
    const kick = setTimeout(() => {
      this.#kick = undefined;
      this.#drain();
    }, 0);
    Deno.unrefTimer(kick);
    this.#kick = kick;
  }

  /** Exports queued spans, one batch at a time; concurrent calls share the running drain. */
  #drain(): Promise<void> {
    if (this.#exporting) return this.#exporting;
    if (this.#queue.length === 0) return Promise.resolve();
    this.#exporting = (async () => {
      try {
        while (this.#queue.length > 0) {
          const batch = this.#queue.splice(0, this.#maxBatch);
          await this.#exportBatch(batch);
          if (this.#queue.length < this.#maxBatch && !this.#closed) break;
        }
      } finally {
        this.#exporting = undefined;
      }
    })();
    return this.#exporting;
  }

  #exportBatch(batch: ReadableSpan[]): Promise<void> {
    const started = performance.now();
    return new Promise<void>((resolve) => {
      let done = false;
      const finish = (result: PartialExportResult) => {
        if (done) return;
        done = true;
        const ok = result.code === ExportResultCode.SUCCESS;
        const rejected = ok ? Math.min(batch.length, result.rejectedSpans ?? 0) : 0;
        if (ok) this.counters.exported += batch.length - rejected;
        else this.counters.exportErrors++;
        this.#observer.onExport?.(
          batch.length,
          ok,
          performance.now() - started,
          result.error,
          rejected,
        );
        resolve();
      };
      try {
        this.#exporter.export(batch, finish);
      } catch (error) {
        finish({ code: ExportResultCode.FAILED, error: error as Error });
      }
    });
  }

  /** Exports everything queued now, waiting for it (used on shutdown and in tests). */
  async forceFlush(): Promise<void> {
    while (this.#queue.length > 0 || this.#exporting) {
      if (this.#exporting) await this.#exporting;
      else {
        const batch = this.#queue.splice(0, this.#maxBatch);
        this.#exporting = this.#exportBatch(batch).finally(() => this.#exporting = undefined);
      }
    }
  }

  /**
   * Flushes for at most `timeoutMs` (default 5 s), then shuts the exporter down, which aborts an
   * export still in flight; spans not exported by then are dropped.
   */
  async shutdown(timeoutMs = 5000): Promise<void> {
    if (this.#closed) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#kick !== undefined) clearTimeout(this.#kick);
    this.#kick = undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<void>((resolve) => timer = setTimeout(resolve, timeoutMs));
    await Promise.race([this.forceFlush(), deadline]);
    clearTimeout(timer);
    this.#closed = true;
    this.#queue = [];
    await this.#exporter.shutdown();
    await this.#exporting;
  }
}

/** Options the OTLP exporters share (HTTP and gRPC). */
export interface OtlpExporterOptions {
  /**
   * Time one export may take, every attempt and backoff included (OTLP's exporter timeout).
   * Default 10000 ms.
   */
  timeoutMs?: number;
  /** Attempts per batch on retryable failures. Default 3. */
  maxAttempts?: number;
  /** Base backoff between attempts, doubled each time, when the server gave no hint. Default 100 ms. */
  backoffMs?: number;
  /** Extra request headers or gRPC metadata (for example an auth token). */
  headers?: Record<string, string>;
  /** `gzip` compresses request bodies. Default `none`. */
  compression?: OtlpCompression;
  /** TLS material as PEM text: `ca` verifies the collector, `cert` + `key` are for mTLS. */
  tls?: { ca?: string; cert?: string; key?: string };
}

/** Options of {@linkcode OtlpHttpExporter}. */
export interface OtlpHttpExporterOptions extends OtlpExporterOptions {
  /** Full traces URL, e.g. `http://127.0.0.1:4318/v1/traces`. */
  url: string;
  /** The fetch to use; tests inject one. Must not be the traced fetch. */
  fetch?: typeof fetch;
  /** OTLP encoding: `http/protobuf` (default) or `http/json`. */
  protocol?: "http/protobuf" | "http/json";
}

/**
 * Exports spans as OTLP/HTTP (protobuf, or JSON when asked) with the platform `fetch` (the OTLP
 * exporter packages go through Node's `http` polyfill under Deno, which design §4 found
 * unreliable). Retries 429/502/503/504 and network errors honouring `Retry-After`, gzips when
 * asked, and reports a partial success's rejected spans.
 */
export class OtlpHttpExporter implements SpanExporter {
  readonly #url: string;
  readonly #timeoutMs: number;
  readonly #maxAttempts: number;
  readonly #backoffMs: number;
  readonly #headers: Record<string, string>;
  readonly #fetch: typeof fetch;
  readonly #serializer: typeof ProtobufTraceSerializer;
  readonly #json: boolean;
  readonly #gzip: boolean;
  readonly #client: Deno.HttpClient | undefined;
  readonly #shutdown = new AbortController();

  /** Creates an exporter for one collector URL. */
  constructor(options: OtlpHttpExporterOptions) {
    this.#url = options.url;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#maxAttempts = Math.max(1, options.maxAttempts ?? 3);
    this.#backoffMs = options.backoffMs ?? 100;
    const json = options.protocol === "http/json";
    this.#json = json;
    this.#serializer = json ? JsonTraceSerializer : ProtobufTraceSerializer;
    this.#gzip = options.compression === "gzip";
    this.#headers = {
      ...options.headers,
      "content-type": json ? "application/json" : "application/x-protobuf",
      ...(this.#gzip ? { "content-encoding": "gzip" } : {}),
    };
    this.#fetch = options.fetch ?? globalThis.fetch;
    const tls = options.tls;
    this.#client = tls && (tls.ca || tls.cert)
      ? Deno.createHttpClient({
        caCerts: tls.ca ? [tls.ca] : undefined,
        cert: tls.cert,
        key: tls.key,
      })
      : undefined;
  }

  /** Serialises and sends one batch, retrying retryable failures. */
  export(spans: ReadableSpan[], resultCallback: (result: PartialExportResult) => void): void {
    if (this.#shutdown.signal.aborted) {
      resultCallback({ code: ExportResultCode.FAILED, error: new Error("exporter is shut down") });
      return;
    }
    this.#serialize(spans)
      .then((body) => this.#gzip ? gzip(body) : body)
      .then((payload) =>
        sendWithRetries((signal) => this.#attempt(payload, signal), {
          timeoutMs: this.#timeoutMs,
          maxAttempts: this.#maxAttempts,
          backoffMs: this.#backoffMs,
          shutdown: this.#shutdown.signal,
        })
      )
      .then(
        (ok) => resultCallback({ code: ExportResultCode.SUCCESS, rejectedSpans: ok.rejectedSpans }),
        (error) => resultCallback({ code: ExportResultCode.FAILED, error }),
      );
  }

  /** Protobuf by our encoder (`tracing/otlp_serialize.ts`); JSON, a debugging aid, by the stock serializer. */
  #serialize(spans: ReadableSpan[]): Promise<Uint8Array> {
    if (!this.#json) return encodeTraceRequest(spans);
    const body = JsonTraceSerializer.serializeRequest(spans);
    return body ? Promise.resolve(body) : Promise.reject(new Error("serialization failed"));
  }

  async #attempt(body: Uint8Array, signal: AbortSignal): Promise<AttemptOutcome> {
    const init: RequestInit & { client?: Deno.HttpClient } = {
      method: "POST",
      headers: this.#headers,
      body: body as BodyInit,
      signal,
    };
    if (this.#client) init.client = this.#client;
    const res = await this.#fetch(this.#url, init);
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (res.ok) {
      let rejected: number | undefined;
      let message: string | undefined;
      try {
        const response = bytes.length > 0 ? this.#serializer.deserializeResponse(bytes) : {};
        rejected = Number(response.partialSuccess?.rejectedSpans ?? 0) || undefined;
        message = response.partialSuccess?.errorMessage;
      } catch {
        // A 2xx whose body is not an OTLP response still means accepted.
      }
      return { ok: true, rejectedSpans: rejected, message };
    }
    const text = new TextDecoder().decode(bytes.subarray(0, 200));
    return {
      ok: false,
      retryable: RETRYABLE_HTTP_STATUSES.has(res.status),
      retryAfterMs: parseRetryAfter(res.headers.get("retry-after")),
      error: new Error(`collector answered ${res.status}: ${text}`),
    };
  }

  /** Aborts in-flight requests; later exports fail fast. */
  shutdown(): Promise<void> {
    this.#shutdown.abort(new Error("exporter shut down"));
    this.#client?.close();
    return Promise.resolve();
  }

  /** Nothing is buffered here; the processor owns the queue. */
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

/** Gzips `data` with the platform's `CompressionStream`. */
export async function gzip(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as BlobPart]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
