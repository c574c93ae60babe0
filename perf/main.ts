/**
 * `npm run perf` / `deno task perf`: one bounded run (about 10 minutes on the project's 2-core VM)
 * of every performance measurement of issue 13, on real processes on loopback, printed as one
 * markdown report (machine, Deno version, date, command) on stdout:
 *
 * 1. in-process per-request overhead of tracing (`perf/inprocess.ts`) and the bytes a request
 *    allocates (`perf/request_allocation.ts`);
 * 2. the tracer against the stock SDK (`bench/tracer_bench.ts`, as `bench/gate.ts` runs it) and the
 *    heap a queued trace holds (`perf/trace_memory.ts`);
 * 3. P2P origin → 1 agent and → 4 agents (`perf/p2p.ts`), tracing off, after the machine's
 *    page-cache write floor (`perf/page_cache.ts`); with `--go-agent=` also upstream's agents;
 * 4. end to end, tracing off / 10% / 100% side by side: agent GETs of a cached 64 KB blob, tracker
 *    announces, uploads through the proxy (`perf/e2e.ts`);
 * 5. trace completeness in a real Jaeger under load (`perf/e2e_completeness.ts`);
 * 6. announces against a tracker on real Redis, for the scale note (`perf/e2e_redis.ts`).
 *
 * Each part starts and stops its own processes; a part that fails is listed in the report and the
 * run goes on (exit code 1 at the end). Targets are marked met or not met; a missed target is not
 * a failure of the run.
 *
 * ```sh
 * npm run perf                                    # the ~10-minute run
 * npm run perf -- --write-docs                    # …and rewrite the report in docs/performance.md
 * npm run perf -- --size=2GiB --rounds=5 --runs=3 # the slower, larger variant
 * npm run perf -- --skip=p2p,completeness --gets=2000
 * npm run perf -- --go-agent=<Go Kraken agent binary>  # P2P rows of upstream's agent too
 * npm run perf -- --pages=fresh                   # P2P agents write into the machine's own pages
 * ```
 *
 * Arguments: see {@linkcode parsePerfArgs}. Progress goes to stderr.
 *
 * @module
 */

import { PAIRS, pairTimes, runTracerBench } from "../bench/gate.ts";
import { ProcessGroup } from "../tests/harness/procs.ts";
import { measureEndToEnd } from "./e2e.ts";
import { measureCompleteness } from "./e2e_completeness.ts";
import { measureRedisAnnounces } from "./e2e_redis.ts";
import { measureInProcess } from "./inprocess.ts";
import { compareP2p } from "./p2p.ts";
import { measureAllocation } from "./request_allocation.ts";
import { measurePageCacheWrite } from "./page_cache.ts";
import { measureTraceMemoryInChild } from "./trace_memory.ts";
import {
  embedReport,
  parsePerfArgs,
  type PerfOptions,
  type PerfReport,
  renderReport,
  type RunInfo,
} from "./report.ts";

const DOCS = new URL("../docs/performance.md", import.meta.url).pathname;

/** Requests per stack the allocation profile of the in-process part takes (at most). */
const ALLOCATION_REQUESTS = 20_000;

/** A child that could not bind its chosen port. */
const PORT_TAKEN = /EADDRINUSE|AddrInUse|address already in use/;

/** The CPU model, from `/proc/cpuinfo` (`unknown` elsewhere). */
async function cpuModel(): Promise<string> {
  try {
    const text = await Deno.readTextFile("/proc/cpuinfo");
    return /^model name\s*:\s*(.+)$/m.exec(text)?.[1].trim() ?? "unknown";
  } catch {
    return "unknown";
  }
}

function command(args: string[]): string {
  const runner = Deno.env.get("npm_lifecycle_event") === "perf" ? "npm run perf" : "deno task perf";
  return args.length ? `${runner} -- ${args.join(" ")}` : runner;
}

/** Runs every part not skipped and returns the report. */
export async function runPerf(options: PerfOptions, args: string[] = []): Promise<PerfReport> {
  const started = performance.now();
  const info: RunInfo = {
    cpu: await cpuModel(),
    cores: navigator.hardwareConcurrency,
    memoryBytes: Deno.systemMemoryInfo().total,
    deno: Deno.version.deno,
    date: new Date().toISOString(),
    command: command(args),
    load: { start: Deno.loadavg()[0], end: 0 },
    seconds: 0,
  };
  const report: PerfReport = {
    info,
    p2p: {},
    inProcess: {},
    tracer: {},
    e2e: [],
    failures: [],
  };
  const log = (line: string) => console.error(`perf: ${line}`);
  const part = async (name: string, fn: (dir: string, group: ProcessGroup) => Promise<void>) => {
    if (options.skip.has(name)) return;
    log(`${name}…`);
    const t0 = performance.now();
    for (let attempt = 1;; attempt++) {
      const dir = await Deno.makeTempDir({ prefix: `kraken-perf-${name}-` });
      try {
        await using group = new ProcessGroup();
        await fn(dir, group);
        break;
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        // Ports are chosen free, then bound by the child: another program on the machine can take
        // one in between. That is the machine's, not the measurement's, so the part starts over once.
        if (attempt === 1 && PORT_TAKEN.test(message)) {
          log(`${name}: a port was taken by another process at start-up; starting the part again`);
          continue;
        }
        report.failures.push({ part: name, error: message.split("\n")[0] });
        log(`${name} failed: ${error instanceof Error ? error.stack : message}`);
        break;
      } finally {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    }
    log(`${name} done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  };

  // First, while no role process runs: the in-process figures are the most sensitive to load.
  await part("inprocess", async () => {
    report.inProcess.figures = await measureInProcess({
      requests: options.inProcessRequests,
      warmup: Math.max(100, Math.floor(options.inProcessRequests / 10)),
    });
    // The garbage per request barely moves between runs, where CPU time here does.
    const requests = Math.min(ALLOCATION_REQUESTS, options.inProcessRequests);
    const allocation = await measureAllocation({ requests, warmup: requests });
    report.inProcess.allocation = {
      requests,
      untracedBytes: allocation.untraced.bytesPerRequest,
      sampledBytes: allocation.sampled.bytesPerRequest,
      unsampledBytes: allocation.unsampled.bytesPerRequest,
    };
  });
  // Also before any role process: same-run ratios, but a quiet machine keeps them steady.
  await part("tracer", async () => {
    const results = await runTracerBench();
    const operations = PAIRS.map((pair) => {
      const times = pairTimes(results, pair);
      if (times === undefined) throw new Error(`${pair.name}: missing from the bench output`);
      return { name: pair.name, ...times };
    });
    const memory = await measureTraceMemoryInChild();
    report.tracer.figures = {
      operations,
      memoryBytesPerTrace: memory.bytesPerTrace,
      spansPerTrace: memory.spansPerTrace,
    };
  });
  await part("p2p", async (dir) => {
    report.p2p.pageCache = await measurePageCacheWrite({ dir, bytes: options.sizeBytes });
    const shape = {
      sizeBytes: options.sizeBytes,
      rounds: options.rounds,
      tracing: "off" as const,
      goAgent: options.goAgent,
      pages: options.pages,
    };
    [report.p2p.oneToOne, report.p2p.goOneToOne] = await compareP2p({ ...shape, agents: 1 }, []);
    [report.p2p.oneToMany, report.p2p.goOneToMany] = await compareP2p({ ...shape, agents: 4 }, []);
  });
  await part("e2e", async (dir, group) => {
    const r = await measureEndToEnd({
      dir,
      group,
      gets: options.gets,
      announces: options.announces,
      uploads: options.uploads,
      uploadBytes: options.uploadBytes,
      runs: options.runs,
      log,
    });
    report.e2e = r.measurements;
    report.e2ePinning = r.pinning;
    report.e2eIdle = r.idle;
    report.scale = {
      ...report.scale,
      otlpBytesPerSpan: r.otlp.spansExported > 0 ? r.otlp.bytes / r.otlp.spansExported : undefined,
      spansPerAnnounce: r.tracker100.announces > 0
        ? r.tracker100.spansSampled / r.tracker100.announces
        : undefined,
    };
  });
  await part("completeness", async (dir, group) => {
    report.completeness = await measureCompleteness({ dir, group, traces: options.traces, log });
  });
  await part("scale", async (dir, group) => {
    const redis = await measureRedisAnnounces({ dir, group, announces: options.announces });
    report.scale = { ...report.scale, redis };
  });
  info.load.end = Deno.loadavg()[0];
  info.seconds = (performance.now() - started) / 1000;
  return report;
}

if (import.meta.main) {
  let options: PerfOptions;
  try {
    options = parsePerfArgs(Deno.args);
  } catch (error) {
    console.error(`perf: ${(error as Error).message}`);
    Deno.exit(2);
  }
  const report = await runPerf(options, Deno.args);
  const markdown = renderReport(report);
  console.log(markdown);
  if (options.out) await Deno.writeTextFile(options.out, `${markdown}\n`);
  if (options.writeDocs) {
    await Deno.writeTextFile(DOCS, embedReport(await Deno.readTextFile(DOCS), markdown));
    console.error(`perf: report written into ${DOCS}`);
  }
  Deno.exit(report.failures.length ? 1 : 0);
}
