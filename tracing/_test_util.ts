/**
 * Test helpers over the real tracing set-up, for any role's tests: the config that records every
 * span, a logger that keeps its lines and a span collector with an in-memory exporter.
 *
 * @module
 */

import { ExportResultCode } from "@opentelemetry/core";
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace";
import { createLogger, type Logger } from "../common/log.ts";
import {
  initTracing,
  parseTracingConfig,
  traceLogFields,
  type TracingConfig,
  type TracingRuntime,
} from "./mod.ts";

/**
 * Tracing on for `role` with every root sampled. The host's load never opens the circuit breaker
 * (load is at most 1): tests that assert which spans exist must not lose them to a busy machine.
 */
export function testTracingConfig(role: string): TracingConfig {
  return parseTracingConfig(
    { enabled: true, sampling: { default_rate: 1 }, safeguards: { load_threshold: 1 } },
    role,
    {},
  );
}

/** A logger that keeps its JSON lines in `lines`. */
export function memoryLogger(role: string): Logger & { lines: string[] } {
  const lines: string[] = [];
  const logger = createLogger({
    role,
    level: "debug",
    write: (l) => lines.push(l),
    contextFields: traceLogFields,
  });
  return Object.assign(logger, { lines });
}

/** Tracing set up with an in-memory exporter. */
export interface SpanCollector {
  /** The tracing runtime (shut it down at the end of the test). */
  readonly runtime: TracingRuntime;
  /** Flushes and returns every span ended so far. */
  spans(): Promise<ReadableSpan[]>;
}

/**
 * Initialises tracing for this process with every root sampled and spans kept in memory. Call
 * `runtime.shutdown()` when done: it also unregisters the global provider for the next test.
 */
export function collectSpans(role: string): SpanCollector {
  const collected: ReadableSpan[] = [];
  const exporter: SpanExporter = {
    export(spans, done) {
      collected.push(...spans);
      done({ code: ExportResultCode.SUCCESS });
    },
    shutdown: () => Promise.resolve(),
  };
  const runtime = initTracing(testTracingConfig(role), {
    role,
    logger: memoryLogger(role),
    exporter,
  });
  return {
    runtime,
    async spans() {
      await runtime.forceFlush();
      return [...collected];
    },
  };
}
