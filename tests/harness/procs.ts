/**
 * Running real processes in flow tests: free loopback ports, child processes with captured logs,
 * readiness probes, and a group that stops everything it started.
 *
 * ```ts
 * await using group = new ProcessGroup();
 * const port = freePort();
 * const tracker = group.spawnDeno("main.ts", ["--role=tracker", `--config=${cfg}`], {
 *   logFile: `${dir}/tracker.log`,
 * });
 * await waitForHttp(`http://127.0.0.1:${port}/health`, { process: tracker });
 * // ... the test ...
 * // leaving the block stops the tracker: SIGTERM, then SIGKILL after the grace period.
 * ```
 *
 * Every child's stdout and stderr are kept in memory (the last {@link LOG_TAIL_BYTES} bytes) and,
 * if asked, appended to a log file, so a failing test can print what the process said.
 *
 * @module
 */

import { waitFor } from "./wait.ts";

/** How much of a child's combined output {@link ManagedProcess.log} keeps. */
export const LOG_TAIL_BYTES = 1 << 20;

/** How long {@link ManagedProcess.stop} waits after SIGTERM before SIGKILL, by default. */
export const DEFAULT_GRACE_MS = 3000;

/** Options for {@link spawnProcess} and {@link spawnDeno}. */
export interface SpawnOptions {
  /** Extra environment variables (merged over the parent's environment). */
  env?: Record<string, string>;
  /** Working directory (default: the current one). */
  cwd?: string;
  /** Also append stdout and stderr to this file (created if missing). */
  logFile?: string;
  /** Label used in error messages (default: the command's base name). */
  name?: string;
}

/** A child process started by this module. */
export interface ManagedProcess {
  /** Label used in messages. */
  readonly name: string;
  /** OS process ID. */
  readonly pid: number;
  /** Resolves with the exit status once the process has exited and its output is drained. */
  readonly stopped: Promise<Deno.CommandStatus>;
  /** Whether the process has exited. */
  readonly exited: boolean;
  /** Sends a signal; does nothing once the process has exited. */
  kill(signal?: Deno.Signal): void;
  /** SIGTERM, then SIGKILL if it is still running after `graceMs`; resolves with the status. */
  stop(graceMs?: number): Promise<Deno.CommandStatus>;
  /** The process's combined stdout and stderr so far (the last {@link LOG_TAIL_BYTES} bytes). */
  log(): string;
}

/** Options for {@link waitForHttp} and {@link waitForTcp}. */
export interface WaitOptions {
  /**
   * Give up after this long (default 30 000 ms: a process that dies is reported at once through
   * `process`, so the bound only catches one that never gets ready, and a loaded CI machine can
   * take over 10 s to start a Deno program).
   */
  timeoutMs?: number;
  /** Pause between attempts (default 50 ms). */
  intervalMs?: number;
  /** Fail at once, with its log, if this process exits while waiting. */
  process?: ManagedProcess;
}

/** Options for {@link waitForHttp}. */
export interface WaitForHttpOptions extends WaitOptions {
  /** Which responses count as ready (default: any 2xx). */
  ready?: (response: Response) => boolean;
  /** The HTTP client (an `https` URL signed by a test CA needs one with its `caCerts`). */
  client?: Deno.HttpClient;
}

/**
 * Where {@linkcode freePorts} looks: below the ephemeral ranges of Linux (32768–60999) and of
 * macOS and Windows (49152–65535), so no `port: 0` listener and no outgoing connection of another
 * test can take a chosen port before the process it was chosen for binds it.
 */
export const FREE_PORT_RANGE = { first: 20_000, last: 32_767 } as const;

/**
 * Where {@linkcode freePorts} records the ports it hands out, shared by every test process and
 * worker on the machine: a port is bindable between its choice and the moment its process binds it,
 * so without a shared record two parallel tests can choose the same one.
 */
export const PORT_RESERVATIONS_DIR = `${Deno.env.get("TMPDIR") ?? "/tmp"}/kraken-test-ports`;

/** A reserved port is not handed out again for one to two windows of this length. */
export const PORT_RESERVATION_WINDOW_MS = 10 * 60_000;

/**
 * Reserves `port` for this caller: true unless a reservation of it was made in the current or the
 * previous window. Each reservation is a file created exclusively (`<port>-<window>`), so two
 * processes racing for one port cannot both win.
 */
export function reservePort(
  port: number,
  { dir = PORT_RESERVATIONS_DIR, now = Date.now() }: { dir?: string; now?: number } = {},
): boolean {
  const window = Math.floor(now / PORT_RESERVATION_WINDOW_MS);
  const taken = (w: number) => {
    try {
      Deno.statSync(`${dir}/${port}-${w}`);
      return true;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
  };
  if (taken(window - 1)) return false;
  Deno.mkdirSync(dir, { recursive: true });
  try {
    Deno.openSync(`${dir}/${port}-${window}`, { write: true, createNew: true }).close();
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) return false;
    throw error;
  }
  if (Math.random() < 0.02) removeOldReservations(dir, window);
  return true;
}

/** Deletes reservations older than the previous window (they are no longer consulted). */
function removeOldReservations(dir: string, window: number): void {
  for (const entry of Deno.readDirSync(dir)) {
    const made = Number(entry.name.split("-")[1]);
    if (made < window - 1) {
      try {
        Deno.removeSync(`${dir}/${entry.name}`);
      } catch {
        // Another process removed it first.
      }
    }
  }
}

/** Returns a TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  return freePorts(1)[0];
}

/**
 * Returns `count` distinct TCP ports on 127.0.0.1 from {@linkcode FREE_PORT_RANGE} that were free
 * a moment ago and that no other caller on the machine was given recently ({@linkcode reservePort}).
 * Each is tried with a listener, held open until every port is chosen.
 */
export function freePorts(count: number): number[] {
  const { first, last } = FREE_PORT_RANGE;
  const listeners: Deno.Listener[] = [];
  try {
    for (let tries = 0; listeners.length < count; tries++) {
      if (tries >= 100 * count) {
        throw new Error(`no ${count} free ports in ${first}-${last} after ${tries} tries`);
      }
      const port = first + Math.floor(Math.random() * (last - first + 1));
      let listener: Deno.Listener;
      try {
        listener = Deno.listen({ hostname: "127.0.0.1", port });
      } catch (error) {
        if (!(error instanceof Deno.errors.AddrInUse)) throw error;
        continue;
      }
      if (reservePort(port)) listeners.push(listener);
      else listener.close();
    }
    return listeners.map((l) => (l.addr as Deno.NetAddr).port);
  } finally {
    for (const l of listeners) l.close();
  }
}

function tail(text: string, maxChars = 4000): string {
  return text.length <= maxChars ? text : `...${text.slice(-maxChars)}`;
}

/** Formats a process's log tail for an error message. */
export function describeExit(process: ManagedProcess): string {
  return `${process.name} (pid ${process.pid}) output:\n${tail(process.log()) || "(no output)"}`;
}

/** Keeps the last `limit` bytes of a byte stream, in chunks. */
class OutputTail {
  #chunks: Uint8Array[] = [];
  #size = 0;
  constructor(readonly limit: number) {}

  push(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    while (this.#size - this.#chunks[0].length >= this.limit) {
      this.#size -= this.#chunks.shift()!.length;
    }
  }

  text(): string {
    const all = new Uint8Array(this.#size);
    let at = 0;
    for (const c of this.#chunks) {
      all.set(c, at);
      at += c.length;
    }
    return new TextDecoder().decode(all.subarray(Math.max(0, this.#size - this.limit)));
  }
}

/**
 * Starts `command` with `args`. Output goes to memory and, with `logFile`, to that file.
 * The returned {@link ManagedProcess} must be stopped (or awaited) by the caller; a
 * {@link ProcessGroup} does that for you.
 */
export function spawnProcess(
  command: string,
  args: string[],
  options: SpawnOptions = {},
): ManagedProcess {
  const { env, cwd, logFile } = options;
  const name = options.name ?? command.split("/").pop() ?? command;
  // Opened first: a bad log path must not leave a running child nobody owns.
  const file = logFile
    ? Deno.openSync(logFile, { write: true, create: true, append: true })
    : undefined;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(command, {
      args,
      env,
      cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    file?.close();
    throw error;
  }
  const output = new OutputTail(LOG_TAIL_BYTES);
  const readers = [child.stdout.getReader(), child.stderr.getReader()];
  const pumps = readers.map(async (reader) => {
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) return;
        output.push(value);
        if (file) await file.write(value);
      }
    } catch {
      // The reader was cancelled because a grandchild kept the pipe open; output ends here.
    }
  });
  let exited = false;
  const stopped = (async () => {
    const status = await child.status;
    exited = true;
    // A grandchild that inherited the pipes could keep them open forever; stop reading then.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const drained = await Promise.race([
      Promise.all(pumps).then(() => true),
      new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), 1000)),
    ]);
    clearTimeout(timer);
    if (!drained) {
      await Promise.all(readers.map((r) => r.cancel().catch(() => {})));
      await Promise.all(pumps);
    }
    file?.close();
    return status;
  })();

  const kill = (signal: Deno.Signal = "SIGTERM") => {
    if (exited) return;
    try {
      child.kill(signal);
    } catch (error) {
      // The process can exit between the check and the kill; anything else is a real error.
      if (!(error instanceof TypeError) && !(error instanceof Deno.errors.NotFound)) throw error;
    }
  };

  return {
    name,
    pid: child.pid,
    stopped,
    get exited() {
      return exited;
    },
    kill,
    async stop(graceMs = DEFAULT_GRACE_MS) {
      kill("SIGTERM");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = await Promise.race([
        stopped.then(() => false),
        new Promise<true>((resolve) => timer = setTimeout(() => resolve(true), graceMs)),
      ]);
      clearTimeout(timer);
      if (timedOut) kill("SIGKILL");
      return await stopped;
    },
    log: () => output.text(),
  };
}

/**
 * Starts a Deno script with the same `deno` binary that runs the tests (`Deno.execPath()`), as
 * `deno run --allow-all <scriptPath> ...args`.
 */
export function spawnDeno(
  scriptPath: string,
  args: string[] = [],
  options: SpawnOptions = {},
): ManagedProcess {
  return spawnProcess(Deno.execPath(), ["run", "--allow-all", scriptPath, ...args], {
    ...options,
    name: options.name ?? scriptPath.split("/").pop(),
  });
}

/** Pids of the running processes whose parent is `pid` and whose command name is `comm` (Linux). */
export function childPids(pid: number, comm: string): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    let stat: string;
    try {
      stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
    } catch {
      continue; // Gone since the listing.
    }
    // `pid (comm) state ppid ...`: the name may hold spaces and parentheses, so cut at the last `)`.
    const close = stat.lastIndexOf(")");
    const name = stat.slice(stat.indexOf("(") + 1, close);
    const ppid = Number(stat.slice(close + 2).split(" ")[1]);
    if (ppid === pid && name === comm) pids.push(Number(entry.name));
  }
  return pids;
}

function running(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/**
 * `process`, whose `stop` also stops the children named `comm` that it started: a program that
 * leaves a helper running when it is stopped (upstream's Go agent and its nginx) would otherwise
 * leave it behind, reparented, after the test or benchmark. The children are looked up just before
 * the parent is stopped, then sent SIGTERM, and SIGKILL if still running after `graceMs`.
 */
export function stoppingChildren(process: ManagedProcess, comm: string): ManagedProcess {
  return {
    name: process.name,
    pid: process.pid,
    stopped: process.stopped,
    get exited() {
      return process.exited;
    },
    kill: (signal) => process.kill(signal),
    log: () => process.log(),
    async stop(graceMs = DEFAULT_GRACE_MS) {
      const children = process.exited ? [] : childPids(process.pid, comm);
      const status = await process.stop(graceMs);
      const signal = (pid: number, sig: Deno.Signal) => {
        try {
          Deno.kill(pid, sig);
        } catch {
          // Already gone.
        }
      };
      for (const pid of children) signal(pid, "SIGTERM");
      const deadline = Date.now() + graceMs;
      while (children.some(running) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      for (const pid of children.filter(running)) signal(pid, "SIGKILL");
      return status;
    },
  };
}

async function poll(
  what: string,
  attempt: () => Promise<string | undefined>,
  options: WaitOptions,
): Promise<void> {
  const { timeoutMs = 30_000, intervalMs = 50, process } = options;
  let last = "no attempt";
  await waitFor(what, async () => {
    if (process?.exited) {
      throw new Error(`${process.name} exited while waiting for ${what}\n${describeExit(process)}`);
    }
    const failure = await attempt();
    if (failure === undefined) return true;
    last = failure;
    return false;
  }, {
    timeoutMs,
    intervalMs,
    detail: () => `(last: ${last})${process ? `\n${describeExit(process)}` : ""}`,
  });
}

/** Polls `url` with GET until a response counts as ready. The body is always discarded. */
export async function waitForHttp(url: string, options: WaitForHttpOptions = {}): Promise<void> {
  const ready = options.ready ?? ((r: Response) => r.ok);
  await poll(url, async () => {
    try {
      const response = await fetch(url, {
        signal: AbortSignal.timeout(2000),
        client: options.client,
      });
      await response.body?.cancel();
      return ready(response) ? undefined : `HTTP ${response.status}`;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  }, options);
}

/** Polls until a TCP connection to `hostname:port` succeeds. */
export async function waitForTcp(
  hostname: string,
  port: number,
  options: WaitOptions = {},
): Promise<void> {
  await poll(`tcp ${hostname}:${port}`, async () => {
    try {
      (await Deno.connect({ hostname, port })).close();
      return undefined;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  }, options);
}

/**
 * Owns the processes a test starts and stops them all, concurrently, at the end of a
 * `try/finally` ({@link stopAll}) or an `await using` block.
 */
export class ProcessGroup {
  #processes: ManagedProcess[] = [];

  /** Creates a group whose {@link stopAll} waits `graceMs` between SIGTERM and SIGKILL. */
  constructor(readonly graceMs: number = DEFAULT_GRACE_MS) {}

  /** Processes in the group, in start order. */
  get processes(): readonly ManagedProcess[] {
    return this.#processes;
  }

  /** Adds an already started process and returns it. */
  add<P extends ManagedProcess>(process: P): P {
    this.#processes.push(process);
    return process;
  }

  /** {@link spawnProcess} and add the result to the group. */
  spawn(command: string, args: string[], options?: SpawnOptions): ManagedProcess {
    return this.add(spawnProcess(command, args, options));
  }

  /** {@link spawnDeno} and add the result to the group. */
  spawnDeno(scriptPath: string, args?: string[], options?: SpawnOptions): ManagedProcess {
    return this.add(spawnDeno(scriptPath, args, options));
  }

  /** Stops every process (SIGTERM, then SIGKILL after the grace period) and empties the group. */
  async stopAll(): Promise<void> {
    const processes = this.#processes;
    this.#processes = [];
    await Promise.all(processes.map((p) => p.stop(this.graceMs)));
  }

  /** Same as {@link stopAll}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stopAll();
  }
}
