/**
 * The machine's floor under the P2P agent's CPU target: what writing a blob's bytes into the page
 * cache costs here, measured in the same run as the P2P figures. An agent writes every byte it
 * downloads into its download file once, so no agent on this machine can spend less CPU per GiB
 * than this write.
 *
 * A child process writes `bytes` into a new file in 4 MiB writes (the agent's piece size) and
 * reports its own CPU time (`utime + stime` of `/proc/self/stat`, every thread); then it deletes
 * the file and at once writes another one, which takes the pages the first one just freed. On a
 * VM whose host reclaims the guest's free memory, the first write pays for fresh pages and the
 * second does not: the gap is the hypervisor's, not the program's.
 *
 * ```sh
 * deno run -A perf/page_cache.ts /tmp 512MiB     # prints the JSON of PageCacheWrite
 * ```
 *
 * @module
 */

import { parseByteSize } from "../common/byte_size.ts";
import { cpuSecondsFromStat } from "./e2e.ts";

/** CPU seconds per GiB written, into fresh pages and into just-freed ones. */
export interface PageCacheWrite {
  /** Bytes written per file. */
  bytes: number;
  /** CPU seconds per GiB writing a new file after the machine was left alone. */
  freshCpuSecondsPerGiB: number;
  /** CPU seconds per GiB writing a new file right after deleting one of the same size. */
  reusedCpuSecondsPerGiB: number;
}

/** Options of {@linkcode measurePageCacheWrite}. */
export interface PageCacheOptions {
  /** Directory on the file system under test (the agents' stores are on it). */
  dir: string;
  /** Bytes per file (default 512 MiB). */
  bytes?: number;
}

const GIB = 1024 ** 3;
const WRITE_BYTES = 4 * 1024 * 1024;

/** CPU seconds (user + system, all threads) of this process so far. */
function ownCpuSeconds(): number {
  return cpuSecondsFromStat(Deno.readTextFileSync("/proc/self/stat"));
}

async function writeNewFile(path: string, bytes: number, chunk: Uint8Array): Promise<void> {
  const file = await Deno.open(path, { write: true, createNew: true });
  try {
    for (let left = bytes; left > 0; left -= chunk.length) {
      const part = left >= chunk.length ? chunk : chunk.subarray(0, left);
      for (let off = 0; off < part.length;) off += await file.write(part.subarray(off));
    }
  } finally {
    file.close();
  }
}

async function writeFileTimed(path: string, bytes: number, chunk: Uint8Array): Promise<number> {
  const before = ownCpuSeconds();
  await writeNewFile(path, bytes, chunk);
  return ownCpuSeconds() - before;
}

/**
 * Which page-cache pages a measured writer gets: `recycled`, just freed by {@linkcode recyclePages}
 * right before; `fresh`, whatever the machine hands out.
 */
export type PageState = "recycled" | "fresh";

/** The page state measurements use unless told otherwise. */
export const DEFAULT_PAGE_STATE: PageState = "recycled";

/** Parses a `--pages=` value. */
export function parsePageState(value: string): PageState {
  if (value !== "recycled" && value !== "fresh") {
    throw new RangeError(`--pages=${value}: expected recycled or fresh`);
  }
  return value;
}

/**
 * Leaves `bytes` of just-freed page-cache pages for the next writer on the machine: writes a
 * scratch file of that size into `dir` (4 MiB writes) and deletes it. On a VM whose host takes the
 * guest's free memory back, the pages a new file gets are otherwise fresh ones, which cost several
 * times the CPU per byte of pages that were in use a moment ago (the floor {@linkcode writeTwice}
 * measures); on a host whose page cache is full, every write gets such recycled pages.
 */
export async function recyclePages(dir: string, bytes: number): Promise<void> {
  const path = `${dir}/recycled-pages`;
  try {
    await writeNewFile(path, bytes, new Uint8Array(WRITE_BYTES));
  } finally {
    await Deno.remove(path).catch(() => {});
  }
}

/** The two writes, in this process (the child side of {@linkcode measurePageCacheWrite}). */
export async function writeTwice(dir: string, bytes: number): Promise<PageCacheWrite> {
  const chunk = new Uint8Array(WRITE_BYTES);
  crypto.getRandomValues(chunk.subarray(0, 65536));
  const first = `${dir}/page-cache-1`, second = `${dir}/page-cache-2`;
  try {
    const fresh = await writeFileTimed(first, bytes, chunk);
    await Deno.remove(first);
    const reused = await writeFileTimed(second, bytes, chunk);
    return {
      bytes,
      freshCpuSecondsPerGiB: fresh * GIB / bytes,
      reusedCpuSecondsPerGiB: reused * GIB / bytes,
    };
  } finally {
    for (const path of [first, second]) await Deno.remove(path).catch(() => {});
  }
}

/** Runs {@linkcode writeTwice} in a child process and returns its figures. */
export async function measurePageCacheWrite(options: PageCacheOptions): Promise<PageCacheWrite> {
  const bytes = options.bytes ?? 512 * 1024 * 1024;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, options.dir, String(bytes)],
    env: { DENO_NO_PACKAGE_JSON: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`page-cache write: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

if (import.meta.main) {
  const [dir, size] = Deno.args;
  if (!dir || !size) {
    console.error("usage: deno run -A perf/page_cache.ts <dir> <size>");
    Deno.exit(2);
  }
  console.log(JSON.stringify(await writeTwice(dir, parseByteSize(size))));
}
