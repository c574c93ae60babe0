/**
 * A tiny OTLP/HTTP receiver for the demo: roles export OTLP/JSON to it, it keeps the spans grouped
 * by trace so the demo can print each trace as a tree, and, when given a forward URL (a real Jaeger
 * or collector), passes every request body on unchanged.
 *
 * @module
 */

import {
  assembleTree,
  type SpanKindName,
  type SpanNode,
  type TraceTree,
} from "../cli/trace_tree.ts";

interface OtlpValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: number | string;
  doubleValue?: number;
  arrayValue?: { values?: OtlpValue[] };
}

interface OtlpKeyValue {
  key: string;
  value: OtlpValue;
}

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind?: number;
  startTimeUnixNano: string | number;
  endTimeUnixNano: string | number;
  attributes?: OtlpKeyValue[];
  events?: { name: string; timeUnixNano: string | number; attributes?: OtlpKeyValue[] }[];
  links?: { traceId: string; spanId: string }[];
  status?: { code?: number; message?: string };
}

interface OtlpRequest {
  resourceSpans?: {
    resource?: { attributes?: OtlpKeyValue[] };
    scopeSpans?: { spans?: OtlpSpan[] }[];
  }[];
}

const KINDS: SpanKindName[] = [
  "unspecified",
  "internal",
  "server",
  "client",
  "producer",
  "consumer",
];

function value(v: OtlpValue): unknown {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(value);
  return undefined;
}

function attributes(kvs: OtlpKeyValue[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of kvs ?? []) out[kv.key] = value(kv.value);
  return out;
}

function micros(nanos: string | number): number {
  return Number(BigInt(nanos) / 1000n);
}

/** Converts one OTLP/JSON export request into span nodes (without tree links). */
export function spansFromOtlpJson(body: OtlpRequest): SpanNode[] {
  const out: SpanNode[] = [];
  for (const rs of body.resourceSpans ?? []) {
    const resource = attributes(rs.resource?.attributes);
    const service = String(resource["service.name"] ?? "");
    delete resource["service.name"];
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        const start = micros(s.startTimeUnixNano);
        out.push({
          traceId: s.traceId,
          spanId: s.spanId,
          parentSpanId: s.parentSpanId || undefined,
          name: s.name,
          service,
          attributes: attributes(s.attributes),
          resource,
          kind: KINDS[s.kind ?? 0] ?? "unspecified",
          status: s.status?.code === 2 ? "error" : s.status?.code === 1 ? "ok" : "unset",
          statusMessage: s.status?.message || undefined,
          startUs: start,
          durationUs: micros(s.endTimeUnixNano) - start,
          children: [],
          links: (s.links ?? []).map((l) => ({
            traceId: l.traceId,
            spanId: l.spanId,
            refType: "FOLLOWS_FROM",
          })),
          events: (s.events ?? []).map((e) => ({
            name: e.name,
            timeUs: micros(e.timeUnixNano),
            attributes: attributes(e.attributes),
          })),
          warnings: [],
        });
      }
    }
  }
  return out;
}

/** A running collector. */
export interface Collector {
  /** Base URL to give roles as `OTEL_EXPORTER_OTLP_ENDPOINT`. */
  endpoint: string;
  /** Every trace received so far, oldest first. */
  traces(): TraceTree[];
  /** Number of spans received. */
  spanCount(): number;
  /** Stops listening. */
  close(): Promise<void>;
}

/** Starts the collector on a free loopback port; `forwardUrl` is a `/v1/traces` URL or undefined. */
export function startCollector(forwardUrl?: string): Collector {
  const byTrace = new Map<string, SpanNode[]>();
  let count = 0;
  const forwards: Promise<unknown>[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    if (req.method !== "POST" || new URL(req.url).pathname !== "/v1/traces") {
      return new Response("not found", { status: 404 });
    }
    if (!req.headers.get("content-type")?.includes("json")) {
      return new Response("this collector takes OTLP/JSON (export.protocol: http/json)", {
        status: 415,
      });
    }
    const text = await req.text();
    for (const span of spansFromOtlpJson(JSON.parse(text))) {
      count++;
      const list = byTrace.get(span.traceId) ?? [];
      list.push(span);
      byTrace.set(span.traceId, list);
    }
    if (forwardUrl) {
      forwards.push(
        fetch(forwardUrl, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: text,
        }).then((r) => r.body?.cancel(), () => {}),
      );
    }
    return Response.json({});
  });
  return {
    endpoint: `http://127.0.0.1:${server.addr.port}`,
    traces: () =>
      [...byTrace.entries()]
        .map(([id, spans]) =>
          assembleTree(id, spans.map((s) => ({ ...s, children: [] as SpanNode[] })))
        )
        .sort((a, b) => (a.roots[0]?.startUs ?? 0) - (b.roots[0]?.startUs ?? 0)),
    spanCount: () => count,
    async close() {
      await Promise.all(forwards);
      await server.shutdown();
    },
  };
}
