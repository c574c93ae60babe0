import assert from "node:assert/strict";
import { setImmediate } from "node:timers";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { AlwaysOnSampler, type ReadableSpan } from "@opentelemetry/sdk-trace";
import { serializeInSlices } from "./otlp_serialize.ts";
import { KrakenTracerProvider } from "./tracer.ts";

const tracer = new KrakenTracerProvider({
  resource: resourceFromAttributes({ "service.name": "serialize-test" }),
  sampler: new AlwaysOnSampler(),
  sink: { onEnd() {} },
}).getTracer("serialize-test");

function spans(n: number): ReadableSpan[] {
  return Array.from({ length: n }, (_, i) => {
    const span = tracer.startSpan(`op ${i}`, { attributes: { i } });
    span.end();
    return span as unknown as ReadableSpan;
  });
}

/** The length-delimited fields numbered `field` of one message. */
function submessages(bytes: Uint8Array, field: number): Uint8Array[] {
  const reader = new BinaryReader(bytes);
  const out: Uint8Array[] = [];
  while (reader.pos < reader.len) {
    const [number, type] = reader.tag();
    if (number === field && type === WireType.LengthDelimited) out.push(reader.bytes());
    else reader.skip(type);
  }
  return out;
}

/** Per `ResourceSpans`: the service name and the names of its spans, as a collector reads them. */
function decode(request: Uint8Array): { service: string; spans: string[] }[] {
  const text = new TextDecoder();
  return submessages(request, 1).map((resourceSpans) => {
    const [resource] = submessages(resourceSpans, 1);
    const service = submessages(resource, 1).map((kv) => {
      const [value] = submessages(kv, 2);
      return [text.decode(submessages(kv, 1)[0]), text.decode(submessages(value, 1)[0])];
    }).find(([key]) => key === "service.name")?.[1] ?? "";
    const names = submessages(resourceSpans, 2).flatMap((scopeSpans) =>
      submessages(scopeSpans, 2).map((span) => text.decode(submessages(span, 5)[0]))
    );
    return { service, spans: names };
  });
}

Deno.test("serializeInSlices: one request whose ResourceSpans hold every span in order, a slice each", async () => {
  const batch = spans(70);
  const request = await serializeInSlices(batch, { sliceSpans: 32 });
  const decoded = decode(request);
  assert.deepEqual(decoded.map((r) => r.spans.length), [32, 32, 6]);
  assert.ok(decoded.every((r) => r.service === "serialize-test"));
  assert.deepEqual(decoded.flatMap((r) => r.spans), batch.map((s) => s.name));
  // Each slice is exactly what the stock serializer writes for those spans.
  assert.deepEqual(
    request.subarray(0, ProtobufTraceSerializer.serializeRequest(batch.slice(0, 32))!.length),
    ProtobufTraceSerializer.serializeRequest(batch.slice(0, 32)),
  );
});

Deno.test("serializeInSlices: other work runs between slices; a batch within one slice is the stock request", async () => {
  const order: string[] = [];
  const done = serializeInSlices(spans(3), { sliceSpans: 1 }).then(() => order.push("serialized"));
  setImmediate(() => order.push("other work"));
  await done;
  assert.deepEqual(order, ["other work", "serialized"]);

  const small = spans(5);
  assert.deepEqual(await serializeInSlices(small), ProtobufTraceSerializer.serializeRequest(small));
});
