/**
 * Agents side by side under one GET load: each variant is an agent process with its own tracing
 * setting, optionally from another checkout, all started on one cluster of real processes
 * (`tests/harness/cluster.ts`) and asked for the same cached blob one request at a time in the
 * interleaved order of `perf/e2e.ts` (`interleavedRuns`). It is the same-run before/after and A/A
 * tool for the agent's cached GET (`docs/performance.md`, "The agent's cached GET end to end"):
 * per variant and run it reports the client's p50/p99 and the agent's CPU per GET (`/proc`), and
 * before the runs each agent's idle CPU. Every checkout is warmed first (`perf/module_cache.ts`)
 * and the agents run on other CPUs than the client (`perf/cpu_pinning.ts`), as in `perf/e2e.ts`.
 * With `--perf=<dir>` every agent is profiled with Linux
 * `perf record` during each run (V8's `--perf-basic-prof` symbols; the figures then include the
 * profiler's overhead).
 *
 * A variant is `off`, or a sampling rate in percent (`0%`, `10%`, `100%`; tracing on, OTLP to a
 * sink that answers at once, no span shed), optionally `~nobreaker` (circuit breaker off, so no
 * load-sampling timer), `~delay=<ms>` (`export.batch_timeout`), `~batch=<n>`
 * (`export.max_batch_size`), optionally `@<dir>`: the agent runs `<dir>/main.ts` (a checkout made with
 * `git archive <commit> | tar -x -C <dir>` and a `node_modules` link).
 *
 * ```sh
 * deno run -A perf/agent_get.ts --variants=off,off,10%,100% --gets=2500 --runs=3   # A/A and tracing
 * deno run -A perf/agent_get.ts --variants=off@/tmp/base,off,off@/tmp/base,off      # before/after
 * deno run -A perf/agent_get.ts --variants=off --gets=4000 --perf=/tmp/get-prof     # then perf report
 * ```
 *
 * @module
 */

import { startDownloadCluster } from "../tests/harness/cluster.ts";
import {
  freePorts,
  type ManagedProcess,
  ProcessGroup,
  waitForHttp,
} from "../tests/harness/procs.ts";
import { digestOfBytes } from "../storage/digest.ts";
import {
  cpuSeconds,
  interleavedRuns,
  randomBlob,
  startSink,
  tracingBlock,
  uploadBlob,
} from "./e2e.ts";
import { PERF_V8_FLAGS, perfRecord } from "./p2p.ts";
import { withPinning } from "./cpu_pinning.ts";
import { warmModuleCache } from "./module_cache.ts";
import { table, type VariantRun } from "./report.ts";

const HERE = new URL("../", import.meta.url).pathname;

/** One agent under test. */
export interface AgentVariant {
  /** The spec it was parsed from (its label in the report). */
  label: string;
  /** Sampling rate in [0, 1], or undefined for tracing off. */
  rate: number | undefined;
  /** Circuit breaker (and its load-sampling timer) off. */
  noBreaker: boolean;
  /** Export settings other than the defaults (`~delay=`, `~batch=`). */
  export?: { batchTimeoutMs?: number; maxBatchSize?: number };
  /** Checkout whose `main.ts` runs the agent (default: this one). */
  tree?: string;
}

/** Parses `off|<N>%[~nobreaker][~delay=<ms>][~batch=<n>][@<dir>]`. */
export function parseVariant(spec: string): AgentVariant {
  const at = spec.indexOf("@");
  const tree = at >= 0 ? spec.slice(at + 1) : undefined;
  const [setting, ...flags] = (at >= 0 ? spec.slice(0, at) : spec).split("~");
  let noBreaker = false;
  let exportSettings: AgentVariant["export"];
  for (const flag of flags) {
    const m = /^(delay|batch)=(\d+)$/.exec(flag);
    if (flag === "nobreaker") noBreaker = true;
    else if (m && Number(m[2]) > 0) {
      exportSettings = {
        ...exportSettings,
        ...(m[1] === "delay" ? { batchTimeoutMs: Number(m[2]) } : { maxBatchSize: Number(m[2]) }),
      };
    } else throw new Error(`variant ${spec}: unknown flag ~${flag}`);
  }
  if (setting === "off" && (noBreaker || exportSettings)) {
    throw new Error(`variant ${spec}: flags need tracing on`);
  }
  let rate: number | undefined;
  if (setting !== "off") {
    const m = /^(\d+(?:\.\d+)?)%$/.exec(setting);
    if (!m || Number(m[1]) > 100) throw new Error(`variant ${spec}: not off or a rate in percent`);
    rate = Number(m[1]) / 100;
  }
  if (tree === "") throw new Error(`variant ${spec}: empty checkout after @`);
  return {
    label: spec,
    rate,
    noBreaker,
    tree,
    ...(exportSettings ? { export: exportSettings } : {}),
  };
}

/** The `tracing:` block of a variant's agent. */
export function variantTracing(variant: AgentVariant, endpoint: string): Record<string, unknown> {
  if (variant.rate === undefined) return tracingBlock("off", endpoint);
  const block = tracingBlock("100%", endpoint);
  const e = variant.export;
  return {
    ...block,
    ...(e
      ? {
        export: {
          ...(block.export as Record<string, unknown>),
          ...(e.batchTimeoutMs !== undefined ? { batch_timeout: `${e.batchTimeoutMs}ms` } : {}),
          ...(e.maxBatchSize !== undefined ? { max_batch_size: e.maxBatchSize } : {}),
        },
      }
      : {}),
    sampling: { default_rate: variant.rate },
    safeguards: {
      ...(block.safeguards as Record<string, unknown>),
      ...(variant.noBreaker ? { circuit_breaker_enabled: false } : {}),
    },
  };
}

/** Options of {@linkcode measureAgentGets}. */
export interface AgentGetOptions {
  /** Directory for the cluster. */
  dir: string;
  /** Owns every process started. */
  group: ProcessGroup;
  /** The agents. */
  variants: AgentVariant[];
  /** GETs per agent per run. */
  gets: number;
  /** Interleaved runs. */
  runs: number;
  /** Blob size in bytes (default 64 KiB). */
  blobBytes?: number;
  /** Seconds of idle CPU measured before the runs (default 3). */
  idleSeconds?: number;
  /** Profile each agent during each run into `<dir>/agent<V>.run<R>.data`. */
  perfDir?: string;
}

/** What {@linkcode measureAgentGets} returns. */
export interface AgentGetResult {
  /** Idle CPU of each agent, ms per second. */
  idleMsPerSecond: number[];
  /** `runs[r][v]`. */
  runs: VariantRun[][];
  /** The agents' process ids (the names of `perf` maps, `/tmp/perf-<pid>.map`). */
  pids: number[];
  /** Where the client and the agents ran (`perf/cpu_pinning.ts`). */
  pinning: string;
}

async function startAgent(
  options: AgentGetOptions,
  variant: AgentVariant,
  v: number,
  ports: number[],
  hosts: { tracker: string; buildIndex: string; sink: string },
): Promise<{ url: string; process: ManagedProcess }> {
  const [server, registry, peer] = ports;
  const name = `agent-${v}`;
  const configPath = `${options.dir}/${name}.yaml`;
  await Deno.mkdir(`${options.dir}/${name}`, { recursive: true });
  await Deno.writeTextFile(
    configPath,
    JSON.stringify({
      server: { host: "127.0.0.1", port: server },
      registry: { host: "127.0.0.1", port: registry },
      peer: { ip: "127.0.0.1", port: peer },
      tracker: { hosts: [hosts.tracker] },
      build_index: { hosts: [hosts.buildIndex] },
      storage: { root: `${options.dir}/${name}/store` },
      tracing: variantTracing(variant, hosts.sink),
    }),
  );
  const process = options.group.spawnDeno(
    `${variant.tree ?? HERE}/main.ts`,
    ["--role=agent", `--config=${configPath}`],
    {
      name,
      logFile: `${options.dir}/${name}.log`,
      env: options.perfDir ? { DENO_V8_FLAGS: PERF_V8_FLAGS } : undefined,
    },
  );
  const url = `http://127.0.0.1:${server}`;
  await waitForHttp(`${url}/health`, { process });
  return { url, process };
}

/** Starts the cluster and the agents, then measures idle CPU and the interleaved GET runs. */
export async function measureAgentGets(options: AgentGetOptions): Promise<AgentGetResult> {
  const { dir, group, variants } = options;
  // A checkout whose modules are not cached yet would run slower agents (perf/module_cache.ts).
  for (const tree of new Set(variants.map((v) => v.tree ?? HERE))) await warmModuleCache(tree);
  const sink = await startSink(group, dir);
  const cluster = await startDownloadCluster({ dir, group, agents: 0 });
  const ports = freePorts(3 * variants.length);
  const agents = await Promise.all(
    variants.map((variant, v) =>
      startAgent(options, variant, v, ports.slice(3 * v, 3 * v + 3), {
        tracker: cluster.tracker.addr,
        buildIndex: cluster.buildIndex.addr,
        sink: sink.endpoint,
      })
    ),
  );
  const size = options.blobBytes ?? 64 * 1024;
  const blob = randomBlob(size);
  const digest = await digestOfBytes(blob);
  await uploadBlob(cluster.proxy.url, "perf/agent-get", blob, digest);
  const urls = agents.map((a) =>
    `${a.url}/namespace/${encodeURIComponent("perf/agent-get")}/blobs/${digest}`
  );
  const pids = agents.map((a) => a.process.pid);
  return await withPinning(pids, (pinning) => measurePinned(options, urls, size, pids, pinning));
}

async function measurePinned(
  options: AgentGetOptions,
  urls: string[],
  size: number,
  pids: number[],
  pinning: string,
): Promise<AgentGetResult> {
  const request = async (v: number, _i: number, signal: AbortSignal) => {
    const started = performance.now();
    const res = await fetch(urls[v], { signal });
    const body = await res.arrayBuffer();
    const us = (performance.now() - started) * 1000;
    if (res.status !== 200 || body.byteLength !== size) {
      throw new Error(`GET ${urls[v]}: HTTP ${res.status}, ${body.byteLength} bytes`);
    }
    return us;
  };
  // Warm every agent (its cache and JIT) before the idle window.
  await interleavedRuns({ pids, perVariant: 0, warmup: 300, runs: 0, maxRunMs: 60_000, request });
  const idleSeconds = options.idleSeconds ?? 3;
  const before = await Promise.all(pids.map(cpuSeconds));
  await new Promise((resolve) => setTimeout(resolve, idleSeconds * 1000));
  const after = await Promise.all(pids.map(cpuSeconds));
  const idleMsPerSecond = after.map((a, v) => (a - before[v]) * 1000 / idleSeconds);
  const runs: VariantRun[][] = [];
  for (let r = 0; r < options.runs; r++) {
    const recorders = options.perfDir
      ? pids.map((pid, v) => perfRecord(pid, `${options.perfDir}/agent${v}.run${r}.data`, 999))
      : [];
    if (recorders.length) await new Promise((resolve) => setTimeout(resolve, 500));
    const [run] = await interleavedRuns({
      pids,
      perVariant: options.gets,
      warmup: 0,
      runs: 1,
      maxRunMs: 120_000,
      request,
    });
    for (const recorder of recorders) recorder.kill("SIGINT");
    for (const recorder of recorders) await recorder.status;
    runs.push(run);
  }
  return { idleMsPerSecond, runs, pids, pinning };
}

/** The report: idle CPU, then per run and variant p50, p99 and CPU per GET. */
export function renderAgentGets(variants: AgentVariant[], result: AgentGetResult): string {
  const rows: string[][] = [];
  result.runs.forEach((run, r) =>
    run.forEach((f, v) =>
      rows.push([
        String(r + 1),
        variants[v].label,
        String(f.count),
        `${f.p50Micros.toFixed(0)} µs`,
        `${f.p99Micros.toFixed(0)} µs`,
        f.count > 0 ? (f.cpuSeconds * 1e6 / f.count).toFixed(0) : "—",
      ])
    )
  );
  return [
    `CPUs: ${result.pinning}`,
    `idle CPU, ms/s: ${
      variants.map((v, i) => `${v.label} ${result.idleMsPerSecond[i].toFixed(1)}`).join(", ")
    }`,
    "",
    table(
      ["run", "agent", "GETs", "p50", "p99", "agent CPU µs/GET"],
      rows,
      ["r", "l", "r", "r", "r", "r"],
    ),
  ].join("\n");
}

if (import.meta.main) {
  const args = new Map(
    Deno.args.map((a) => {
      const eq = a.indexOf("=");
      return [a.slice(2, eq < 0 ? undefined : eq), eq < 0 ? "" : a.slice(eq + 1)];
    }),
  );
  const variants = (args.get("variants") ?? "off,10%,100%").split(",").map(parseVariant);
  const dir = await Deno.makeTempDir({ prefix: "kraken-agent-get-" });
  try {
    await using group = new ProcessGroup();
    const result = await measureAgentGets({
      dir,
      group,
      variants,
      gets: Number(args.get("gets") ?? 2500),
      runs: Number(args.get("runs") ?? 3),
      blobBytes: args.has("size") ? Number(args.get("size")) : undefined,
      idleSeconds: args.has("idle") ? Number(args.get("idle")) : undefined,
      perfDir: args.get("perf"),
    });
    console.log(`deno run -A perf/agent_get.ts ${Deno.args.join(" ")}\n`);
    console.log(renderAgentGets(variants, result));
    if (args.has("perf")) {
      console.log(`\nagent pids (perf maps /tmp/perf-<pid>.map): ${result.pids}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
