/**
 * A real Jaeger v2 for flow tests: started on free loopback ports with in-memory storage, and
 * queried through its HTTP API into {@link TraceTree}s.
 *
 * ```ts
 * const jaeger = await startJaeger();
 * try {
 *   // point the processes under test at jaeger.otlpHttpEndpoint (OTLP/HTTP) ...
 *   const tree = await jaeger.waitForTrace(traceId, { minSpans: 5 });
 *   assertTree(tree, { name: SPAN.proxyUpload, service: "kraken-proxy", children: [...] });
 * } finally {
 *   await jaeger.stop();
 * }
 * ```
 *
 * The binary comes from `JAEGER_BIN`, else from the cache `scripts/setup.sh` fills
 * (`${KRAKEN_CACHE:-$HOME/.cache/kraken}/jaeger-<version>/jaeger`, version in `scripts/go-tools.tsv`). Every listener (OTLP gRPC and
 * HTTP receivers, query HTTP and gRPC) is on its own free port of 127.0.0.1; the collector's own
 * metrics and the query service's self-tracing are off, so several Jaegers can run side by side.
 * Storage is in memory, so {@link JaegerInstance.restart} comes back empty.
 *
 * Options add what some tests need and others should not pay for: `remoteSampling` serves Jaeger's
 * sampling endpoint (`samplingUrl`) from a strategies file ({@link JaegerInstance.setStrategies}
 * rewrites it; Jaeger reloads it every second) or from adaptive sampling; `zipkin` opens a Zipkin
 * receiver (`zipkinUrl`).
 *
 * @module
 */

import { stringify } from "yaml";
import { freePorts, type ManagedProcess, spawnProcess, waitForHttp, waitForTcp } from "./procs.ts";
import { toolBinary } from "./tools.ts";
import { formatTree, type JaegerTrace, type TraceTree, traceTreeFromJaeger } from "./trace_tree.ts";

/** Options for {@link startJaeger}. */
export interface StartJaegerOptions {
  /** Path to the Jaeger binary (default: `JAEGER_BIN`, else the install script's cache). */
  binary?: string;
  /** Traces the memory store keeps before evicting the oldest (default 10 000). */
  maxTraces?: number;
  /** How long to wait for the query API and the OTLP port (default 30 000 ms). */
  startTimeoutMs?: number;
  /** Collector log level (default `warn`; `info` or `debug` when diagnosing). */
  logLevel?: "debug" | "info" | "warn" | "error";
  /**
   * Serve sampling strategies on `samplingUrl` (Jaeger's `remote_sampling` extension):
   * `strategies` is the strategies file's content (Jaeger's `service_strategies` /
   * `default_strategy` JSON), or `adaptive` computes them from the spans received.
   */
  remoteSampling?: {
    strategies?: unknown;
    adaptive?: {
      initialSamplingProbability?: number;
      targetSamplesPerSecond?: number;
      calculationIntervalMs?: number;
    };
  };
  /** Open a Zipkin (JSON v2) receiver on `zipkinUrl` (default off). */
  zipkin?: boolean;
  /**
   * Serve both OTLP receivers over TLS with this certificate and key (PEM files); with
   * `clientCaFile`, a client certificate signed by it is required (mTLS). The endpoints then start
   * with `https://`.
   */
  tls?: { certFile: string; keyFile: string; clientCaFile?: string };
}

/** Options for {@link JaegerInstance.findTraces}. */
export interface FindTracesOptions {
  /** Service name (`service.name`) to search. */
  service: string;
  /** Span name to search for. */
  operation?: string;
  /** Maximum number of traces (default 20). */
  limit?: number;
  /** How far back to search, in Jaeger's form such as `1h` or `2d` (default `1h`). */
  lookback?: string;
}

/** Options for {@link JaegerInstance.waitForTrace}. */
export interface WaitForTraceOptions {
  /** Wait until the trace holds at least this many spans (default 1). */
  minSpans?: number;
  /** Give up after this long (default 10 000 ms). */
  timeoutMs?: number;
  /** Pause between queries (default 100 ms). */
  intervalMs?: number;
}

/** The ports a {@link JaegerInstance} listens on, all on 127.0.0.1. */
export interface JaegerPorts {
  /** OTLP/gRPC receiver. */
  otlpGrpc: number;
  /** OTLP/HTTP receiver. */
  otlpHttp: number;
  /** Query service HTTP API. */
  queryHttp: number;
  /** Query service gRPC API. */
  queryGrpc: number;
  /** Remote sampling HTTP endpoint, with `remoteSampling`. */
  samplingHttp?: number;
  /** Remote sampling gRPC endpoint, with `remoteSampling`. */
  samplingGrpc?: number;
  /** Zipkin receiver, with `zipkin`. */
  zipkin?: number;
}

/** A running Jaeger started by {@link startJaeger}. */
export interface JaegerInstance {
  /** OTLP/HTTP base URL (`http://127.0.0.1:<port>`); traces go to `<this>/v1/traces`. */
  readonly otlpHttpEndpoint: string;
  /** OTLP/gRPC endpoint (`127.0.0.1:<port>`). */
  readonly otlpGrpcEndpoint: string;
  /** Query API base URL (`http://127.0.0.1:<port>`). */
  readonly queryUrl: string;
  /** Every port Jaeger listens on; kept across {@link restart}. */
  readonly ports: JaegerPorts;
  /** Jaeger's HTTP sampling endpoint (`http://127.0.0.1:<port>/sampling`), with `remoteSampling`. */
  readonly samplingUrl: string | undefined;
  /** Zipkin v2 spans URL (`http://127.0.0.1:<port>/api/v2/spans`), with `zipkin`. */
  readonly zipkinUrl: string | undefined;
  /**
   * Rewrites the strategies file (with `remoteSampling.strategies`) and waits until the sampling
   * endpoint serves the new strategy for `service`.
   */
  setStrategies(strategies: unknown, service: string): Promise<void>;
  /** Combined stdout/stderr of the current (or last) Jaeger process. */
  log(): string;
  /** Stops Jaeger (SIGTERM, then SIGKILL) and removes its temporary directory. Idempotent. */
  stop(): Promise<void>;
  /** Starts Jaeger again on the same ports (stopping it first if running); storage is empty. */
  restart(): Promise<void>;
  /** Service names Jaeger has seen. */
  services(): Promise<string[]>;
  /** The trace with this hex ID, or `undefined` if Jaeger holds none. */
  getTrace(traceIdHex: string): Promise<TraceTree | undefined>;
  /** Searches traces of a service, newest first as Jaeger returns them. */
  findTraces(options: FindTracesOptions): Promise<TraceTree[]>;
  /**
   * Polls until the trace has at least `minSpans` spans and returns it.
   * @throws Error with the partial tree and Jaeger's log on timeout.
   */
  waitForTrace(traceIdHex: string, options?: WaitForTraceOptions): Promise<TraceTree>;
  /** Same as {@link stop}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** The collector configuration: only what the tests need, every listener on a given port. */
function jaegerConfig(
  ports: JaegerPorts,
  maxTraces: number,
  logLevel: string,
  options: Pick<StartJaegerOptions, "remoteSampling" | "zipkin" | "tls">,
  strategiesFile: string,
): string {
  const at = (port: number) => `127.0.0.1:${port}`;
  const remote = options.remoteSampling;
  const adaptive = remote?.adaptive;
  const tls = options.tls;
  const receiverTls = tls
    ? {
      tls: {
        cert_file: tls.certFile,
        key_file: tls.keyFile,
        ...(tls.clientCaFile ? { client_ca_file: tls.clientCaFile } : {}),
      },
    }
    : {};
  const extensions: Record<string, unknown> = {};
  if (remote) {
    extensions.remote_sampling = {
      ...(adaptive
        ? {
          adaptive: {
            sampling_store: "memstore",
            initial_sampling_probability: adaptive.initialSamplingProbability ?? 1,
            target_samples_per_second: adaptive.targetSamplesPerSecond ?? 1,
            calculation_interval: `${adaptive.calculationIntervalMs ?? 1000}ms`,
          },
        }
        : { file: { path: strategiesFile, reload_interval: "1s" } }),
      http: { endpoint: at(ports.samplingHttp!) },
      grpc: { endpoint: at(ports.samplingGrpc!) },
    };
  }
  return stringify({
    service: {
      extensions: ["jaeger_storage", "jaeger_query", ...(remote ? ["remote_sampling"] : [])],
      pipelines: {
        // No batch processor: spans reach storage at once, which keeps test polling short.
        traces: {
          receivers: ["otlp", ...(options.zipkin ? ["zipkin"] : [])],
          ...(adaptive ? { processors: ["adaptive_sampling"] } : {}),
          exporters: ["jaeger_storage_exporter"],
        },
      },
      telemetry: {
        // The collector's default Prometheus reader binds the fixed port 8888.
        metrics: { level: "none" },
        logs: { level: logLevel },
      },
    },
    ...(adaptive ? { processors: { adaptive_sampling: {} } } : {}),
    extensions: {
      ...extensions,
      jaeger_storage: { backends: { memstore: { memory: { max_traces: maxTraces } } } },
      jaeger_query: {
        storage: { traces: "memstore" },
        // Self-tracing would export to the default OTLP endpoint, i.e. someone else's collector.
        enable_tracing: false,
        http: { endpoint: at(ports.queryHttp) },
        grpc: { endpoint: at(ports.queryGrpc) },
      },
    },
    receivers: {
      otlp: {
        protocols: {
          grpc: { endpoint: at(ports.otlpGrpc), ...receiverTls },
          http: { endpoint: at(ports.otlpHttp), ...receiverTls },
        },
      },
      ...(options.zipkin ? { zipkin: { endpoint: at(ports.zipkin!) } } : {}),
    },
    exporters: { jaeger_storage_exporter: { trace_storage: "memstore" } },
  });
}

/**
 * Starts Jaeger v2 on free loopback ports and waits until its query API answers and its OTLP/HTTP
 * port accepts connections.
 *
 * @throws Error if the binary is missing (telling how to install it), or if Jaeger exits or does
 * not become ready in time (with its log).
 */
export async function startJaeger(options: StartJaegerOptions = {}): Promise<JaegerInstance> {
  const {
    binary,
    maxTraces = 10_000,
    startTimeoutMs = 30_000,
    logLevel = "warn",
  } = options;
  const executable = toolBinary("jaeger", binary);
  const [otlpGrpc, otlpHttp, queryHttp, queryGrpc, samplingHttp, samplingGrpc, zipkin] = freePorts(
    7,
  );
  const ports: JaegerPorts = { otlpGrpc, otlpHttp, queryHttp, queryGrpc };
  if (options.remoteSampling) Object.assign(ports, { samplingHttp, samplingGrpc });
  if (options.zipkin) ports.zipkin = zipkin;
  const samplingUrl = ports.samplingHttp === undefined
    ? undefined
    : `http://127.0.0.1:${ports.samplingHttp}/sampling`;
  let strategies: unknown = options.remoteSampling?.strategies ??
    { default_strategy: { type: "probabilistic", param: 1 } };
  const queryUrl = `http://127.0.0.1:${queryHttp}`;
  let child: ManagedProcess | undefined;
  let tempDir: string | undefined;
  let lastLog = "";

  const stopProcess = async () => {
    if (child) {
      await child.stop();
      lastLog = child.log();
      child = undefined;
    }
  };

  const stop = async () => {
    await stopProcess();
    if (tempDir) {
      await Deno.remove(tempDir, { recursive: true });
      tempDir = undefined;
    }
  };

  const start = async () => {
    const dir = await Deno.makeTempDir({ prefix: "kraken-jaeger-" });
    tempDir = dir;
    const configFile = `${dir}/config.yaml`;
    const strategiesFile = `${dir}/strategies.json`;
    await Deno.writeTextFile(strategiesFile, JSON.stringify(strategies));
    await Deno.writeTextFile(
      configFile,
      jaegerConfig(ports, maxTraces, logLevel, options, strategiesFile),
    );
    const logFile = `${dir}/jaeger.log`;
    child = spawnProcess(executable, [`--config=${configFile}`], { logFile, name: "jaeger" });
    const deadline = Date.now() + startTimeoutMs;
    try {
      await waitForHttp(`${queryUrl}/api/services`, { process: child, timeoutMs: startTimeoutMs });
      await waitForTcp("127.0.0.1", otlpHttp, {
        process: child,
        timeoutMs: Math.max(1, deadline - Date.now()),
      });
      for (const port of [ports.samplingHttp, ports.zipkin]) {
        if (port === undefined) continue;
        await waitForTcp("127.0.0.1", port, {
          process: child,
          timeoutMs: Math.max(1, deadline - Date.now()),
        });
      }
    } catch (error) {
      // The temporary directory stays behind so the config and log can be inspected.
      await stopProcess();
      tempDir = undefined;
      throw new Error(
        `Jaeger did not start (config and log kept in ${dir}): ${(error as Error).message}`,
      );
    }
  };

  const getJson = async (path: string): Promise<{ status: number; body: unknown }> => {
    const response = await fetch(`${queryUrl}${path}`);
    const text = await response.text();
    try {
      return { status: response.status, body: JSON.parse(text) };
    } catch {
      throw new Error(`Jaeger ${path} answered ${response.status} with non-JSON: ${text}`);
    }
  };

  const getTrace = async (traceIdHex: string) => {
    const { status, body } = await getJson(`/api/traces/${encodeURIComponent(traceIdHex)}`);
    if (status === 404) return undefined;
    if (status !== 200) {
      throw new Error(`Jaeger /api/traces/${traceIdHex}: ${status} ${JSON.stringify(body)}`);
    }
    const data = (body as { data?: JaegerTrace[] }).data ?? [];
    return data.length === 0 ? undefined : traceTreeFromJaeger({ data });
  };

  await start();

  return {
    otlpHttpEndpoint: `${options.tls ? "https" : "http"}://127.0.0.1:${otlpHttp}`,
    otlpGrpcEndpoint: `127.0.0.1:${otlpGrpc}`,
    queryUrl,
    ports,
    samplingUrl,
    zipkinUrl: ports.zipkin === undefined
      ? undefined
      : `http://127.0.0.1:${ports.zipkin}/api/v2/spans`,
    async setStrategies(next, service) {
      if (!samplingUrl || !tempDir) throw new Error("Jaeger was started without remoteSampling");
      strategies = next;
      await Deno.writeTextFile(`${tempDir}/strategies.json`, JSON.stringify(next));
      // What Jaeger serves for `service` once it has read the file.
      const served = async () => {
        const res = await fetch(`${samplingUrl}?service=${encodeURIComponent(service)}`);
        return await res.text();
      };
      const before = await served();
      const deadline = Date.now() + 10_000;
      while ((await served()) === before) {
        if (Date.now() > deadline) {
          throw new Error(`Jaeger did not reload its strategies within 10 s; serves ${before}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    log: () => child?.log() ?? lastLog,
    stop,
    async restart() {
      await stop();
      await start();
    },
    async services() {
      const { status, body } = await getJson("/api/services");
      if (status !== 200) {
        throw new Error(`Jaeger /api/services: ${status} ${JSON.stringify(body)}`);
      }
      return ((body as { data?: string[] | null }).data ?? []).sort();
    },
    getTrace,
    async findTraces({ service, operation, limit = 20, lookback = "1h" }) {
      const query = new URLSearchParams({ service, limit: String(limit), lookback });
      if (operation !== undefined) query.set("operation", operation);
      const { status, body } = await getJson(`/api/traces?${query}`);
      if (status !== 200) {
        throw new Error(`Jaeger /api/traces?${query}: ${status} ${JSON.stringify(body)}`);
      }
      return ((body as { data?: JaegerTrace[] | null }).data ?? []).map((t) =>
        traceTreeFromJaeger(t)
      );
    },
    async waitForTrace(traceIdHex, { minSpans = 1, timeoutMs = 10_000, intervalMs = 100 } = {}) {
      const deadline = Date.now() + timeoutMs;
      let tree: TraceTree | undefined;
      while (true) {
        tree = await getTrace(traceIdHex);
        if (tree && tree.spans.length >= minSpans) return tree;
        if (Date.now() >= deadline) break;
        await new Promise((resolve) => setTimeout(resolve, intervalMs));
      }
      throw new Error(
        `trace ${traceIdHex} did not reach ${minSpans} spans within ${timeoutMs} ms; ${
          tree ? `Jaeger holds:\n${formatTree(tree)}` : "Jaeger holds no span of it"
        }\nJaeger log:\n${(child?.log() ?? lastLog).slice(-4000) || "(empty)"}`,
      );
    },
    [Symbol.asyncDispose]: stop,
  };
}
