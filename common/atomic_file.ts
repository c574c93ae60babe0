/**
 * Atomic file writes: the data goes to a new temporary file, is flushed to disk, and only then is
 * renamed over the target, whose directory is flushed too. Readers see the old file or the whole
 * new one, never a partial write, and a crash cannot publish a file whose data never reached the
 * disk. Every store that replaces a file in place (tags, upload sessions, blob metadata, the file
 * backend) writes through {@linkcode writeFileAtomic}.
 *
 * ```ts
 * import { writeFileAtomic } from "./atomic_file.ts";
 * await writeFileAtomic("/var/cache/kraken/tags/repo:v1", "sha256:...", { tempPrefix: ".tmp-" });
 * ```
 *
 * @module
 */

import { dirname, join } from "node:path";

/** What {@linkcode writeFileAtomic} writes. A stream is consumed (or cancelled on failure). */
export type AtomicFileData = Uint8Array | string | ReadableStream<Uint8Array>;

/** Options of {@linkcode writeFileAtomic}. */
export interface WriteFileAtomicOptions {
  /**
   * Directory of the temporary file (default: the target's directory). It must be on the target's
   * filesystem, for the rename to be atomic; it is created if missing.
   */
  tempDir?: string;
  /**
   * Prefix of the temporary file's name (default `.tmp-`); a random UUID follows. Stores delete
   * files with their prefix on start, which is what a crash leaves behind.
   */
  tempPrefix?: string;
}

/** The prefix of temporary files when {@linkcode WriteFileAtomicOptions.tempPrefix} is not given. */
export const DEFAULT_TEMP_PREFIX = ".tmp-";

/** Writes all of `bytes` to `file` (a single `write` may write less). */
export async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await file.write(bytes.subarray(at));
}

/**
 * Replaces `path` with `data` atomically and durably: temporary file, fsync, rename, fsync of the
 * directory. The target's directory is created if missing. On failure the temporary file is
 * removed, the target is left as it was, and a stream body is cancelled.
 *
 * @param path the file to write
 * @param data its new content
 * @param options see {@linkcode WriteFileAtomicOptions}
 */
export async function writeFileAtomic(
  path: string,
  data: AtomicFileData,
  options: WriteFileAtomicOptions = {},
): Promise<void> {
  const dir = dirname(path);
  const tempDir = options.tempDir ?? dir;
  const temp = join(tempDir, `${options.tempPrefix ?? DEFAULT_TEMP_PREFIX}${crypto.randomUUID()}`);
  try {
    await Deno.mkdir(tempDir, { recursive: true });
    const file = await Deno.open(temp, { write: true, createNew: true });
    try {
      if (typeof data === "string") {
        await writeAll(file, new TextEncoder().encode(data));
      } else if (data instanceof Uint8Array) {
        await writeAll(file, data);
      } else {
        for await (const chunk of data) await writeAll(file, chunk);
      }
      await file.syncData();
    } finally {
      file.close();
    }
    if (dir !== tempDir) await Deno.mkdir(dir, { recursive: true });
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    // An unread stream would hold its source (a request body) open; a read one is already closed.
    if (data instanceof ReadableStream && !data.locked) await data.cancel(error).catch(() => {});
    throw error;
  }
  await syncDir(dir);
}

/**
 * Deletes the temporary files a crash left in `dir` (names starting with `prefix`); stores call it
 * when they open. Files that vanish meanwhile are ignored.
 */
export async function removeTempFiles(dir: string, prefix = DEFAULT_TEMP_PREFIX): Promise<void> {
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.startsWith(prefix)) {
      await Deno.remove(join(dir, entry.name)).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
    }
  }
}

/** fsync a directory, so a rename or link inside it survives power loss. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await Deno.open(dir, { read: true });
  try {
    await handle.sync();
  } finally {
    handle.close();
  }
}
