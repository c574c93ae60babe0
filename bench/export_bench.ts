/**
 * What span export costs the event loop: OTLP protobuf serialization of a full batch (512 spans
 * shaped like an agent's blob GET server span) in one piece, as the export used to run, against one
 * 32-span slice of `tracing/otlp_serialize.ts` (the longest the loop is held now) and the whole
 * sliced batch. Requests that arrive during a synchronous step wait for it, so the one-piece figure
 * is what showed in the p99 at 100% sampling; numbers in docs/performance.md.
 *
 *     deno bench -A bench/export_bench.ts
 *
 * @module
 */

import { ROOT_CONTEXT, SpanKind } from "@opentelemetry/api";
import { ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import type { ReadableSpan } from "@opentelemetry/sdk-trace";
import { ATTR } from "../tracing/names.ts";
import { DEFAULT_SLICE_SPANS, serializeInSlices } from "../tracing/otlp_serialize.ts";
import { parseSamplingConfig } from "../tracing/sampling/config.ts";
import { buildSampler } from "../tracing/sampling/build.ts";
import { KrakenTracerProvider } from "../tracing/tracer.ts";

const tracer = new KrakenTracerProvider({
  resource: resourceFromAttributes({
    "service.name": "kraken-agent",
    "service.version": "0.1.0",
    "host.name": "bench",
  }),
  sampler: buildSampler(parseSamplingConfig({ default_rate: 1 }, "tracing.sampling")),
  sink: { onEnd() {} },
}).getTracer("kraken");

const BATCH = 512;
const batch: ReadableSpan[] = Array.from({ length: BATCH }, (_, i) => {
  const span = tracer.startSpan("GET /namespace/{namespace}/blobs/{digest}", {
    kind: SpanKind.SERVER,
    attributes: {
      [ATTR.httpRequestMethod]: "GET",
      [ATTR.urlPath]: `/namespace/library%2Fubuntu/blobs/sha256:${
        i.toString(16).padStart(64, "0")
      }`,
      [ATTR.urlScheme]: "http",
      [ATTR.serverAddress]: "127.0.0.1",
      [ATTR.serverPort]: 16000,
      [ATTR.httpRoute]: "/namespace/{namespace}/blobs/{digest}",
      [ATTR.edge]: true,
      [ATTR.clientAddress]: "127.0.0.1",
      [ATTR.networkPeerAddress]: "127.0.0.1",
      [ATTR.networkPeerPort]: 40000 + i,
      [ATTR.httpResponseStatusCode]: 200,
      [ATTR.httpResponseBodySize]: 65536,
    },
  }, ROOT_CONTEXT);
  span.end();
  return span as unknown as ReadableSpan;
});
const slice = batch.slice(0, DEFAULT_SLICE_SPANS);

Deno.bench("export: 512 spans serialized in one piece (the old longest step)", {
  group: "export",
  baseline: true,
}, () => {
  ProtobufTraceSerializer.serializeRequest(batch);
});
Deno.bench(`export: one ${DEFAULT_SLICE_SPANS}-span slice (the longest step now)`, {
  group: "export",
}, () => {
  ProtobufTraceSerializer.serializeRequest(slice);
});
Deno.bench("export: 512 spans in slices, whole batch", { group: "export" }, async () => {
  await serializeInSlices(batch);
});
