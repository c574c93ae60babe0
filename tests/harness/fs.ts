/**
 * Files in tests: a temporary directory that is removed afterwards, and whether a path exists.
 *
 * ```ts
 * import { exists, withTempDir } from "./fs.ts";
 * await withTempDir(async (dir) => {
 *   await Deno.writeTextFile(`${dir}/a`, "x");
 *   console.log(await exists(`${dir}/a`)); // true
 * }, { prefix: "kraken-example-" });
 * ```
 *
 * @module
 */

/** Options of {@linkcode withTempDir}. */
export interface WithTempDirOptions {
  /** Prefix of the directory's name (default `kraken-test-`). */
  prefix?: string;
}

/** Runs `fn` with a new temporary directory and removes the directory afterwards, even on failure. */
export async function withTempDir<T>(
  fn: (dir: string) => Promise<T>,
  options: WithTempDirOptions = {},
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: options.prefix ?? "kraken-test-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** True when `path` exists (any kind of file); other errors than "not found" are thrown. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
