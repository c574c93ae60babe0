/**
 * The OTLP/HTTP sink of the end-to-end measurements, run as its own process so its work never
 * lands on the load generator's event loop: it answers every `POST /v1/traces` at once with an
 * empty success (protobuf or JSON, as asked), counting requests and body bytes, and
 * `GET /stats` returns `{requests, bytes}`. Unlike `scripts/otlp_collector.ts` (the demo's, which
 * decodes OTLP/JSON into trace trees) it decodes nothing, so it answers as fast as a collector can.
 *
 *     deno run --allow-net perf/e2e_collector.ts --port=4318
 *
 * @module
 */

/** What `GET /stats` returns. */
export interface SinkStats {
  /** Export requests received. */
  requests: number;
  /** Body bytes received (as sent: protobuf, not compressed by the nodes here). */
  bytes: number;
}

/** Answers exports at once and counts them; `stats()` reads the counters. */
export function sinkHandler(): { handler: (req: Request) => Promise<Response>; stats: SinkStats } {
  const stats: SinkStats = { requests: 0, bytes: 0 };
  const handler = async (req: Request): Promise<Response> => {
    const path = new URL(req.url).pathname;
    if (req.method === "GET" && path === "/stats") return Response.json(stats);
    if (req.method !== "POST" || path !== "/v1/traces") {
      return new Response("not found: this sink takes POST /v1/traces", { status: 404 });
    }
    const body = await req.arrayBuffer();
    stats.requests++;
    stats.bytes += body.byteLength;
    // An empty ExportTraceServiceResponse is an empty protobuf message, or `{}` in JSON.
    return req.headers.get("content-type")?.includes("json")
      ? Response.json({})
      : new Response(new Uint8Array(0), { headers: { "content-type": "application/x-protobuf" } });
  };
  return { handler, stats };
}

if (import.meta.main) {
  const arg = Deno.args.find((a) => a.startsWith("--port="));
  const port = Number(arg?.slice("--port=".length));
  if (!Number.isInteger(port) || port < 1) {
    console.error("usage: e2e_collector.ts --port=<port>");
    Deno.exit(2);
  }
  Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, sinkHandler().handler);
}
