/**
 * Stock OpenTelemetry SDK pieces beside the built-in export: {@linkcode FanOutSink} hands every
 * ended span to several sinks (the built-in batch processor, one batch queue per extra
 * `SpanExporter`, and each extra `SpanProcessor` through {@linkcode StockProcessorSink}).
 *
 * The span they receive is kraken's `RecordingSpan`, which is a complete SDK `ReadableSpan`:
 * name, kind, span and parent context, start/end/duration, status, attributes, events, links,
 * dropped counts, resource and instrumentation scope. A processor's `onStart` is called by the
 * tracer when a recording span starts; one that throws is not allowed to break the caller.
 *
 * @module
 */

import { TraceFlags } from "@opentelemetry/api";
import type { SpanProcessor } from "@opentelemetry/sdk-trace";
import type { RecordingSpan, SpanSink } from "./span.ts";

/** What the runtime needs of each sink it fans out to. */
export interface FlushableSink extends SpanSink {
  /** Exports or processes everything pending. */
  forceFlush(): Promise<void>;
  /** Flushes (bounded by `timeoutMs`) and stops. */
  shutdown(timeoutMs?: number): Promise<void>;
}

/** Hands each ended span to every sink, in order; a throwing sink does not stop the others. */
export class FanOutSink implements SpanSink {
  readonly #sinks: readonly SpanSink[];

  /** Creates the fan-out. */
  constructor(sinks: readonly SpanSink[]) {
    this.#sinks = sinks;
  }

  /** Passes the span on to every sink. */
  onEnd(span: RecordingSpan): void {
    for (const sink of this.#sinks) {
      try {
        sink.onEnd(span);
      } catch {
        // A plugged-in sink must not fail the request that ended the span.
      }
    }
  }
}

/** A stock `SpanProcessor` as a sink: sampled spans go to its `onEnd`. */
export class StockProcessorSink implements FlushableSink {
  readonly #processor: SpanProcessor;

  /** Wraps `processor`. */
  constructor(processor: SpanProcessor) {
    this.#processor = processor;
  }

  /** Calls the processor's `onEnd` for a sampled span. */
  onEnd(span: RecordingSpan): void {
    if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    this.#processor.onEnd(span);
  }

  /** The processor's `forceFlush`. */
  forceFlush(): Promise<void> {
    return this.#processor.forceFlush();
  }

  /** The processor's `shutdown`, bounded by `timeoutMs` (default 5 s). */
  async shutdown(timeoutMs = 5000): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<void>((resolve) => timer = setTimeout(resolve, timeoutMs));
    await Promise.race([this.#processor.shutdown(), deadline]);
    clearTimeout(timer);
  }
}
