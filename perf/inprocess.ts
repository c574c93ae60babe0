/**
 * What tracing adds to one HTTP request in a role, measured in-process: the agent's router stack
 * (the tracing runtime's `serverMiddleware` on an edge listener, then the 5xx log) serving a blob
 * route whose handler opens one `withSpan` child, with tracing off (a runtime with
 * `enabled: false`, as a role runs it), on at 100% sampling, and on at 0% (a request the sampler
 * turned down, as nine in ten are at the default 10%). Each request is served as a role's listener
 * serves it: the body read whole, then the response's end reported (`http/response_ends.ts`),
 * which is what ends its server span and request metrics.
 *
 * The three stacks run interleaved in chunks of requests, so a noisy machine slows them alike; each
 * figure is the median of the chunks' mean process CPU time per request (user + system, so a
 * machine shared with other work does not count its waits for a core; garbage collection on
 * helper threads is counted, as it is real cost). `perf/main.ts`'s report and
 * `bench/gate.ts` call {@linkcode measureInProcess}; `bench/http_bench.ts` runs the same stacks
 * under `deno bench`.
 *
 * @module
 */

import { type ProxyTracerProvider, trace, type TracerProvider } from "@opentelemetry/api";
import { ExportResultCode } from "@opentelemetry/core";
import type { SpanExporter } from "@opentelemetry/sdk-trace";
import process from "node:process";
import { setImmediate } from "node:timers";
import { createLogger } from "../common/log.ts";
import { logServerErrors } from "../http/middleware.ts";
import { ResponseEnds } from "../http/response_ends.ts";
import { Router } from "../http/router.ts";
import { withSpan } from "../tracing/api.ts";
import { parseTracingConfig } from "../tracing/config.ts";
import { SPAN } from "../tracing/names.ts";
import { initTracing, type TracingRuntime } from "../tracing/setup.ts";
import { formatAddedMicros } from "./report.ts";

/** Options of {@linkcode measureInProcess}. */
export interface InProcessOptions {
  /** Requests timed per stack. */
  requests: number;
  /** Requests per stack run first and not timed (JIT warm-up). */
  warmup: number;
}

/** CPU time per request of each stack, microseconds. */
export interface InProcessResult {
  /** Tracing off (`enabled: false`): propagation and the request metrics only. */
  untracedMicros: number;
  /** Tracing on at 100%: server span, one child span, body-end tracking, the batch queue. */
  sampledMicros: number;
  /** Tracing on at 0%: the server span and its child not sampled. */
  unsampledMicros: number;
  /** `sampledMicros - untracedMicros`. */
  sampledAddedMicros: number;
  /** `unsampledMicros - untracedMicros`. */
  unsampledAddedMicros: number;
}

/** The blob URL every request asks for. */
export const BLOB_URL = "http://127.0.0.1/namespace/library%2Fubuntu/blobs/sha256:" +
  "ab".repeat(32);

const BODY = new TextEncoder().encode("blob bytes");

const discard: SpanExporter = {
  export: (_spans, done) => done({ code: ExportResultCode.SUCCESS }),
  shutdown: () => Promise.resolve(),
};

/** One role router stack and the tracing runtime behind it. */
export interface Stack {
  /** The router (agent server middleware, one blob route). */
  router: Router;
  /** Its runtime. */
  tracing: TracingRuntime;
  /** The global tracer provider its spans need (none when tracing is off). */
  provider: TracerProvider | undefined;
}

/** The three stacks: tracing off, on at 100% and on at 0%. */
export interface Stacks {
  /** Tracing off. */
  untraced: Stack;
  /** Tracing on at 100% sampling. */
  sampled: Stack;
  /** Tracing on at 0% sampling. */
  unsampled: Stack;
  /**
   * Makes `stack`'s provider the global one (spans of `withSpan` go to it); a no-op when it already
   * is, so a benchmark may call it on every iteration.
   */
  activate(stack: Stack): void;
  /** Stops the runtimes and leaves no global provider. */
  shutdown(): Promise<void>;
}

function stack(enabled: boolean, rate: number): Stack {
  // The API registers a global provider only when none is: clear the previous stack's.
  trace.disable();
  const logger = createLogger({ role: "bench", write: () => {} });
  const tracing = initTracing(
    parseTracingConfig(
      {
        enabled,
        sampling: { default_rate: rate },
        export: { batch_timeout: "60s" },
        safeguards: { circuit_breaker_enabled: false },
      },
      "bench",
      {},
    ),
    { role: "bench", logger, exporter: discard },
  );
  // initTracing registers an enabled runtime's provider globally; keep it to switch between stacks.
  const provider = enabled
    ? (trace.getTracerProvider() as ProxyTracerProvider).getDelegate()
    : undefined;
  const router = new Router();
  router.use(tracing.serverMiddleware({ edge: true }));
  router.use(logServerErrors(logger));
  router.get(
    "/namespace/{namespace}/blobs/{digest}",
    (ctx) =>
      withSpan(
        SPAN.agentDownloadBlob,
        { namespace: ctx.params.namespace },
        () =>
          new Response(BODY, {
            headers: { "content-length": String(BODY.byteLength) },
          }),
      ),
  );
  return { router, tracing, provider };
}

/** Builds the stacks; call `shutdown` when done (they own the global tracer provider). */
export function inProcessStacks(): Stacks {
  const untraced = stack(false, 0);
  const unsampled = stack(true, 0);
  const sampled = stack(true, 1);
  let active: Stack = sampled;
  return {
    untraced,
    sampled,
    unsampled,
    activate(s) {
      if (s === active) return;
      active = s;
      trace.disable();
      if (s.provider) trace.setGlobalTracerProvider(s.provider);
    },
    async shutdown() {
      for (const s of [untraced, sampled, unsampled]) await s.tracing.shutdown();
      trace.disable();
    },
  };
}

// What a role's listener does beside the router (`http/serve.ts`): it reports each response's end.
const ends = new ResponseEnds();

/**
 * Serves one request through `router` as a role's listener does: hands the router the parsed URL
 * with the request, reads the whole body, then reports the response's end (which ends its server
 * span and request metrics).
 */
export async function serveOne(router: Router): Promise<void> {
  // The listener parses the URL once and hands it on with the request.
  const url = new URL(BLOB_URL);
  const res = await router.handle(new Request(url), { url, responseEnds: ends });
  const body = await res.arrayBuffer();
  ends.report(res, undefined, body.byteLength);
}

/**
 * Serves `n` requests through `stack`'s router one after another, turning the event loop every
 * {@linkcode YIELD_EVERY} requests.
 */
export async function serveRequests(stack: Stack, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await serveOne(stack.router);
    if (i % YIELD_EVERY === YIELD_EVERY - 1) await yieldToEventLoop();
  }
}

const CHUNK = 1000;

/**
 * Requests served between two turns of the event loop. A role's requests arrive through I/O, so its
 * timers (the batch processor's export of full batches) run between them; a loop of awaits alone
 * never yields to them, and the sampled stack's span queue would fill and drop every span.
 */
export const YIELD_EVERY = 64;

/**
 * Lets due timers and I/O callbacks run (one turn of the event loop). `setImmediate`, not
 * `setTimeout(0)`: a chain of zero timeouts is clamped to milliseconds each.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function cpuMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Measures the three stacks interleaved; see the module doc. */
export async function measureInProcess(options: InProcessOptions): Promise<InProcessResult> {
  const stacks = inProcessStacks();
  const variants: { stack: Stack; chunks: number[] }[] = [
    { stack: stacks.untraced, chunks: [] },
    { stack: stacks.sampled, chunks: [] },
    { stack: stacks.unsampled, chunks: [] },
  ];
  const run = async (v: (typeof variants)[number], n: number): Promise<number> => {
    stacks.activate(v.stack);
    const started = cpuMicros();
    await serveRequests(v.stack, n);
    return (cpuMicros() - started) / n;
  };
  try {
    for (const v of variants) await run(v, options.warmup);
    const rounds = Math.max(1, Math.ceil(options.requests / CHUNK));
    const size = Math.max(1, Math.round(options.requests / rounds));
    for (let round = 0; round < rounds; round++) {
      // Rotate the order so no stack always runs right after another's garbage.
      for (let k = 0; k < variants.length; k++) {
        const v = variants[(round + k) % variants.length];
        v.chunks.push(await run(v, size));
      }
    }
  } finally {
    await stacks.shutdown();
  }
  const [untraced, sampled, unsampled] = variants.map((v) => median(v.chunks));
  return {
    untracedMicros: untraced,
    sampledMicros: sampled,
    unsampledMicros: unsampled,
    sampledAddedMicros: sampled - untraced,
    unsampledAddedMicros: unsampled - untraced,
  };
}

if (import.meta.main) {
  const requests = Number(Deno.args[0] ?? 20_000);
  const result = await measureInProcess({ requests, warmup: Math.min(5000, requests) });
  const f = (n: number) => `${n.toFixed(2)} µs`;
  console.log(
    `in-process, ${requests} requests per stack (CPU time, median of ${CHUNK}-request chunks)`,
  );
  console.log(`  tracing off            ${f(result.untracedMicros)}`);
  console.log(
    `  sampled                ${f(result.sampledMicros)}  (${
      formatAddedMicros(result.sampledAddedMicros)
    })`,
  );
  console.log(
    `  not sampled            ${f(result.unsampledMicros)}  (${
      formatAddedMicros(result.unsampledAddedMicros)
    })`,
  );
}
