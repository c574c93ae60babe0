/**
 * What span export costs the event loop: the OTLP protobuf request of a full batch (512 spans
 * shaped like an agent's blob GET server span) by the stock serializer
 * (`@opentelemetry/otlp-transformer`, which the exporters used before) against our encoder
 * (`tracing/otlp_serialize.ts`, what they use now), both in one synchronous piece, so the figures
 * are CPU per batch; divide by 512 for µs per span. Numbers in docs/performance.md.
 *
 *     deno bench -A bench/export_bench.ts
 *
 * Run as a script it compares the two by process CPU time instead, in alternating rounds (a loaded
 * machine's waits for a core count for neither side), and prints µs per span and the ratio:
 *
 *     deno run -A bench/export_bench.ts [--rounds=40]
 *
 * @module
 */

import process from "node:process";
import { ROOT_CONTEXT, SpanKind } from "@opentelemetry/api";
import { ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import type { ReadableSpan } from "@opentelemetry/sdk-trace";
import { ATTR } from "../tracing/names.ts";
import { encodeTraceRequest } from "../tracing/otlp_serialize.ts";
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
// No yield inside the measured call: the encoder's time budget is set beyond any batch.
const ONE_PIECE = { sliceMs: 1e9 };

Deno.bench("export: 512 spans, stock serializer", { group: "export", baseline: true }, () => {
  ProtobufTraceSerializer.serializeRequest(batch);
});
Deno.bench("export: 512 spans, our encoder", { group: "export" }, async () => {
  await encodeTraceRequest(batch, ONE_PIECE);
});

function cpuMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

/** Median of each side's CPU µs per span over `rounds` alternating rounds of `batches` batches. */
async function compareByCpu(rounds: number, batches: number): Promise<[number, number]> {
  const stock: number[] = [];
  const ours: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let started = cpuMicros();
    for (let b = 0; b < batches; b++) ProtobufTraceSerializer.serializeRequest(batch);
    stock.push((cpuMicros() - started) / (batches * BATCH));
    started = cpuMicros();
    for (let b = 0; b < batches; b++) await encodeTraceRequest(batch, ONE_PIECE);
    ours.push((cpuMicros() - started) / (batches * BATCH));
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1];
  return [median(stock), median(ours)];
}

if (import.meta.main) {
  const rounds = Number(Deno.args.find((a) => a.startsWith("--rounds="))?.slice(9) ?? 40);
  await compareByCpu(3, 10); // warm-up: both sides optimized before the clock counts
  const [stock, ours] = await compareByCpu(rounds, 10);
  console.log(`${BATCH}-span batch, CPU µs per span, median of ${rounds} alternating rounds:`);
  console.log(
    `  stock serializer ${stock.toFixed(2)}, our encoder ${ours.toFixed(2)}, ` +
      `ratio ${(ours / stock).toFixed(2)}`,
  );
}
