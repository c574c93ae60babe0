/**
 * P2P data-plane throughput: one origin serving one or four agents over loopback, real role
 * processes (`tests/harness/cluster.ts`: testfs, one origin, tracker, agents), the client timing
 * the agents' blob GETs.
 *
 * Each round seeds a new random blob (its bytes differ in every piece, so every round is a cold
 * P2P download): the blob goes into the testfs backend, and the origin is warmed through its
 * metainfo route so it holds the blob and its metainfo before the clock starts. Then every agent
 * is asked for the blob at once (`GET /namespace/{ns}/blobs/{digest}`), and the round lasts until
 * the last body is read; right before it, a scratch file as large as the agents' downloads is
 * written and deleted so they write into recycled page-cache pages (`--pages=fresh` skips that:
 * {@linkcode P2pOptions.pages}). CPU per process is `utime + stime` from `/proc/<pid>/stat` before and
 * after each round. Afterwards the blob is deleted from the agents, the origin and the backend, so
 * disk use stays at one blob per process.
 *
 * MB/s are 10^6 bytes per second of blob bytes delivered to the client (the sum over agents when
 * there are several); the agents' CPU is per GiB (2^30 bytes) so delivered, the origin's per GiB
 * of pieces it served (its `kraken_scheduler_piece_bytes_served_total`).
 *
 * ```sh
 * deno run -A perf/p2p.ts --size=512MiB --agents=1 --rounds=5 [--piece=4MiB] [--tracing=on]
 * deno run -A perf/p2p.ts --size=512MiB --rounds=1 --profile=/tmp/p2p-prof   # then perf report
 * deno run -A perf/p2p.ts --size=512MiB --rounds=4 --baseline=/tmp/kraken-old  # interleaved A/B
 * deno run -A perf/p2p.ts --size=512MiB --rounds=4 --go-agent=<Go Kraken agent binary>
 * deno run -A perf/p2p.ts --size=512MiB --rounds=4 --pages=fresh   # the machine's own page state
 * ```
 *
 * @module
 */

import { createHash } from "node:crypto";
import { dirname } from "node:path";
import { parseByteSize } from "../common/byte_size.ts";
import { type DownloadCluster, type Node, startDownloadCluster } from "../tests/harness/cluster.ts";
import { ProcessGroup } from "../tests/harness/procs.ts";
import { waitFor } from "../tests/harness/wait.ts";
import { cpuSeconds, sampleValue, startSink } from "./e2e.ts";
import { startGoAgent } from "./go_agent.ts";
import { DEFAULT_PAGE_STATE, type PageState, parsePageState, recyclePages } from "./page_cache.ts";
import { median } from "./report.ts";
import { warmModuleCache } from "./module_cache.ts";

const HERE = new URL("../", import.meta.url).pathname;

/** What to measure. */
export interface P2pOptions {
  /** Blob size in bytes. */
  sizeBytes: number;
  /** Piece length in bytes (the origin's `metainfo.piece_lengths`). Default 4 MiB. */
  pieceBytes?: number;
  /** Agents pulling the blob at once: 1 or 4. */
  agents: number;
  /** Rounds, each with a new blob. */
  rounds: number;
  /** Tracing of every role: off, or on at 100% sampling into a collector that answers at once. */
  tracing?: "off" | "on";
  /**
   * Profile each measured round with Linux `perf record` (call graphs, V8's `--perf-basic-prof`
   * symbols for JavaScript) into `<dir>/round<N>-<origin|agentK>.data`. Figures of a profiled run
   * include the profiler's overhead.
   */
  profileDir?: string;
  /**
   * An upstream Go Kraken agent binary (`perf/go_agent.ts`): the same rounds also run, interleaved,
   * against a cluster of our origin and tracker with that many Go agents; its result comes last.
   */
  goAgent?: string;
  /**
   * The page-cache pages the agents' downloads write into. `recycled` (default): right before each
   * timed GET a scratch file as large as all the agents' downloads is written and deleted
   * (`recyclePages`, `perf/page_cache.ts`), so every agent, ours or Go's, writes into pages just
   * freed, as on a host whose page cache is full. `fresh`: whatever the machine hands out; on this
   * VM, whose host takes freed guest memory back, mostly fresh pages at several times the CPU per
   * byte, by an amount that depends on how long ago memory was freed.
   */
  pages?: PageState;
}

/** The figures of a run. */
export interface P2pResult {
  /** Agents pulling at once. */
  agents: number;
  /** Blob size in bytes. */
  sizeBytes: number;
  /** Rounds measured. */
  rounds: number;
  /** The pages the agents' downloads wrote into. */
  pages: PageState;
  /** Blob bytes delivered per second over all agents, 10^6 bytes/s, over the rounds. */
  mbPerSecond: { median: number; min: number; max: number };
  /** CPU seconds of all agents together per GiB delivered (median over the rounds). */
  agentCpuSecondsPerGiB: number;
  /** CPU seconds of the origin per GiB of pieces it served (median over the rounds). */
  originCpuSecondsPerGiB: number;
  /** Of the pieces the agents received, the share that came from other agents (agents > 1). */
  agentToAgentPieceShare?: number;
  /**
   * Of the GET time, the share the agents spent in the P2P download itself (their
   * `kraken_scheduler_download_duration_seconds`; the rest is metainfo, commit wait and
   * streaming the blob to the client), median over the rounds, mean over the agents.
   */
  downloadShareOfGet?: number;
}

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const NAMESPACE = "perf/p2p";

// Writes a blob that differs from every earlier one in each piece: a shared random base with
// the round number and fresh random bytes stamped at the start of every piece.
async function writeBlob(path: string, base: Uint8Array, pieceBytes: number): Promise<string> {
  const blob = base.slice();
  const stamp = new Uint8Array(16);
  for (let off = 0; off < blob.length; off += pieceBytes) {
    crypto.getRandomValues(stamp);
    blob.set(stamp.subarray(0, Math.min(stamp.length, blob.length - off)), off);
  }
  await Deno.writeFile(path, blob);
  return createHash("sha256").update(blob).digest("hex");
}

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let off = 0; off < n; off += 65536) {
    crypto.getRandomValues(out.subarray(off, Math.min(n, off + 65536)));
  }
  return out;
}

interface AgentCounters {
  origin: number;
  agent: number;
  downloadSeconds: number;
}

// Piece bytes the origin has sent to agents so far.
async function originBytesServed(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return sampleValue(text, "kraken_scheduler_piece_bytes_served_total");
}

// Pieces received by source and the download time so far, from an agent's /metrics.
async function agentCounters(url: string): Promise<AgentCounters> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = {
    origin: 0,
    agent: 0,
    downloadSeconds: sampleValue(text, "kraken_scheduler_download_duration_seconds_sum"),
  };
  for (
    const m of text.matchAll(
      /^kraken_scheduler_pieces_received_total\{[^}]*source="(origin|agent)"[^}]*\} (\S+)/gm,
    )
  ) {
    out[m[1] as "origin" | "agent"] += Number(m[2]);
  }
  return out;
}

// Reads a response body to the end, returning its length.
async function drain(res: Response): Promise<number> {
  let n = 0;
  for await (const chunk of res.body!) n += chunk.length;
  return n;
}

/**
 * V8 flags of a role process to be profiled: `--perf-basic-prof` writes `/tmp/perf-<pid>.map`, the
 * JavaScript symbols `perf report` reads; the other two keep V8's event log out of the working
 * directory.
 */
export const PERF_V8_FLAGS = "--perf-basic-prof,--logfile=/dev/null,--no-logfile-per-isolate";

/**
 * Starts `perf record -g` (call graphs, `hz` samples a second) on a process until it gets SIGINT,
 * creating the output's directory first (perf itself would exit at once without it).
 */
export function perfRecord(pid: number, output: string, hz = 499): Deno.ChildProcess {
  Deno.mkdirSync(dirname(output), { recursive: true });
  return new Deno.Command("perf", {
    args: ["record", "-F", String(hz), "-g", "-o", output, "-p", String(pid)],
    stdout: "null",
    stderr: "null",
  }).spawn();
}

interface RoundFigures {
  seconds: number;
  originSecondsPerGiB: number;
  agentSeconds: number;
  downloadShare?: number;
}

// One cluster under measurement: its processes and one timed round per call.
interface Bench {
  round(blob: Uint8Array, profile?: string): Promise<RoundFigures>;
  // The agents' piece and download counters; absent for agents without our /metrics (Go's).
  counters?(): Promise<AgentCounters[]>;
}

// The processes a bench's rounds talk to.
interface BenchNodes {
  origin: Node;
  backendDir: string;
  agents: { url: string; pid: number }[];
  counters?: () => Promise<AgentCounters[]>;
}

type StartCluster = typeof startDownloadCluster;

async function startOurCluster(
  options: P2pOptions,
  group: ProcessGroup,
  dir: string,
  startCluster: StartCluster,
  agents: number,
): Promise<DownloadCluster> {
  const pieceBytes = options.pieceBytes ?? 4 * MIB;
  const sink = options.tracing === "on" ? await startSink(group, dir) : undefined;
  return await startCluster({
    dir,
    group,
    origins: 1,
    agents,
    otlpEndpoint: sink?.endpoint,
    // The symbol maps perf reads; V8 would also drop an event log into the working directory.
    env: options.profileDir ? { DENO_V8_FLAGS: PERF_V8_FLAGS } : undefined,
    originExtra: { metainfo: { piece_lengths: { 0: pieceBytes } } },
  });
}

async function startBench(
  options: P2pOptions,
  group: ProcessGroup,
  dir: string,
  startCluster: StartCluster,
): Promise<Bench> {
  const cluster = await startOurCluster(options, group, dir, startCluster, options.agents);
  return benchOf(options, dir, {
    origin: cluster.origins[0],
    backendDir: cluster.testfs.dataDir,
    agents: cluster.agents.map((a) => ({ url: a.url, pid: a.process.pid })),
    counters: () => Promise.all(cluster.agents.map((a) => agentCounters(a.url))),
  });
}

// Our origin, tracker and backend with `options.agents` Go Kraken agents.
async function startGoBench(
  options: P2pOptions,
  group: ProcessGroup,
  dir: string,
  binary: string,
): Promise<Bench> {
  const cluster = await startOurCluster(options, group, dir, startDownloadCluster, 0);
  const agents = [];
  for (let i = 0; i < options.agents; i++) {
    const agent = await startGoAgent({
      binary,
      dir: `${dir}/go-agent${i + 1}`,
      group,
      tracker: cluster.tracker.addr,
      buildIndex: cluster.buildIndex.addr,
      name: `go-agent${i + 1}`,
    });
    agents.push({ url: agent.url, pid: agent.process.pid });
  }
  return benchOf(options, dir, {
    origin: cluster.origins[0],
    backendDir: cluster.testfs.dataDir,
    agents,
  });
}

function benchOf(options: P2pOptions, dir: string, nodes: BenchNodes): Bench {
  const pieceBytes = options.pieceBytes ?? 4 * MIB;
  const pages = options.pages ?? DEFAULT_PAGE_STATE;
  const { origin, agents, counters } = nodes;
  const pids = [origin.process.pid, ...agents.map((a) => a.pid)];
  const round = async (blob: Uint8Array, profile?: string): Promise<RoundFigures> => {
    const blobs = `${nodes.backendDir}/blobs`;
    await Deno.mkdir(blobs, { recursive: true });
    const hex = await writeBlob(`${dir}/blob.tmp`, blob, pieceBytes);
    await Deno.rename(`${dir}/blob.tmp`, `${blobs}/${hex}`);
    const digest = `sha256:${hex}`;
    const ns = encodeURIComponent(NAMESPACE);
    // The origin fetches the blob from the backend and answers 202 until it holds it.
    await waitFor(`origin holds ${digest}`, async () => {
      const res = await fetch(`${origin.url}/internal/namespace/${ns}/blobs/${digest}/metainfo`);
      await res.body?.cancel();
      if (res.status !== 200 && res.status !== 202) {
        throw new Error(`origin metainfo: ${res.status}`);
      }
      return res.status === 200;
    }, { timeoutMs: 120_000, intervalMs: 100 });

    const recorders = profile === undefined ? [] : [
      perfRecord(pids[0], `${profile}-origin.data`),
      ...pids.slice(1).map((pid, i) => perfRecord(pid, `${profile}-agent${i + 1}.data`)),
    ];
    if (recorders.length > 0) await new Promise((r) => setTimeout(r, 500));
    if (pages === "recycled") await recyclePages(dir, blob.length * agents.length);
    const counters0 = await counters?.();
    const served0 = await originBytesServed(origin.url);
    const cpu0 = await Promise.all(pids.map(cpuSeconds));
    const t0 = performance.now();
    const sizes = await Promise.all(agents.map(async (a) => {
      const res = await fetch(`${a.url}/namespace/${ns}/blobs/${digest}`);
      if (res.status !== 200) throw new Error(`agent GET: ${res.status} ${await res.text()}`);
      return await drain(res);
    }));
    const seconds = (performance.now() - t0) / 1000;
    const cpu1 = await Promise.all(pids.map(cpuSeconds));
    const counters1 = await counters?.();
    const served = await originBytesServed(origin.url) - served0;
    for (const r of recorders) r.kill("SIGINT");
    for (const r of recorders) await r.status;
    for (const n of sizes) {
      if (n !== blob.length) throw new Error(`agent sent ${n} bytes, blob has ${blob.length}`);
    }
    // Only one blob on disk per process at a time.
    await Promise.all(agents.map(async (a) => {
      const res = await fetch(`${a.url}/blobs/${digest}`, { method: "DELETE" });
      await res.body?.cancel();
    }));
    const res = await fetch(`${origin.url}/internal/blobs/${digest}`, { method: "DELETE" });
    await res.body?.cancel();
    await Deno.remove(`${blobs}/${hex}`);
    let agentSeconds = 0;
    for (let i = 1; i < cpu1.length; i++) agentSeconds += cpu1[i] - cpu0[i];
    let download = 0;
    if (counters0 && counters1) {
      for (let i = 0; i < agents.length; i++) {
        download += counters1[i].downloadSeconds - counters0[i].downloadSeconds;
      }
    }
    return {
      seconds,
      originSecondsPerGiB: (cpu1[0] - cpu0[0]) / (served / GIB),
      agentSeconds,
      downloadShare: counters ? download / agents.length / seconds : undefined,
    };
  };
  return { round, counters };
}

function checkOptions(options: P2pOptions): void {
  const { sizeBytes, agents, rounds, pieceBytes = 4 * MIB } = options;
  if (!(agents >= 1) || !(rounds >= 1) || !(sizeBytes > 0) || !(pieceBytes > 0)) {
    throw new RangeError(`invalid options ${JSON.stringify(options)}`);
  }
}

// Runs the rounds on every bench, interleaved (bench 0, 1, ..., then the next round), after one
// small unmeasured round each so the rounds measure compiled code paths.
async function runRounds(options: P2pOptions, benches: Bench[]): Promise<P2pResult[]> {
  const { sizeBytes, agents, rounds } = options;
  const pieceBytes = options.pieceBytes ?? 4 * MIB;
  const base = randomBytes(sizeBytes);
  for (const bench of benches) {
    await bench.round(base.subarray(0, Math.min(sizeBytes, 4 * pieceBytes)));
  }
  const before = await Promise.all(benches.map((b) => b.counters?.()));
  const figures = benches.map(() => [] as RoundFigures[]);
  for (let i = 0; i < rounds; i++) {
    for (const [k, bench] of benches.entries()) {
      const profile = options.profileDir &&
        `${options.profileDir}/${benches.length > 1 ? `bench${k + 1}-` : ""}round${i + 1}`;
      figures[k].push(await bench.round(base, profile || undefined));
    }
  }
  const after = await Promise.all(benches.map((b) => b.counters?.()));
  const gib = sizeBytes * agents / GIB;
  return figures.map((rs, k) => {
    const mbs = rs.map((r) => sizeBytes * agents / 1e6 / r.seconds);
    const [b, a] = [before[k], after[k]];
    let fromAgents = 0, fromOrigin = 0;
    for (let i = 0; a && b && i < agents; i++) {
      fromAgents += a[i].agent - b[i].agent;
      fromOrigin += a[i].origin - b[i].origin;
    }
    const shares = rs.flatMap((r) => r.downloadShare === undefined ? [] : [r.downloadShare]);
    return {
      agents,
      sizeBytes,
      rounds,
      pages: options.pages ?? DEFAULT_PAGE_STATE,
      mbPerSecond: { median: median(mbs), min: Math.min(...mbs), max: Math.max(...mbs) },
      agentCpuSecondsPerGiB: median(rs.map((r) => r.agentSeconds / gib)),
      originCpuSecondsPerGiB: median(rs.map((r) => r.originSecondsPerGiB)),
      ...(agents > 1 && a && b
        ? { agentToAgentPieceShare: fromAgents / (fromAgents + fromOrigin) }
        : {}),
      ...(shares.length ? { downloadShareOfGet: median(shares) } : {}),
    };
  });
}

/** Starts the processes, runs the rounds and stops everything again. */
export async function measureP2p(options: P2pOptions): Promise<P2pResult> {
  return (await compareP2p(options, []))[0];
}

/**
 * Measures this checkout and, interleaved round by round in the same run, the same cluster
 * started from each of `baselines` (root directories of other checkouts of the repository, such
 * as an older commit unpacked with `git archive`): a before/after comparison on one machine
 * state. Returns this checkout's result first, then the baselines', then the Go agents' when
 * `options.goAgent` is set.
 */
export async function compareP2p(options: P2pOptions, baselines: string[]): Promise<P2pResult[]> {
  checkOptions(options);
  const dir = await Deno.makeTempDir({ prefix: "kraken-perf-p2p-" });
  const group = new ProcessGroup();
  try {
    const starters: StartCluster[] = [startDownloadCluster];
    // A checkout whose modules are not cached yet would start slower roles (perf/module_cache.ts).
    for (const root of [HERE, ...baselines]) await warmModuleCache(root);
    for (const root of baselines) {
      const harness = await import(`file://${root}/tests/harness/cluster.ts`);
      starters.push(harness.startDownloadCluster);
    }
    const benches: Bench[] = [];
    for (const [k, start] of starters.entries()) {
      const sub = `${dir}/bench${k + 1}`;
      await Deno.mkdir(sub);
      benches.push(await startBench(options, group, sub, start));
    }
    if (options.goAgent) {
      const sub = `${dir}/go`;
      await Deno.mkdir(sub);
      benches.push(await startGoBench(options, group, sub, options.goAgent));
    }
    return await runRounds(options, benches);
  } finally {
    await group.stopAll();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** The result as a markdown table row set. */
export function formatP2p(r: P2pResult, tracing: string): string {
  const m = r.mbPerSecond;
  const lines = [
    "| origin → agents | tracing | pages | blob | rounds | MB/s median (min–max) | agent CPU s/GiB | origin CPU s/GiB | pieces agent→agent | P2P share of GET |",
    "|---|---|---|---|---:|---|---:|---:|---:|---:|",
    `| 1 → ${r.agents} | ${tracing} | ${r.pages} | ${
      Number((r.sizeBytes / MIB).toFixed(1))
    } MiB | ${r.rounds} | ${m.median.toFixed(0)} (${m.min.toFixed(0)}–${m.max.toFixed(0)}) | ${
      r.agentCpuSecondsPerGiB.toFixed(2)
    } | ${r.originCpuSecondsPerGiB.toFixed(2)} | ${
      r.agentToAgentPieceShare === undefined
        ? "—"
        : `${(100 * r.agentToAgentPieceShare).toFixed(0)}%`
    } | ${
      r.downloadShareOfGet === undefined ? "—" : `${(100 * r.downloadShareOfGet).toFixed(0)}%`
    } |`,
  ];
  return lines.join("\n");
}

if (import.meta.main) {
  const args = new Map(
    Deno.args.map((a) => {
      const m = /^--([^=]+)=(.*)$/.exec(a);
      if (!m) throw new Error(`unknown argument ${a}`);
      return [m[1], m[2]] as const;
    }),
  );
  const tracing = (args.get("tracing") ?? "off") as "off" | "on";
  const baselines = (args.get("baseline") ?? "").split(",").filter((b) => b !== "");
  const results = await compareP2p({
    sizeBytes: parseByteSize(args.get("size") ?? "512MiB"),
    pieceBytes: parseByteSize(args.get("piece") ?? "4MiB"),
    agents: Number(args.get("agents") ?? 1),
    rounds: Number(args.get("rounds") ?? 5),
    tracing,
    profileDir: args.get("profile"),
    goAgent: args.get("go-agent"),
    pages: parsePageState(args.get("pages") ?? DEFAULT_PAGE_STATE),
  }, baselines);
  const labels = ["this checkout", ...baselines];
  if (args.has("go-agent")) labels.push(`Go Kraken agent ${args.get("go-agent")}`);
  for (const [k, r] of results.entries()) {
    if (results.length > 1) console.log(`\n${labels[k]}:`);
    console.log(formatP2p(r, tracing));
  }
}
