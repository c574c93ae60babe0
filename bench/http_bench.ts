/**
 * What tracing adds to one HTTP request in a role: the shared router with and without the tracing
 * middleware (server span, context extraction, one `withSpan` child, streamed body end), tracing
 * sampled and unsampled. Compare the difference with a blob request's latency (milliseconds) for
 * the ERD's "<1% of the critical path" budget; numbers in docs/performance.md.
 *
 * @module
 */

import { createLogger } from "../common/log.ts";
import { ExportResultCode } from "@opentelemetry/core";
import type { SpanExporter } from "@opentelemetry/sdk-trace";
import { Router } from "../http/router.ts";
import { parseTracingConfig } from "../tracing/config.ts";
import { withSpan } from "../tracing/api.ts";
import { initTracing, type TracingRuntime } from "../tracing/setup.ts";
import { SPAN } from "../tracing/names.ts";

const discard: SpanExporter = {
  export: (_spans, done) => done({ code: ExportResultCode.SUCCESS }),
  shutdown: () => Promise.resolve(),
};

function router(tracing: TracingRuntime | undefined): Router {
  const r = new Router();
  if (tracing) r.use(tracing.serverMiddleware());
  r.get(
    "/namespace/{namespace}/blobs/{digest}",
    (ctx) =>
      withSpan(
        SPAN.agentDownloadBlob,
        { namespace: ctx.params.namespace },
        () => new Response("blob bytes"),
      ),
  );
  return r;
}

const logger = createLogger({ role: "bench", write: () => {} });
const tracing = initTracing(
  parseTracingConfig(
    {
      enabled: true,
      sampling: { default_rate: 1 },
      export: { batch_timeout: "60s" },
      safeguards: { circuit_breaker_enabled: false },
    },
    "bench",
    {},
  ),
  { role: "bench", logger, exporter: discard },
);
const plain = router(undefined);
const traced = router(tracing);
const url = "http://127.0.0.1/namespace/library%2Fubuntu/blobs/sha256:" + "ab".repeat(32);
const RUN = { n: 50_000, warmup: 5_000 };

async function request(r: Router, headers?: HeadersInit): Promise<void> {
  const res = await r.handle(new Request(url, { headers }));
  await res.arrayBuffer();
}

Deno.bench("http: request, no tracing", { ...RUN, group: "http", baseline: true }, async () => {
  await request(plain);
});
Deno.bench("http: request, traced (sampled)", { ...RUN, group: "http" }, async () => {
  await request(traced);
});
Deno.bench("http: request, traced (parent not sampled)", { ...RUN, group: "http" }, async () => {
  await request(traced, { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00" });
});
