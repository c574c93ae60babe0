/**
 * Trace checks the storage-backend flow tests share: the pull trace in which a cold origin read a
 * blob from its backend (`backend.download`), and the write-back trace of a blob
 * (`backend.upload`), found in Jaeger.
 *
 * ```ts
 * const { trace, span } = await waitForBackendDownloadTrace(jaeger, layer.digest.toString());
 * assert.equal(span.attributes[ATTR.backendType], "s3", formatTree(trace));
 * ```
 *
 * @module
 */

import type { JaegerInstance } from "./jaeger.ts";
import { findSpans, type SpanNode, type TraceTree } from "./trace_tree.ts";
import { waitFor } from "./wait.ts";
import { ATTR, SPAN } from "../../tracing/names.ts";

/** A trace and the span of it that was looked for. */
export interface FoundSpan {
  /** The whole trace. */
  trace: TraceTree;
  /** The span in it. */
  span: SpanNode;
}

/**
 * Waits for the agent's pull trace (its root is a `kraken-agent` span) that holds the origin's
 * `backend.download` of `digest` (`sha256:…`).
 * @throws Error after `timeoutMs` (default 20 s)
 */
export function waitForBackendDownloadTrace(
  jaeger: JaegerInstance,
  digest: string,
  options: { timeoutMs?: number } = {},
): Promise<FoundSpan> {
  return waitFor("a pull trace with backend.download", async () => {
    const traces = await jaeger.findTraces({
      service: "kraken-origin",
      operation: SPAN.backendDownload,
      limit: 50,
    });
    for (const trace of traces) {
      const span = findSpans(trace, (s) =>
        s.name === SPAN.backendDownload && s.attributes[ATTR.digest] === digest)[0];
      // The whole pull is one trace: its root is the agent's registry request.
      if (
        span && trace.roots.some((r) =>
          r.service === "kraken-agent"
        )
      ) {
        return { trace, span };
      }
    }
    return undefined;
  }, { timeoutMs: options.timeoutMs ?? 20_000, intervalMs: 250 });
}

/**
 * Waits for a trace holding a `backend.upload` of `digest` that `accept` takes (say, one with
 * `kraken.backend.parts_resumed` set), and returns it with that span.
 * @throws Error after `timeoutMs` (default 20 s)
 */
export function waitForBackendUploadTrace(
  jaeger: JaegerInstance,
  digest: string,
  accept: (span: SpanNode) => boolean = () => true,
  options: { timeoutMs?: number } = {},
): Promise<FoundSpan> {
  return waitFor("a trace with backend.upload", async () => {
    const traces = await jaeger.findTraces({
      service: "kraken-origin",
      operation: SPAN.backendUpload,
      limit: 50,
    });
    for (const trace of traces) {
      const span = findSpans(trace, (s) =>
        s.name === SPAN.backendUpload && s.attributes[ATTR.digest] === digest && accept(s))[0];
      if (span) {
        return { trace, span };
      }
    }
    return undefined;
  }, { timeoutMs: options.timeoutMs ?? 20_000, intervalMs: 250 });
}
