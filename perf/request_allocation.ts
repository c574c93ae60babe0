/**
 * Bytes allocated per request by each in-process stack of `perf/inprocess.ts` (tracing off, on at
 * 100%, on at 0%), and by which functions, from V8's sampling heap profiler (`node:inspector`,
 * `HeapProfiler.startSampling` counting objects the garbage collector has already freed). Garbage
 * is what a request leaves for the scavenger, whose time grows with it; unlike CPU time on a
 * shared VM, the figure barely moves from run to run, so a change's effect on it shows in one run.
 *
 * `deno run -A perf/request_allocation.ts [requests]` prints each stack's bytes per request and
 * the functions whose allocation tracing changes most (the sampled and unsampled stacks against
 * tracing off).
 *
 * @module
 */

import { Session } from "node:inspector";
import { inProcessStacks, serveRequests, type Stack } from "./inprocess.ts";

/** Options of {@linkcode measureAllocation}. */
export interface AllocationOptions {
  /** Requests profiled per stack. */
  requests: number;
  /** Requests per stack served first and not profiled (JIT warm-up, lazy caches). */
  warmup: number;
  /** Mean bytes between two samples of the profiler. Default 256. */
  samplingIntervalBytes?: number;
}

/** Bytes per request allocated in one function (its own allocations, not its callees'). */
export interface FunctionAllocation {
  /** `name file:line`; `(anonymous)` for an unnamed function. */
  name: string;
  /** Bytes per request. */
  bytesPerRequest: number;
}

/** What one stack allocates per request. */
export interface StackAllocation {
  /** All bytes allocated per request. */
  bytesPerRequest: number;
  /** Per function, largest first. */
  byFunction: FunctionAllocation[];
}

/** The three stacks' allocation. */
export interface AllocationResult {
  /** Tracing off. */
  untraced: StackAllocation;
  /** Tracing on at 100%. */
  sampled: StackAllocation;
  /** Tracing on at 0%. */
  unsampled: StackAllocation;
}

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

function post<T>(session: Session, method: string, params: object = {}): Promise<T> {
  return new Promise((resolve, reject) =>
    session.post(method, params, (error: Error | null, result: unknown) => {
      if (error) reject(error);
      else resolve(result as T);
    })
  );
}

function frameName(frame: ProfileNode["callFrame"]): string {
  const file = frame.url.replace(/^.*\//, "") || "(native)";
  return `${frame.functionName || "(anonymous)"} ${file}:${frame.lineNumber + 1}`;
}

function perRequest(head: ProfileNode, requests: number): StackAllocation {
  const bytes = new Map<string, number>();
  let total = 0;
  const pending = [head];
  while (pending.length > 0) {
    const node = pending.pop()!;
    total += node.selfSize;
    if (node.selfSize > 0) {
      const name = frameName(node.callFrame);
      bytes.set(name, (bytes.get(name) ?? 0) + node.selfSize);
    }
    pending.push(...node.children);
  }
  return {
    bytesPerRequest: total / requests,
    byFunction: [...bytes]
      .map(([name, b]) => ({ name, bytesPerRequest: b / requests }))
      .sort((a, b) => b.bytesPerRequest - a.bytesPerRequest),
  };
}

async function profileStack(
  session: Session,
  stack: Stack,
  options: AllocationOptions,
): Promise<StackAllocation> {
  await serveRequests(stack, options.warmup);
  await post(session, "HeapProfiler.startSampling", {
    samplingInterval: options.samplingIntervalBytes ?? 256,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  try {
    await serveRequests(stack, options.requests);
  } catch (error) {
    await post(session, "HeapProfiler.stopSampling");
    throw error;
  }
  const { profile } = await post<{ profile: { head: ProfileNode } }>(
    session,
    "HeapProfiler.stopSampling",
  );
  return perRequest(profile.head, options.requests);
}

/** Profiles the three stacks one after another; see the module doc. */
export async function measureAllocation(options: AllocationOptions): Promise<AllocationResult> {
  const stacks = inProcessStacks();
  const session = new Session();
  session.connect();
  try {
    await post(session, "HeapProfiler.enable");
    const result: Partial<AllocationResult> = {};
    for (const name of ["untraced", "sampled", "unsampled"] as const) {
      stacks.activate(stacks[name]);
      result[name] = await profileStack(session, stacks[name], options);
    }
    return result as AllocationResult;
  } finally {
    session.disconnect();
    await stacks.shutdown();
  }
}

/** Per function, `traced` minus `untraced` bytes per request, largest change first. */
export function allocationDifference(
  traced: StackAllocation,
  untraced: StackAllocation,
): FunctionAllocation[] {
  const difference = new Map<string, number>();
  for (const f of traced.byFunction) difference.set(f.name, f.bytesPerRequest);
  for (const f of untraced.byFunction) {
    difference.set(f.name, (difference.get(f.name) ?? 0) - f.bytesPerRequest);
  }
  return [...difference]
    .map(([name, bytesPerRequest]) => ({ name, bytesPerRequest }))
    .sort((a, b) => Math.abs(b.bytesPerRequest) - Math.abs(a.bytesPerRequest));
}

if (import.meta.main) {
  const requests = Number(Deno.args[0] ?? 20_000);
  const r = await measureAllocation({ requests, warmup: requests });
  const b = (n: number) => `${Math.round(n)} B`;
  console.log(`bytes allocated per request, ${requests} requests per stack after as many warm-up`);
  console.log(`  tracing off   ${b(r.untraced.bytesPerRequest)}`);
  for (const name of ["sampled", "unsampled"] as const) {
    const added = r[name].bytesPerRequest - r.untraced.bytesPerRequest;
    console.log(
      `  ${name.padEnd(12)}  ${b(r[name].bytesPerRequest)}  (${added >= 0 ? "+" : ""}${b(added)})`,
    );
  }
  for (const name of ["sampled", "unsampled"] as const) {
    console.log(`\n${name} against tracing off, per function (bytes per request):`);
    for (const f of allocationDifference(r[name], r.untraced).slice(0, 15)) {
      console.log(`  ${Math.round(f.bytesPerRequest).toString().padStart(6)}  ${f.name}`);
    }
  }
}
