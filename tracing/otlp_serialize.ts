/**
 * OTLP protobuf serialization of a span batch in slices, so an export never holds the event loop
 * (and the requests waiting on it) for the whole batch.
 *
 * Serializing one span costs microseconds (attributes, ids, times); a full batch of 512 took
 * milliseconds in one piece, long enough to show in the p99 of the requests that arrived meanwhile.
 * Here the batch is serialized {@linkcode SerializeOptions.sliceSpans} spans at a time, each slice
 * in its own macrotask (`setImmediate`, so pending I/O runs in between), and the slices are joined:
 * an `ExportTraceServiceRequest` has one field, the repeated `resource_spans`, so concatenated
 * requests are one valid request holding every slice's `ResourceSpans`.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import { ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import type { ReadableSpan } from "@opentelemetry/sdk-trace";
import { concatBytes } from "../common/bytes.ts";

/** Spans serialized per macrotask by default. */
export const DEFAULT_SLICE_SPANS = 32;

/** Options of {@linkcode serializeInSlices}. */
export interface SerializeOptions {
  /** Spans per slice. Default {@linkcode DEFAULT_SLICE_SPANS}. */
  sliceSpans?: number;
}

function nextMacrotask(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * The OTLP protobuf `ExportTraceServiceRequest` of `spans`, serialized a slice at a time; rejects
 * when the serializer fails.
 */
export async function serializeInSlices(
  spans: readonly ReadableSpan[],
  options: SerializeOptions = {},
): Promise<Uint8Array> {
  const slice = Math.max(1, options.sliceSpans ?? DEFAULT_SLICE_SPANS);
  const parts: Uint8Array[] = [];
  for (let i = 0; i < spans.length; i += slice) {
    if (i > 0) await nextMacrotask();
    const part = ProtobufTraceSerializer.serializeRequest(spans.slice(i, i + slice));
    if (!part) throw new Error("serialization failed");
    parts.push(part);
  }
  return parts.length === 1 ? parts[0] : concatBytes(parts);
}
