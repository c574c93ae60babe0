import assert from "node:assert/strict";
import { context, propagation, ROOT_CONTEXT, trace, TraceFlags } from "@opentelemetry/api";
import {
  buildPropagator,
  extractFromHeaders,
  formatTraceparent,
  injectIntoHeaders,
  isPropagatable,
  parseTraceparent,
  parseUberTraceId,
  setHeaderPropagator,
} from "./propagation.ts";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN = "00f067aa0ba902b7";

Deno.test("traceparent: valid value parses to a remote span context", () => {
  const sc = parseTraceparent(`00-${TRACE}-${SPAN}-01`);
  assert.deepEqual(sc, { traceId: TRACE, spanId: SPAN, traceFlags: 1, isRemote: true });
  assert.equal(parseTraceparent(`00-${TRACE}-${SPAN}-00`)?.traceFlags, 0);
  // Unknown flag bits are ignored; only "sampled" is kept.
  assert.equal(parseTraceparent(`00-${TRACE}-${SPAN}-ff`)?.traceFlags, 1);
});

Deno.test("traceparent: malformed values give no parent and never throw", () => {
  const bad = [
    "",
    "garbage",
    `00-${TRACE}-${SPAN}`,
    `00-${TRACE.toUpperCase()}-${SPAN}-01`,
    `00-${"0".repeat(32)}-${SPAN}-01`,
    `00-${TRACE}-${"0".repeat(16)}-01`,
    `ff-${TRACE}-${SPAN}-01`,
    `00-${TRACE}-${SPAN}-01-extra`,
    `0g-${TRACE}-${SPAN}-01`,
    `00_${TRACE}_${SPAN}_01`,
    `00-${TRACE}-${SPAN}-0x`,
    `00-${TRACE.slice(1)}z-${SPAN}-01`,
  ];
  for (const v of bad) assert.equal(parseTraceparent(v), undefined, v);
  // A future version may append fields after a dash.
  assert.ok(parseTraceparent(`01-${TRACE}-${SPAN}-01-future`));
});

Deno.test("isPropagatable: refuses the all-zero ids and ids of the wrong length", () => {
  const sc = (traceId: string, spanId: string) => ({ traceId, spanId, traceFlags: 1 });
  // Substrings of a header, as extracted ids are.
  const header = `00-${"0".repeat(32)}-${"0".repeat(16)}-01`;
  assert.equal(isPropagatable(sc(TRACE, SPAN)), true);
  assert.equal(isPropagatable(sc(header.slice(3, 35), SPAN)), false);
  assert.equal(isPropagatable(sc(TRACE, header.slice(36, 52))), false);
  assert.equal(isPropagatable(sc(TRACE.slice(1), SPAN)), false);
  assert.equal(isPropagatable(sc(TRACE, `${SPAN}0`)), false);
  assert.equal(isPropagatable(undefined), false);
});

Deno.test("traceparent: format round-trips", () => {
  const sc = { traceId: TRACE, spanId: SPAN, traceFlags: TraceFlags.SAMPLED };
  assert.equal(formatTraceparent(sc), `00-${TRACE}-${SPAN}-01`);
  assert.deepEqual(parseTraceparent(formatTraceparent(sc)), { ...sc, isRemote: true });
});

Deno.test("uber-trace-id: 64- and 128-bit ids, URL-encoded, flags", () => {
  assert.deepEqual(parseUberTraceId("abc:def:0:1"), {
    traceId: "abc".padStart(32, "0"),
    spanId: "def".padStart(16, "0"),
    traceFlags: 1,
    isRemote: true,
  });
  assert.equal(parseUberTraceId(`${TRACE}%3A${SPAN}%3A0%3A0`)?.traceId, TRACE);
  assert.equal(parseUberTraceId(`${TRACE}:${SPAN}:0:0`)?.traceFlags, 0);
  for (const v of ["", "a:b:c", "0:1:0:1", "1:0:0:1", "x:1:0:1", `${TRACE}0:1:0:1`, "%zz"]) {
    assert.equal(parseUberTraceId(v), undefined, v);
  }
});

Deno.test("extract: traceparent wins over uber-trace-id; malformed gives a root context", () => {
  const both = new Headers({
    traceparent: `00-${TRACE}-${SPAN}-01`,
    "uber-trace-id": "abc:def:0:1",
  });
  assert.equal(trace.getSpanContext(extractFromHeaders(both, ROOT_CONTEXT))?.traceId, TRACE);
  const jaegerOnly = new Headers({ "uber-trace-id": "abc:def:0:1" });
  assert.equal(
    trace.getSpanContext(extractFromHeaders(jaegerOnly, ROOT_CONTEXT))?.spanId,
    "def".padStart(16, "0"),
  );
  const malformed = new Headers({ traceparent: "00-zzz", "uber-trace-id": "nonsense" });
  assert.equal(trace.getSpanContext(extractFromHeaders(malformed, ROOT_CONTEXT)), undefined);
});

Deno.test("extract: tracestate and baggage are carried", () => {
  const ctx = extractFromHeaders(
    new Headers({
      traceparent: `00-${TRACE}-${SPAN}-01`,
      tracestate: "vendor=abc,other=1",
      baggage: "tenant=blue",
    }),
    ROOT_CONTEXT,
  );
  assert.equal(trace.getSpanContext(ctx)?.traceState?.get("vendor"), "abc");
  assert.equal(propagation.getBaggage(ctx)?.getEntry("tenant")?.value, "blue");
  const out = new Headers();
  injectIntoHeaders(out, ctx);
  assert.equal(out.get("traceparent"), `00-${TRACE}-${SPAN}-01`);
  assert.equal(out.get("tracestate"), "vendor=abc,other=1");
  assert.equal(out.get("baggage"), "tenant=blue");
});

Deno.test("inject: nothing is written without a valid span; other headers untouched", () => {
  const headers = new Headers([["accept", "application/vnd.oci.image.manifest.v1+json"], [
    "x-b",
    "2",
  ], ["x-a", "1"]]);
  const before = [...headers.entries()];
  injectIntoHeaders(headers, ROOT_CONTEXT);
  assert.deepEqual([...headers.entries()], before);
  const ctx = trace.setSpanContext(context.active(), {
    traceId: TRACE,
    spanId: SPAN,
    traceFlags: 0,
  });
  injectIntoHeaders(headers, ctx);
  assert.equal(headers.get("traceparent"), `00-${TRACE}-${SPAN}-00`);
  assert.deepEqual(
    [...headers.entries()].filter(([k]) => k !== "traceparent"),
    before,
  );
});

Deno.test("OTEL_PROPAGATORS: b3, b3multi and jaeger inject and extract; none propagates nothing", () => {
  const sc = { traceId: TRACE, spanId: SPAN, traceFlags: TraceFlags.SAMPLED, isRemote: false };
  const ctx = trace.setSpanContext(ROOT_CONTEXT, sc);
  const injected = (names: Parameters<typeof buildPropagator>[0]) => {
    setHeaderPropagator(buildPropagator(names));
    try {
      const headers = new Headers({ accept: "*/*" });
      injectIntoHeaders(headers, ctx);
      const back = trace.getSpanContext(extractFromHeaders(headers, ROOT_CONTEXT));
      return { headers: Object.fromEntries(headers), back };
    } finally {
      setHeaderPropagator(buildPropagator(undefined));
    }
  };
  const b3 = injected(["b3"]);
  assert.deepEqual(b3.headers, { accept: "*/*", b3: `${TRACE}-${SPAN}-1` });
  assert.equal(b3.back?.traceId, TRACE);
  const multi = injected(["b3multi"]);
  assert.equal(multi.headers["x-b3-traceid"], TRACE);
  assert.equal(multi.headers["x-b3-spanid"], SPAN);
  assert.equal(multi.headers["x-b3-sampled"], "1");
  assert.equal(multi.back?.spanId, SPAN);
  const jaeger = injected(["jaeger"]);
  assert.deepEqual(jaeger.headers, { accept: "*/*", "uber-trace-id": `${TRACE}:${SPAN}:0:01` });
  assert.equal(jaeger.back?.traceFlags, TraceFlags.SAMPLED);
  const both = injected(["tracecontext", "b3multi"]);
  assert.equal(both.headers.traceparent, `00-${TRACE}-${SPAN}-01`);
  assert.equal(both.headers["x-b3-traceid"], TRACE);
  const none = injected(["none"]);
  assert.deepEqual(none.headers, { accept: "*/*" });
  assert.equal(none.back, undefined);
  // Nothing is written without a valid span context.
  setHeaderPropagator(buildPropagator(["b3multi"]));
  const empty = new Headers();
  injectIntoHeaders(empty, ROOT_CONTEXT);
  setHeaderPropagator(buildPropagator(undefined));
  assert.deepEqual([...empty.keys()], []);
});
