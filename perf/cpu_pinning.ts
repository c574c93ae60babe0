/**
 * CPU pinning for the end-to-end measurements. On this 2-core VM a node under test that the
 * scheduler happens to run on the load client's CPU answers in a different time than one woken on
 * the other CPU, and that placement sticks to the process: six identical agents with tracing off
 * measured 527–610 µs p50 side by side, in two groups about 40 µs apart, the same agents in the
 * same group run after run. With the client on the first CPU and the nodes on the others, the same
 * six came within 8 µs of each other (docs/performance.md, "2026-12-03"). {@linkcode withPinning}
 * does that with `taskset`; where there is one CPU or no `taskset` it pins nothing and says so.
 *
 * @module
 */

/** Sets the CPU affinity of every thread of `pid` (`taskset -a -p -c <cpus> <pid>`). */
export async function pinProcess(pid: number, cpus: string): Promise<void> {
  const out = await new Deno.Command("taskset", {
    args: ["-a", "-p", "-c", cpus, String(pid)],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`taskset -c ${cpus} ${pid}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/** The CPUs a process may run on, as Linux lists them (`/proc/<pid>/status`, `Cpus_allowed_list`). */
export async function allowedCpus(pid: number): Promise<string> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const m = /^Cpus_allowed_list:\s*(\S+)$/m.exec(status);
  if (!m) throw new Error(`/proc/${pid}/status has no Cpus_allowed_list`);
  return m[1];
}

/** What {@linkcode pinForMeasurement} did. */
export interface Pinning {
  /** How the processes were placed, for the report (`client on CPU 0, nodes on CPUs 1-1`). */
  description: string;
  /** Gives the client its CPUs back (the nodes stay pinned: they are stopped after the run). */
  restore(): Promise<void>;
}

/** Options of {@linkcode pinForMeasurement}. */
export interface PinOptions {
  /** CPUs of the machine. Default `navigator.hardwareConcurrency`. */
  cpuCount?: number;
  /** The load client. Default this process. */
  clientPid?: number;
}

/**
 * Pins the load client to CPU 0 and `nodePids` (the nodes under test) to the other CPUs. With one
 * CPU, or when `taskset` fails (not installed), nothing is pinned and the description says why.
 */
export async function pinForMeasurement(
  nodePids: number[],
  options: PinOptions = {},
): Promise<Pinning> {
  const cpus = options.cpuCount ?? navigator.hardwareConcurrency;
  const client = options.clientPid ?? Deno.pid;
  const unpinned = (why: string): Pinning => ({
    description: `not pinned (${why})`,
    restore: () => Promise.resolve(),
  });
  if (cpus < 2) return unpinned("one CPU");
  const clientCpus = await allowedCpus(client);
  const nodeCpus = cpus === 2 ? "1" : `1-${cpus - 1}`;
  try {
    await pinProcess(client, "0");
    for (const pid of nodePids) await pinProcess(pid, nodeCpus);
  } catch (error) {
    await pinProcess(client, clientCpus).catch(() => {});
    return unpinned((error as Error).message);
  }
  return {
    description: `client on CPU 0, nodes under test on CPU ${nodeCpus}`,
    restore: () => pinProcess(client, clientCpus),
  };
}

/**
 * Runs `measure` with the client and `nodePids` pinned as {@linkcode pinForMeasurement} does, and
 * gives the client its CPUs back when it settles; `measure` gets the placement's description.
 */
export async function withPinning<T>(
  nodePids: number[],
  measure: (pinning: string) => Promise<T>,
  options: PinOptions = {},
): Promise<T> {
  const pinning = await pinForMeasurement(nodePids, options);
  try {
    return await measure(pinning.description);
  } finally {
    await pinning.restore();
  }
}
