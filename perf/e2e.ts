/**
 * The end-to-end tracing-overhead measurements of `npm run perf` on a running cluster of real
 * processes (`tests/harness/cluster.ts`): for each node under test — agent, tracker, proxy —
 * three of them side by side with tracing off, sampling 10% and 100%, all exporting OTLP/protobuf
 * to a sink that answers at once (`perf/e2e_collector.ts`, its own process), with the role's
 * production export settings (batch of 512, 5 s timeout) and the load safeguard disabled so no
 * span is shed. Requests go one at a time in the interleaved order of {@linkcode interleave},
 * timed by this process: GETs of a cached 64 KB blob from the agents' blob API, announces to the
 * trackers (the agent's JSON, a pool of torrents and peers), and Registry v2 uploads (POST, one
 * PATCH, PUT `?digest=`) of fresh random blobs through the proxies. CPU is each node process's
 * user+system time (`/proc/<pid>/stat`) over a run. Every loop is bounded in count and in time.
 * The checkout's module cache is warmed first (`perf/module_cache.ts`), and the client and the
 * nodes under test run on separate CPUs (`perf/cpu_pinning.ts`), so neither a cold cache nor the
 * scheduler's placement of one node makes a difference between the variants.
 *
 * @module
 */

import { type DownloadCluster, type Node, startDownloadCluster } from "../tests/harness/cluster.ts";
import { freePort, freePorts, type ProcessGroup, waitForHttp } from "../tests/harness/procs.ts";
import { digestOfBytes } from "../storage/digest.ts";
import { InfoHash } from "../storage/metainfo.ts";
import { Digest } from "../storage/digest.ts";
import { ANNOUNCE, encodeAnnounceRequest } from "../wire/announce.ts";
import { expand } from "../wire/route.ts";
import {
  type E2eMeasurement,
  formatBytes,
  type IdleCpu,
  interleave,
  median,
  summarizeLatencies,
  TRACING_VARIANTS,
  type TracingVariant,
  variantRate,
  type VariantRun,
} from "./report.ts";
import type { SinkStats } from "./e2e_collector.ts";
import { withPinning } from "./cpu_pinning.ts";
import { warmModuleCache } from "./module_cache.ts";

const COLLECTOR = new URL("./e2e_collector.ts", import.meta.url).pathname;
const ROOT = new URL("../", import.meta.url).pathname;

/**
 * The longest any one request of the measurements may take: a node that hangs fails the part
 * instead of holding the run.
 */
export const REQUEST_TIMEOUT_MS = 60_000;

/** A fresh abort signal of {@linkcode REQUEST_TIMEOUT_MS}. */
export function requestTimeout(): AbortSignal {
  return AbortSignal.timeout(REQUEST_TIMEOUT_MS);
}

/** Options of {@linkcode measureEndToEnd}. */
export interface E2eOptions {
  /** Directory for the cluster's configs, stores and logs. */
  dir: string;
  /** Owns every process started. */
  group: ProcessGroup;
  /** GETs per agent per run. */
  gets: number;
  /** Announces per tracker per run. */
  announces: number;
  /** Uploads per proxy per run. */
  uploads: number;
  /** Bytes per upload. */
  uploadBytes: number;
  /** Interleaved runs of each measurement. */
  runs: number;
  /** Time bound of one run of one measurement, ms (default 120 000). */
  maxRunMs?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

/** The tracing counters of one node, from its `/metrics`. */
export interface TracingCounters {
  /** `kraken_tracing_spans_sampled_total`. */
  sampled: number;
  /** `kraken_tracing_spans_exported_total`. */
  exported: number;
  /** `kraken_tracing_export_errors_total`. */
  exportErrors: number;
  /** `kraken_tracing_queue_size`. */
  queueSize: number;
}

/** What {@linkcode measureEndToEnd} returns. */
export interface E2eResults {
  /** Agent GET, tracker announce, proxy upload. */
  measurements: E2eMeasurement[];
  /** What the sink received from every traced node, and what those nodes say they exported. */
  otlp: SinkStats & { spansExported: number };
  /** The 100% tracker's sampled spans and the announces it got (warm-up included). */
  tracker100: { spansSampled: number; announces: number };
  /** Where the client and the nodes under test ran (`perf/cpu_pinning.ts`). */
  pinning: string;
  /**
   * Idle CPU after the runs, ms per second (the median of {@linkcode IDLE_READINGS} one-second
   * readings after {@linkcode IDLE_SETTLE_SECONDS} of quiet), per kind of node.
   */
  idle: IdleCpu[];
}

/** User+system CPU seconds of a process so far (Linux `/proc/<pid>/stat`, 100 ticks a second). */
export async function cpuSeconds(pid: number): Promise<number> {
  return cpuSecondsFromStat(await Deno.readTextFile(`/proc/${pid}/stat`));
}

/** The user+system CPU seconds in a `/proc/<pid>/stat` line. */
export function cpuSecondsFromStat(stat: string): number {
  // The command name (field 2) is in parentheses and may hold spaces; fields count from after it.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).trim().split(/\s+/);
  const utime = Number(fields[11]), stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) {
    throw new Error(`not a /proc/<pid>/stat line: ${stat.slice(0, 80)}`);
  }
  return (utime + stime) / 100;
}

/** Nanoseconds on a CPU of one thread, from its `/proc/<pid>/task/<tid>/schedstat` line. */
export function schedstatNanos(line: string): number {
  const ns = Number(line.trim().split(/\s+/)[0]);
  if (!Number.isFinite(ns)) throw new Error(`not a schedstat line: ${line.slice(0, 80)}`);
  return ns;
}

/**
 * On-CPU nanoseconds of each live thread of a process, by thread id, at the scheduler's resolution
 * (`/proc/<pid>/task/<tid>/schedstat`); a thread that exits between listing and reading is left
 * out.
 */
export async function threadCpuNanos(pid: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const task of Deno.readDir(`/proc/${pid}/task`)) {
    try {
      out.set(
        task.name,
        schedstatNanos(await Deno.readTextFile(`/proc/${pid}/task/${task.name}/schedstat`)),
      );
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return out;
}

/** Seconds of quiet after the runs before idle CPU is read. */
export const IDLE_SETTLE_SECONDS = 2;
/** One-second readings of idle CPU per node; the report shows their median. */
export const IDLE_READINGS = 9;

/** Options of {@linkcode idleCpuMsPerSecond}. */
export interface IdleCpuOptions {
  /** Readings per process. Default {@linkcode IDLE_READINGS}. */
  readings?: number;
  /** Length of one reading, ms. Default 1000. */
  periodMs?: number;
  /** Per-thread CPU nanoseconds of a process. Default {@linkcode threadCpuNanos}. */
  read?: (pid: number) => Promise<Map<string, number>>;
}

/**
 * Idle CPU of each process, ms per second: the median of consecutive readings, each its threads'
 * CPU over one period of wall time. The median leaves out the odd second of housekeeping (a burst
 * some seconds after a node's last request, traced or not) that would otherwise decide a short
 * window. A thread's share of a reading is what it ran between its two ends: one that
 * started since counts from zero, and one that exited counts nothing (its CPU is gone from `/proc`
 * with it; the runtime's idle worker threads exit so).
 */
export async function idleCpuMsPerSecond(
  pids: readonly number[],
  options: IdleCpuOptions = {},
): Promise<number[]> {
  const { readings = IDLE_READINGS, periodMs = 1000, read = threadCpuNanos } = options;
  const perProcess: number[][] = pids.map(() => []);
  let before = await Promise.all(pids.map(read));
  let started = performance.now();
  for (let r = 0; r < readings; r++) {
    await new Promise((resolve) => setTimeout(resolve, periodMs));
    const after = await Promise.all(pids.map(read));
    const now = performance.now();
    after.forEach((threads, i) => {
      let ns = 0;
      for (const [tid, n] of threads) ns += n - (before[i].get(tid) ?? 0);
      perProcess[i].push(ns / 1e3 / (now - started));
    });
    before = after;
    started = now;
  }
  return perProcess.map(median);
}

/** The value of an unlabelled sample `name` in a Prometheus text exposition (0 when absent). */
export function sampleValue(exposition: string, name: string): number {
  for (const line of exposition.split("\n")) {
    if (line.startsWith(`${name} `)) return Number(line.slice(name.length + 1).split(" ")[0]);
  }
  return 0;
}

/** Reads a node's tracing counters from its `/metrics`. */
export async function tracingCounters(node: Node): Promise<TracingCounters> {
  const res = await fetch(`${node.url}/metrics`, { signal: requestTimeout() });
  const text = await res.text();
  if (!res.ok) throw new Error(`${node.url}/metrics: HTTP ${res.status}: ${text.slice(0, 200)}`);
  return {
    sampled: sampleValue(text, "kraken_tracing_spans_sampled_total"),
    exported: sampleValue(text, "kraken_tracing_spans_exported_total"),
    exportErrors: sampleValue(text, "kraken_tracing_export_errors_total"),
    queueSize: sampleValue(text, "kraken_tracing_queue_size"),
  };
}

/**
 * Waits until every node's export queue is empty and its exported count stopped moving (or
 * `timeoutMs` passed), and returns the counters then.
 */
export async function flushedCounters(
  nodes: Node[],
  timeoutMs = 20_000,
): Promise<TracingCounters[]> {
  const deadline = Date.now() + timeoutMs;
  let last = await Promise.all(nodes.map(tracingCounters));
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const now = await Promise.all(nodes.map(tracingCounters));
    const settled = now.every((c, i) =>
      c.queueSize === 0 && c.exported === last[i].exported && c.sampled === last[i].sampled
    );
    last = now;
    if (settled) break;
  }
  return last;
}

/** The `tracing:` block of a node under test. */
export function tracingBlock(variant: TracingVariant, endpoint: string): Record<string, unknown> {
  const rate = variantRate(variant);
  if (rate === undefined) return { enabled: false };
  return {
    enabled: true,
    endpoint,
    sampling: { default_rate: rate },
    export: { protocol: "http/protobuf" },
    // A loaded 2-core VM must not shed spans: the run measures the whole cost of tracing.
    safeguards: { load_threshold: 1 },
  };
}

/**
 * One timed request: its latency in µs (preparation outside the timed part excluded). `signal`
 * aborts once the run is over its time bound by {@linkcode REQUEST_TIMEOUT_MS} (one timer a run,
 * not one a request, so the load loop's event loop carries no timer per request).
 */
type TimedRequest = (variant: number, i: number, signal: AbortSignal) => Promise<number>;

/**
 * Runs `runs` interleaved runs of `perVariant` requests per variant (after `warmup` untimed ones
 * per variant), each run bounded by `maxRunMs`, reading the nodes' CPU around each run.
 */
export async function interleavedRuns(options: {
  pids: number[];
  perVariant: number;
  warmup: number;
  runs: number;
  maxRunMs: number;
  request: TimedRequest;
  /** CPU seconds of a process so far (default {@linkcode cpuSeconds}). */
  cpu?: (pid: number) => Promise<number>;
}): Promise<VariantRun[][]> {
  const { pids, perVariant, warmup, runs, maxRunMs, request } = options;
  const cpu = options.cpu ?? cpuSeconds;
  const n = pids.length;
  let i = 0;
  const warmupSignal = AbortSignal.timeout(maxRunMs + REQUEST_TIMEOUT_MS);
  for (const v of interleave(n, warmup)) await request(v, i++, warmupSignal);
  const out: VariantRun[][] = [];
  for (let r = 0; r < runs; r++) {
    const latencies: number[][] = pids.map(() => []);
    const cpuBefore = await Promise.all(pids.map(cpu));
    const deadline = performance.now() + maxRunMs;
    const signal = AbortSignal.timeout(maxRunMs + REQUEST_TIMEOUT_MS);
    for (const v of interleave(n, perVariant)) {
      if (performance.now() > deadline) break;
      latencies[v].push(await request(v, i++, signal));
    }
    const cpuAfter = await Promise.all(pids.map(cpu));
    out.push(latencies.map((us, v) => {
      const busySeconds = us.reduce((a, b) => a + b, 0) / 1e6;
      return {
        ...summarizeLatencies(us),
        perSecond: busySeconds > 0 ? us.length / busySeconds : 0,
        cpuSeconds: cpuAfter[v] - cpuBefore[v],
      };
    }));
  }
  return out;
}

async function expectStatus(res: Response, status: number, what: string): Promise<void> {
  if (res.status === status) return;
  throw new Error(
    `${what}: HTTP ${res.status} (expected ${status}): ${(await res.text()).slice(0, 300)}`,
  );
}

/**
 * Uploads `bytes` to a Registry v2 endpoint as docker does (POST, one PATCH, PUT `?digest=`),
 * with `headers` (e.g. `traceparent`) on every request; returns the µs the three requests took.
 */
export async function uploadBlob(
  registry: string,
  repo: string,
  bytes: Uint8Array<ArrayBuffer>,
  digest: Digest,
  headers: (step: number) => Record<string, string> = () => ({}),
): Promise<number> {
  const started = performance.now();
  const start = await fetch(`${registry}/v2/${repo}/blobs/uploads/`, {
    method: "POST",
    signal: requestTimeout(),
    headers: headers(0),
  });
  await expectStatus(start, 202, `start upload of ${digest}`);
  await start.body?.cancel();
  const patch = await fetch(new URL(start.headers.get("location")!, registry), {
    method: "PATCH",
    signal: requestTimeout(),
    headers: {
      ...headers(1),
      "content-type": "application/octet-stream",
      "content-range": `0-${bytes.length - 1}`,
    },
    body: bytes,
  });
  await expectStatus(patch, 202, `upload of ${digest}`);
  await patch.body?.cancel();
  const url = new URL(patch.headers.get("location")!, registry);
  url.searchParams.set("digest", digest.toString());
  const put = await fetch(url, { method: "PUT", headers: headers(2), signal: requestTimeout() });
  await expectStatus(put, 201, `commit of ${digest}`);
  await put.body?.cancel();
  return (performance.now() - started) * 1000;
}

/** Random bytes (any length), `crypto.getRandomValues` 64 KiB at a time. */
export function randomBlob(size: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  for (let off = 0; off < size; off += 65536) {
    crypto.getRandomValues(out.subarray(off, Math.min(size, off + 65536)));
  }
  return out;
}

const LABEL: Record<TracingVariant, string> = { off: "off", "10%": "10pct", "100%": "100pct" };

/** The OTLP sink every traced node under test exports to. */
export interface Sink {
  /** Its base URL (the nodes' `tracing.endpoint`). */
  endpoint: string;
  /** What it received so far. */
  stats(): Promise<SinkStats>;
}

/** Starts the sink collector process and waits until it answers. */
export async function startSink(group: ProcessGroup, dir: string): Promise<Sink> {
  const port = freePort();
  const process = group.spawnDeno(COLLECTOR, [`--port=${port}`], {
    name: "otlp-sink",
    logFile: `${dir}/otlp-sink.log`,
  });
  const endpoint = `http://127.0.0.1:${port}`;
  await waitForHttp(`${endpoint}/stats`, { process });
  return {
    endpoint,
    stats: async () =>
      await (await fetch(`${endpoint}/stats`, { signal: requestTimeout() })).json(),
  };
}

/** The nodes under test: one per tracing variant of each role. */
interface Variants {
  agents: Node[];
  trackers: Node[];
  proxies: Node[];
}

async function startVariants(cluster: DownloadCluster, sink: string): Promise<Variants> {
  const originHosts = cluster.origins.map((o) => o.addr);
  // One call for every port, so no two nodes are handed the same one.
  const ports = freePorts(5 * TRACING_VARIANTS.length);
  const perVariant = TRACING_VARIANTS.map(async (variant, v) => {
    const l = LABEL[variant];
    const tracing = tracingBlock(variant, sink);
    const [server, registry, peer, tracker, proxy] = ports.slice(5 * v, 5 * v + 5);
    return await Promise.all([
      cluster.startRole("agent", `agent-${l}`, server, {
        server: { host: "127.0.0.1", port: server },
        registry: { host: "127.0.0.1", port: registry },
        peer: { ip: "127.0.0.1", port: peer },
        tracker: { hosts: [cluster.tracker.addr] },
        build_index: { hosts: [cluster.buildIndex.addr] },
        storage: { root: `agent-${l}/store` },
        tracing,
      }),
      cluster.startRole("tracker", `tracker-${l}`, tracker, {
        listen: { host: "127.0.0.1", port: tracker },
        origins: { hosts: originHosts },
        peerstore: { type: "memory" },
        tracing,
      }),
      cluster.startRole("proxy", `proxy-${l}`, proxy, {
        listen: { host: "127.0.0.1", port: proxy },
        storage: { root: `proxy-${l}/store` },
        origin: { hosts: originHosts },
        build_index: { hosts: [cluster.buildIndex.addr] },
        tracing,
      }),
    ]);
  });
  const nodes = await Promise.all(perVariant);
  return {
    agents: nodes.map((n) => n[0]),
    trackers: nodes.map((n) => n[1]),
    proxies: nodes.map((n) => n[2]),
  };
}

/** The spans of the 10% and 100% nodes, from their counters in that order. */
function spansOf([ten, hundred]: TracingCounters[]): E2eMeasurement["spans"] {
  return {
    "10%": { sampled: ten.sampled, exported: ten.exported },
    "100%": { sampled: hundred.sampled, exported: hundred.exported },
  };
}

/**
 * Untimed requests per node before the timed runs, at most the timed count. A tracker's announce
 * path takes some 3 000 requests to settle (docs/performance.md, sessions 17–18); 200 warm-up
 * announces left the first run measuring a tracker that had not. Each upload is 16 MiB of work, so
 * a few settle the proxy.
 */
export const WARMUP = { gets: 2_000, announces: 3_000, uploads: 5 } as const;

/** Torrents and peers the announce load cycles through. */
const ANNOUNCE_TORRENTS = 16;
const ANNOUNCE_PEERS = 64;

/**
 * Starts the cluster (testfs, two origins, build-index, proxy and tracker with tracing off, plus
 * an agent, a tracker and a proxy per tracing variant) and runs the three measurements.
 */
export async function measureEndToEnd(options: E2eOptions): Promise<E2eResults> {
  const { dir, group } = options;
  await warmModuleCache(ROOT);
  const sink = await startSink(group, dir);
  const cluster = await startDownloadCluster({ dir, group, agents: 0 });
  const nodes = await startVariants(cluster, sink.endpoint);
  const pids = (list: Node[]) => list.map((n) => n.process.pid);
  return await withPinning(
    pids([...nodes.agents, ...nodes.trackers, ...nodes.proxies]),
    (pinning) => measureNodes(options, cluster, nodes, sink, pinning),
  );
}

async function measureNodes(
  options: E2eOptions,
  cluster: DownloadCluster,
  nodes: Variants,
  sink: Sink,
  pinning: string,
): Promise<E2eResults> {
  const { runs } = options;
  const log = options.log ?? (() => {});
  const maxRunMs = options.maxRunMs ?? 120_000;
  const pids = (list: Node[]) => list.map((n) => n.process.pid);
  const proxyUrl = cluster.proxy.url;
  const measurements: E2eMeasurement[] = [];

  // Agent GET of a cached 64 KB blob.
  const blob = randomBlob(64 * 1024);
  const digest = await digestOfBytes(blob);
  await uploadBlob(proxyUrl, "perf/e2e", blob, digest);
  const getUrls = nodes.agents.map((a) =>
    `${a.url}/namespace/${encodeURIComponent("perf/e2e")}/blobs/${digest}`
  );
  log(`agent GET: ${options.gets} per agent per run, ${runs} runs`);
  const getRuns = await interleavedRuns({
    pids: pids(nodes.agents),
    perVariant: options.gets,
    warmup: Math.min(WARMUP.gets, options.gets),
    runs,
    maxRunMs,
    request: async (v, _i, signal) => {
      const started = performance.now();
      const res = await fetch(getUrls[v], { signal });
      const body = await res.arrayBuffer();
      const us = (performance.now() - started) * 1000;
      if (res.status !== 200 || body.byteLength !== blob.length) {
        throw new Error(`GET ${getUrls[v]}: HTTP ${res.status}, ${body.byteLength} bytes`);
      }
      return us;
    },
  });
  measurements.push({
    title: "GET of a cached 64 KB blob",
    node: "agent",
    runs: getRuns,
    spans: spansOf(await flushedCounters(nodes.agents.slice(1))),
  });

  // Tracker announces.
  const torrents = await Promise.all(
    Array.from({ length: ANNOUNCE_TORRENTS }, async (_, t) => {
      const d = await digestOfBytes(new TextEncoder().encode(`perf torrent ${t}`));
      return { digest: d, infoHash: InfoHash.fromHex(d.hex.slice(0, 40)) };
    }),
  );
  const peerIds = Array.from(
    { length: ANNOUNCE_PEERS },
    (_, p) => p.toString(16).padStart(40, "0"),
  );
  let announces = 0;
  log(`tracker announce: ${options.announces} per tracker per run, ${runs} runs`);
  const announceRuns = await interleavedRuns({
    pids: pids(nodes.trackers),
    perVariant: options.announces,
    warmup: Math.min(WARMUP.announces, options.announces),
    runs,
    maxRunMs,
    request: async (v, i, signal) => {
      const t = torrents[i % ANNOUNCE_TORRENTS];
      const body = encodeAnnounceRequest({
        digest: t.digest,
        infoHash: t.infoHash,
        peer: {
          peerId: peerIds[Math.floor(i / ANNOUNCE_TORRENTS) % ANNOUNCE_PEERS],
          ip: "127.0.0.1",
          port: 20_000 + (i % 1000),
          origin: false,
          complete: i % 4 === 0,
        },
      });
      const url = `${nodes.trackers[v].url}${expand(ANNOUNCE, { infohash: t.infoHash.hex })}`;
      const started = performance.now();
      const res = await fetch(url, {
        method: "POST",
        signal,
        headers: { "content-type": "application/json" },
        body,
      });
      const text = await res.text();
      const us = (performance.now() - started) * 1000;
      if (res.status !== 200) throw new Error(`announce to ${url}: HTTP ${res.status}: ${text}`);
      if (v === 2) announces++;
      return us;
    },
  });
  const trackerCounters = await flushedCounters(nodes.trackers.slice(1));
  measurements.push({
    title: "announce",
    node: "tracker",
    runs: announceRuns,
    spans: spansOf(trackerCounters),
  });

  // Uploads through the proxy: a fresh random blob each (made before the clock starts).
  log(`proxy upload: ${options.uploads} of ${options.uploadBytes} bytes per proxy per run`);
  const base = randomBlob(options.uploadBytes);
  const uploadRuns = await interleavedRuns({
    pids: pids(nodes.proxies),
    perVariant: options.uploads,
    warmup: Math.min(WARMUP.uploads, options.uploads),
    runs,
    maxRunMs,
    request: async (v) => {
      crypto.getRandomValues(base.subarray(0, Math.min(64, base.length)));
      const d = await digestOfBytes(base);
      return await uploadBlob(nodes.proxies[v].url, "perf/upload", base, d);
    },
  });
  measurements.push({
    title: `upload of ${formatBytes(options.uploadBytes)}`,
    node: "proxy",
    runs: uploadRuns,
    spans: spansOf(await flushedCounters(nodes.proxies.slice(1))),
  });

  const traced = [nodes.agents, nodes.trackers, nodes.proxies].flatMap((l) => l.slice(1));
  const final = await flushedCounters(traced);

  // What each node costs with nothing to do: tracing's timers, if they still run, show here.
  log(`idle CPU: ${IDLE_READINGS} one-second readings per node`);
  await new Promise((resolve) => setTimeout(resolve, IDLE_SETTLE_SECONDS * 1000));
  const kinds = { agent: nodes.agents, tracker: nodes.trackers, proxy: nodes.proxies };
  const all = Object.values(kinds).flat();
  const idleAll = await idleCpuMsPerSecond(pids(all));
  const idle = Object.entries(kinds).map(([node, list]) => ({
    node,
    msPerSecond: list.map((n) => idleAll[all.indexOf(n)]),
  }));
  return {
    measurements,
    otlp: { ...(await sink.stats()), spansExported: final.reduce((a, c) => a + c.exported, 0) },
    tracker100: { spansSampled: trackerCounters[1].sampled, announces },
    pinning,
    idle,
  };
}
