import assert from "node:assert/strict";
import { setImmediate } from "node:timers";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import {
  type Attributes,
  ROOT_CONTEXT,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
} from "@opentelemetry/api";
import { TraceState } from "@opentelemetry/core";
import { ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOnSampler,
  type ReadableSpan,
  type SpanProcessor,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import { encodeTraceRequest } from "./otlp_serialize.ts";
import { KrakenTracerProvider } from "./tracer.ts";

const resource = resourceFromAttributes({
  "service.name": "serialize-test",
  "service.version": "1.2.3",
  "host.cores": 2,
  "deployment.canary": false,
  "ratio": 0.25,
  "tags": ["a", "b"],
});

function provider(limits?: ConstructorParameters<typeof KrakenTracerProvider>[0]["limits"]) {
  return new KrakenTracerProvider({
    resource,
    sampler: new AlwaysOnSampler(),
    sink: { onEnd() {} },
    limits,
  });
}
const tracer = provider().getTracer("serialize-test");

function spans(n: number): ReadableSpan[] {
  return Array.from({ length: n }, (_, i) => {
    const span = tracer.startSpan(`op ${i}`, { attributes: { i } });
    span.end();
    return span as unknown as ReadableSpan;
  });
}

/** Our bytes for `batch` must be the stock serializer's. */
async function assertStockBytes(batch: ReadableSpan[]): Promise<Uint8Array> {
  const ours = await encodeTraceRequest(batch);
  const stock = ProtobufTraceSerializer.serializeRequest(batch)!;
  assert.ok(ours.length > 0 || batch.length === 0);
  assert.equal(ours.length, stock.length, "request length");
  assert.deepEqual(ours, stock);
  return ours;
}

// Attribute values of every type the API allows, and edge cases of each.
const EVERY_VALUE: Attributes = {
  "str": "GET",
  "str.empty": "",
  "str.utf8": "blob ünïcødé ✓ 🐙",
  "str.long": "x".repeat(300),
  "bool.true": true,
  "bool.false": false,
  "int.zero": 0,
  "int.small": 200,
  "int.port": 16000,
  "int.big": 2 ** 40 + 7,
  "int.max_safe": Number.MAX_SAFE_INTEGER,
  "int.negative": -1,
  "int.negative.big": -(2 ** 40) - 3,
  "int.min": -(2 ** 63),
  "int.beyond": 2 ** 63,
  "double": 1.5,
  "double.negative": -0.001,
  "double.nan": NaN,
  "double.inf": Infinity,
  "str[]": ["a", "ünï", ""],
  "bool[]": [true, false],
  "int[]": [1, -2, 2 ** 33],
  "double[]": [0.5, -1.25],
  "mixed.null[]": ["a", null, "b"] as unknown as string[],
  "empty[]": [],
};

const remoteParent: SpanContext = {
  traceId: "0af7651916cd43dd8448eb211c80319c",
  spanId: "b7ad6b7169203331",
  traceFlags: TraceFlags.SAMPLED,
  isRemote: true,
  traceState: new TraceState("vendor=abc,other=x-y"),
};

Deno.test("encodeTraceRequest: every span field and attribute type is encoded as the stock serializer does, byte for byte", async () => {
  const t = provider({
    attributeCount: 8,
    attributeValueLength: 1024,
    eventCount: 2,
    linkCount: 1,
    eventAttributeCount: 2,
    linkAttributeCount: 1,
  }).getTracer("scope-a", "4.5.6", { schemaUrl: "https://opentelemetry.io/schemas/1.26.0" });
  const batch: ReadableSpan[] = [];
  const keep = (s: unknown) => batch.push(s as ReadableSpan);

  // Every kind; a root, a local child and a remote child with trace state.
  for (
    const kind of [
      SpanKind.INTERNAL,
      SpanKind.SERVER,
      SpanKind.CLIENT,
      SpanKind.PRODUCER,
      SpanKind.CONSUMER,
    ]
  ) {
    const root = t.startSpan(`kind ${kind}`, { kind }, ROOT_CONTEXT);
    const child = t.startSpan("child", {}, trace.setSpan(ROOT_CONTEXT, root));
    child.end();
    root.end();
    keep(child);
    keep(root);
  }
  const remote = t.startSpan(
    "remote child",
    { kind: SpanKind.SERVER },
    trace.setSpanContext(ROOT_CONTEXT, remoteParent),
  );
  remote.end();
  keep(remote);

  // Attributes of every type, 8 kept and the rest counted dropped.
  const keys = Object.keys(EVERY_VALUE);
  for (let i = 0; i < keys.length; i += 8) {
    const attrs: Attributes = {};
    for (const key of keys.slice(i, i + 8)) attrs[key] = EVERY_VALUE[key];
    const s = t.startSpan(`attrs ${i}`, { attributes: attrs }, ROOT_CONTEXT);
    s.end();
    keep(s);
  }
  const dropped = t.startSpan("dropped attributes", {
    attributes: Object.fromEntries(keys.map((k) => [k, EVERY_VALUE[k]])),
  }, ROOT_CONTEXT);
  dropped.end();
  keep(dropped);

  // Status: ok, error with a message (non-ASCII), error without one.
  for (
    const status of [
      { code: SpanStatusCode.OK },
      { code: SpanStatusCode.ERROR, message: "upstream 503: brûlé" },
      { code: SpanStatusCode.ERROR },
    ]
  ) {
    const s = t.startSpan(`status ${status.code}`, {}, ROOT_CONTEXT);
    s.setStatus(status);
    s.end();
    keep(s);
  }

  // Events with attributes (some dropped), an exception, events beyond the limit.
  const events = t.startSpan("events", {}, ROOT_CONTEXT);
  events.addEvent("piece.received", { "piece": 3, "peer": "10.0.0.1", "extra": true }, [
    1764655200,
    123456000,
  ]);
  events.recordException(new Error("digest mismatch"));
  events.addEvent("dropped one");
  events.end();
  keep(events);

  // Links with attributes, trace state and the remote flag; one beyond the limit.
  const links = t.startSpan("links", {
    links: [
      { context: remoteParent, attributes: { "link.reason": "forced trace id", "n": 2 } },
      { context: { ...remoteParent, spanId: "00f067aa0ba902b7", isRemote: false } },
    ],
  }, ROOT_CONTEXT);
  links.end();
  keep(links);

  // One span over 16 KiB, so its length takes three bytes.
  const big = provider().getTracer("scope-a").startSpan("big", {
    attributes: Object.fromEntries(
      Array.from({ length: 20 }, (_, i) => [`k${i}`, "v".repeat(1000)]),
    ),
  }, ROOT_CONTEXT);
  big.end();
  keep(big);

  const bytes = await assertStockBytes(batch);
  assert.ok(bytes.length > 16384);
});

Deno.test("encodeTraceRequest: spans of several resources and scopes are grouped as the stock serializer groups them", async () => {
  const other = new KrakenTracerProvider({
    resource: resourceFromAttributes({ "service.name": "other" }),
    sampler: new AlwaysOnSampler(),
    sink: { onEnd() {} },
  });
  const tracers = [
    tracer,
    provider().getTracer("scope-b", "1"),
    other.getTracer("scope-c"),
    other.getTracer("scope-d", undefined, { schemaUrl: "https://example.com/schema" }),
  ];
  const batch: ReadableSpan[] = [];
  for (let i = 0; i < 40; i++) {
    const s = tracers[i % tracers.length].startSpan(`op ${i}`, { attributes: { i } });
    s.end();
    batch.push(s as unknown as ReadableSpan);
  }
  await assertStockBytes(batch);
  await assertStockBytes([]);
});

Deno.test("encodeTraceRequest: spans of the stock SDK encode as the stock serializer does", async () => {
  const ended: ReadableSpan[] = [];
  const processor: SpanProcessor = {
    onStart() {},
    onEnd: (s) => void ended.push(s),
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
  };
  const sdk = new TracerProvider({ resource, spanProcessors: [processor] });
  const t = sdk.getTracer("stock", "0.0.1");
  const root = t.startSpan(
    "root",
    { kind: SpanKind.SERVER, attributes: EVERY_VALUE },
    ROOT_CONTEXT,
  );
  const child = t.startSpan("child", {}, trace.setSpan(ROOT_CONTEXT, root));
  child.addEvent("e", { k: "v" });
  child.setStatus({ code: SpanStatusCode.ERROR, message: "boom" });
  child.end();
  root.end();
  await assertStockBytes(ended);
});

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
    const [res] = submessages(resourceSpans, 1);
    const service = submessages(res, 1).map((kv) => {
      const [value] = submessages(kv, 2);
      return [text.decode(submessages(kv, 1)[0]), text.decode(submessages(value, 1)[0])];
    }).find(([key]) => key === "service.name")?.[1] ?? "";
    const names = submessages(resourceSpans, 2).flatMap((scopeSpans) =>
      submessages(scopeSpans, 2).map((span) => text.decode(submessages(span, 5)[0]))
    );
    return { service, spans: names };
  });
}

Deno.test("encodeTraceRequest: a large batch yields to other work and is still one ResourceSpans with every span in order", async () => {
  const batch = spans(600);
  const order: string[] = [];
  // A zero budget yields at every look at the clock.
  const done = encodeTraceRequest(batch, { sliceMs: 0 }).then((bytes) => {
    order.push("encoded");
    return bytes;
  });
  setImmediate(() => order.push("other work"));
  const request = await done;
  assert.deepEqual(order, ["other work", "encoded"]);
  assert.deepEqual(decode(request), [{
    service: "serialize-test",
    spans: batch.map((s) => s.name),
  }]);
  assert.deepEqual(request, ProtobufTraceSerializer.serializeRequest(batch));
});
