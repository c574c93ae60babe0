/**
 * Test helpers for the build-index (and the proxy tests that need one): an in-memory origin
 * cluster stand-in, a build-index started in-process on 127.0.0.1, a logger that keeps its lines,
 * and a span collector over the real tracing set-up.
 *
 * @module
 */

import { ExportResultCode } from "@opentelemetry/core";
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace";
import { OriginHttpError } from "../../cluster/blob_client.ts";
import type { RawMap } from "../../common/config.ts";
import { type Digest, digestOfBytes } from "../../storage/digest.ts";
import {
  createLogger,
  initTracing,
  type Logger,
  parseTracingConfig,
  type TracingRuntime,
} from "../../tracing/mod.ts";
import { parseBuildIndexConfig } from "./config.ts";
import { type BuildIndexServer, startBuildIndexServer } from "./server.ts";
import type { OriginBlobs } from "./service.ts";

/** A logger that keeps its JSON lines in `lines`. */
export function memoryLogger(role: string): Logger & { lines: string[] } {
  const lines: string[] = [];
  const logger = createLogger({ role, level: "debug", write: (l) => lines.push(l) });
  return Object.assign(logger, { lines });
}

/** An in-memory origin cluster: blobs by digest, in every namespace. */
export class FakeOrigin implements OriginBlobs {
  /** Stored blobs by digest string. */
  readonly blobs = new Map<string, Uint8Array>();
  /** `namespace digest` of every stat and download, in order. */
  readonly calls: string[] = [];

  /** Stores bytes and returns their digest. */
  async add(bytes: Uint8Array | string): Promise<Digest> {
    const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
    const digest = await digestOfBytes(data);
    this.blobs.set(digest.toString(), data);
    return digest;
  }

  /** See {@linkcode OriginBlobs.stat}. */
  stat(namespace: string, digest: Digest): Promise<{ size: number } | null> {
    this.calls.push(`stat ${namespace} ${digest}`);
    const blob = this.blobs.get(digest.toString());
    return Promise.resolve(blob ? { size: blob.length } : null);
  }

  /** See {@linkcode OriginBlobs.downloadBlob}; a missing blob is an origin 404. */
  downloadBlob(namespace: string, digest: Digest): Promise<ReadableStream<Uint8Array>> {
    this.calls.push(`download ${namespace} ${digest}`);
    const blob = this.blobs.get(digest.toString());
    if (!blob) {
      return Promise.reject(new OriginHttpError("GET", `fake://${digest}`, 404, ""));
    }
    return Promise.resolve(ReadableStream.from([blob]));
  }
}

/** A build-index started by {@linkcode startTestBuildIndex}. */
export interface TestBuildIndex extends BuildIndexServer {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** `127.0.0.1:<port>`. */
  readonly addr: string;
  /** Log lines. */
  readonly logs: string[];
}

/**
 * Starts a build-index on 127.0.0.1 with its state under `dir` and a `file` backend in
 * `<dir>/backend` (`docker_tag` layout). `raw` is merged over those defaults.
 */
export async function startTestBuildIndex(
  dir: string,
  origin: OriginBlobs,
  raw: RawMap = {},
): Promise<TestBuildIndex> {
  const logger = memoryLogger("build-index");
  const config = parseBuildIndexConfig({
    listen: { host: "127.0.0.1", port: 0 },
    storage: { root: dir },
    origin: { hosts: ["127.0.0.1:1"] },
    backends: [{
      namespace: ".*",
      backend: { file: { root: `${dir}/backend`, name_path: "docker_tag" } },
    }],
    manifest_download: { attempts: 1 },
    ...raw,
  });
  const server = await startBuildIndexServer(config, { origin, logger });
  return {
    ...server,
    stop: () => server.stop(),
    url: `http://127.0.0.1:${server.port}`,
    addr: `127.0.0.1:${server.port}`,
    logs: logger.lines,
  };
}

/** Tracing set up with an in-memory exporter. */
export interface SpanCollector {
  /** The tracing runtime (shut it down at the end of the test). */
  readonly runtime: TracingRuntime;
  /** Flushes and returns every span ended so far. */
  spans(): Promise<ReadableSpan[]>;
}

/**
 * Initialises tracing for this process with every root sampled and spans kept in memory. Call
 * `runtime.shutdown()` when done: it also unregisters the global provider for the next test.
 */
export function collectSpans(role: string): SpanCollector {
  const collected: ReadableSpan[] = [];
  const exporter: SpanExporter = {
    export(spans, done) {
      collected.push(...spans);
      done({ code: ExportResultCode.SUCCESS });
    },
    shutdown: () => Promise.resolve(),
  };
  const runtime = initTracing(
    parseTracingConfig({ enabled: true, sampling: { default_rate: 1 } }, role, {}),
    { role, logger: memoryLogger(role), exporter },
  );
  return {
    runtime,
    async spans() {
      await runtime.forceFlush();
      return [...collected];
    },
  };
}
