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
import type { RecordingSpan, SpanSink } from "./span.ts";

/** An export did not finish within its timeout (the collector accepted and did not answer). */
export class ExportTimeoutError extends Error {
  /** The timeout that elapsed, ms. */
  readonly timeoutMs: number;

  /** Creates the error. */
  constructor(timeoutMs: number) {
    super(`export timed out after ${timeoutMs} ms`);
    this.name = "ExportTimeoutError";
    this.timeoutMs = timeoutMs;
  }
}

/** Observes export outcomes: the self-metrics and the circuit breaker hang off this seam. */
export interface ExportObserver {
  /** A span was dropped because the queue was full. */
  onQueueFull?(): void;
  /** An export attempt finished: `count` spans, `ok` or not, after `ms` milliseconds. */
  onExport?(count: number, ok: boolean, ms: number, error?: Error): void;
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
  #timer: ReturnType<typeof setInterval>;
  #kick: ReturnType<typeof setTimeout> | undefined;
  #exporting: Promise<void> | undefined;
  #closed = false;

  /** Starts the periodic flush timer (unref'd: it never keeps a process alive). */
  constructor(options: BatchOptions) {
    this.#exporter = options.exporter;
    this.#maxBatch = options.maxBatchSize ?? 512;
    this.#maxQueue = options.maxQueueSize ?? 2048;
    this.#observer = options.observer ?? {};
    const interval = options.batchTimeoutMs ?? 5000;
    this.#timer = setInterval(() => this.#drain(), interval);
    Deno.unrefTimer(this.#timer);
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
      const finish = (result: ExportResult) => {
        if (done) return;
        done = true;
        const ok = result.code === ExportResultCode.SUCCESS;
        if (ok) this.counters.exported += batch.length;
        else this.counters.exportErrors++;
        this.#observer.onExport?.(batch.length, ok, performance.now() - started, result.error);
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

/** Options of {@linkcode OtlpHttpExporter}. */
export interface OtlpHttpExporterOptions {
  /** Full traces URL, e.g. `http://127.0.0.1:4318/v1/traces`. */
  url: string;
  /**
   * Time one export may take, every attempt and backoff included (OTLP's exporter timeout).
   * Default 10000 ms.
   */
  timeoutMs?: number;
  /** Attempts per batch on retryable failures (network, 429, 502, 503, 504). Default 3. */
  maxAttempts?: number;
  /** Base backoff between attempts, doubled each time. Default 100 ms. */
  backoffMs?: number;
  /** Extra request headers (for example an auth token). */
  headers?: Record<string, string>;
  /** The fetch to use; tests inject one. Must not be the traced fetch. */
  fetch?: typeof fetch;
  /** OTLP encoding: `http/protobuf` (default) or `http/json`. */
  protocol?: OtlpProtocol;
}

/** The OTLP/HTTP encodings, named as `OTEL_EXPORTER_OTLP_PROTOCOL` names them. */
export type OtlpProtocol = "http/protobuf" | "http/json";

const RETRYABLE = new Set([429, 502, 503, 504]);

/**
 * Exports spans as OTLP/HTTP (protobuf, or JSON when asked) with the platform `fetch` (the OTLP exporter packages go
 * through Node's `http` polyfill under Deno, which design §4 found unreliable).
 */
export class OtlpHttpExporter implements SpanExporter {
  readonly #url: string;
  readonly #timeoutMs: number;
  readonly #maxAttempts: number;
  readonly #backoffMs: number;
  readonly #headers: Record<string, string>;
  readonly #fetch: typeof fetch;
  readonly #serializer: typeof ProtobufTraceSerializer;
  readonly #inflight = new Set<AbortController>();
  #shutdown = false;

  /** Creates an exporter for one collector URL. */
  constructor(options: OtlpHttpExporterOptions) {
    this.#url = options.url;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#maxAttempts = Math.max(1, options.maxAttempts ?? 3);
    this.#backoffMs = options.backoffMs ?? 100;
    const json = options.protocol === "http/json";
    this.#serializer = json ? JsonTraceSerializer : ProtobufTraceSerializer;
    this.#headers = {
      "content-type": json ? "application/json" : "application/x-protobuf",
      ...options.headers,
    };
    this.#fetch = options.fetch ?? globalThis.fetch;
  }

  /** Serialises and sends one batch, retrying retryable failures. */
  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    if (this.#shutdown) {
      resultCallback({ code: ExportResultCode.FAILED, error: new Error("exporter is shut down") });
      return;
    }
    const body = this.#serializer.serializeRequest(spans);
    if (!body) {
      resultCallback({ code: ExportResultCode.FAILED, error: new Error("serialization failed") });
      return;
    }
    this.#send(body).then(
      () => resultCallback({ code: ExportResultCode.SUCCESS }),
      (error) => resultCallback({ code: ExportResultCode.FAILED, error }),
    );
  }

  async #send(body: Uint8Array): Promise<void> {
    let lastError: Error = new Error("export not attempted");
    const deadline = performance.now() + this.#timeoutMs;
    for (let attempt = 1; attempt <= this.#maxAttempts && !this.#shutdown; attempt++) {
      const abort = new AbortController();
      const timer = setTimeout(
        () => abort.abort(new ExportTimeoutError(this.#timeoutMs)),
        Math.max(0, deadline - performance.now()),
      );
      Deno.unrefTimer(timer);
      this.#inflight.add(abort);
      let retryable = true;
      try {
        const res = await this.#fetch(this.#url, {
          method: "POST",
          headers: this.#headers,
          body: body as BodyInit,
          signal: abort.signal,
        });
        const text = await res.text();
        if (res.ok) return;
        retryable = RETRYABLE.has(res.status);
        lastError = new Error(`collector answered ${res.status}: ${text.slice(0, 200)}`);
      } catch (error) {
        lastError = abort.signal.aborted && abort.signal.reason instanceof Error
          ? abort.signal.reason
          : error as Error;
      } finally {
        clearTimeout(timer);
        this.#inflight.delete(abort);
      }
      if (!retryable || attempt === this.#maxAttempts) break;
      const backoff = this.#backoffMs * 2 ** (attempt - 1) * (0.9 + Math.random() * 0.2);
      // No time left for another attempt within the export's timeout: it fails as it stands.
      if (performance.now() + backoff >= deadline) break;
      await sleep(backoff);
    }
    throw lastError;
  }

  /** Aborts in-flight requests; later exports fail fast. */
  shutdown(): Promise<void> {
    this.#shutdown = true;
    for (const abort of this.#inflight) abort.abort(new Error("exporter shut down"));
    return Promise.resolve();
  }

  /** Nothing is buffered here; the processor owns the queue. */
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    Deno.unrefTimer(t);
  });
}
