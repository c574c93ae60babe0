/**
 * Filesystem storage backend: objects are files under a root directory, laid
 * out by a name-path strategy. It is the embedded default backend and also the
 * storage behind the testfs server.
 *
 * Writes go to a temporary file that is flushed and renamed into place, so a
 * reader (or a restart after a crash) sees either the old content or the new,
 * never a partial file. Every path is checked component by component before it
 * touches the disk, so no name can reach outside the root.
 *
 * ```ts
 * import { FileBackend } from "./fs.ts";
 * const backend = new FileBackend({ root: "/var/cache/kraken/backend" });
 * await backend.upload("ns", "abc123", new TextEncoder().encode("hello"));
 * ```
 *
 * @module
 */

import { join, resolve } from "node:path";
import { writeFileAtomic } from "../../common/atomic_file.ts";
import { sliceStream } from "../../common/bytes.ts";
import {
  type Backend,
  type BlobInfo,
  discardUploadBody,
  type DownloadOptions,
  isUploadSource,
  type ListOptions,
  type ListResult,
  paginate,
  resolveRange,
  type UploadBody,
} from "./backend.ts";
import { createNamePath, type NamePath, type NamePathId } from "./namepath.ts";

/** Directory under the root that holds in-progress writes; no object may use it. */
export const TEMP_DIR = ".kraken-tmp";

/** Thrown when a name or path would leave the storage root or is malformed. */
export class InvalidPathError extends Error {
  /** @param message what is wrong with the path */
  constructor(message: string) {
    super(message);
    this.name = "InvalidPathError";
  }
}

/**
 * Checks that `path` is a safe relative path: `/`-separated, with no empty,
 * `.` or `..` component, no NUL byte, not absolute, and not inside
 * {@linkcode TEMP_DIR}.
 *
 * @param path candidate path relative to a storage root
 * @param allowEmpty whether `""` (the root itself) is acceptable
 * @returns the path, unchanged
 * @throws {InvalidPathError} when any rule is broken
 */
export function checkRelativePath(path: string, allowEmpty = false): string {
  if (path === "") {
    if (allowEmpty) return path;
    throw new InvalidPathError("empty path");
  }
  if (path.includes("\0")) throw new InvalidPathError("path contains a NUL byte");
  if (path.startsWith("/")) throw new InvalidPathError(`absolute path: ${path}`);
  const parts = path.split("/");
  for (const part of parts) {
    if (part === "" || part === "." || part === "..") {
      throw new InvalidPathError(`invalid path component ${JSON.stringify(part)} in ${path}`);
    }
  }
  if (parts[0] === TEMP_DIR) throw new InvalidPathError(`reserved path: ${path}`);
  return path;
}

/** Options for {@linkcode FileBackend}. */
export interface FileBackendOptions {
  /** Directory holding the objects; created on first write. */
  root: string;
  /** Name-path strategy (default `identity`). */
  namePath?: NamePathId;
}

function isMissing(err: unknown): boolean {
  return err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory;
}

/** A {@linkcode Backend} over a local directory. */
export class FileBackend implements Backend {
  /** Always `file`. */
  readonly type = "file";
  /** The absolute root directory. */
  readonly bucket: string;
  readonly #namePath: NamePath;

  /** @param options see {@linkcode FileBackendOptions} */
  constructor(options: FileBackendOptions) {
    if (!options.root) throw new TypeError("file backend: root is required");
    this.bucket = resolve(options.root);
    this.#namePath = createNamePath(options.namePath ?? "identity");
  }

  /** Maps a name to its absolute file path, refusing anything outside the root. */
  #file(name: string): string {
    return join(this.bucket, checkRelativePath(this.#namePath.blobPath(name)));
  }

  /** Looks a file up; directories count as missing. */
  async stat(_namespace: string, name: string): Promise<BlobInfo | null> {
    try {
      const info = await Deno.stat(this.#file(name));
      return info.isFile ? { size: info.size } : null;
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  /** Writes the object atomically: temporary file, flush, rename. */
  async upload(_namespace: string, name: string, body: UploadBody): Promise<void> {
    let target: string;
    try {
      target = this.#file(name);
    } catch (err) {
      await discardUploadBody(body, err);
      throw err;
    }
    const data = isUploadSource(body) ? await body.open() : body;
    await writeFileAtomic(target, data, { tempDir: join(this.bucket, TEMP_DIR), tempPrefix: "" });
  }

  /**
   * Opens the file, or a range of it, for streaming; the stream closes the file when done or
   * cancelled.
   */
  async download(
    _namespace: string,
    name: string,
    options: DownloadOptions = {},
  ): Promise<ReadableStream<Uint8Array> | null> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(this.#file(name), { read: true });
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
    try {
      const info = await file.stat();
      if (!info.isFile) {
        file.close();
        return null;
      }
      if (options.offset === undefined && options.length === undefined) return file.readable;
      const [start, end] = resolveRange(options, info.size);
      await file.seek(start, Deno.SeekMode.Start);
      return sliceStream(file.readable, 0, end - start);
    } catch (err) {
      file.close();
      throw err;
    }
  }

  /**
   * Lists the names stored under `prefix`, a directory path in the name
   * layout (for example a repository under `docker_tag`). Walks recursively;
   * a missing directory lists as empty.
   */
  async list(prefix: string, options: ListOptions = {}): Promise<ListResult> {
    const rel = [this.#namePath.basePath, prefix.replace(/^\/+|\/+$/g, "")]
      .filter((p) => p !== "").join("/");
    const start = checkRelativePath(rel, true);
    const names: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries: Deno.DirEntry[];
      try {
        entries = await Array.fromAsync(Deno.readDir(join(this.bucket, dir)));
      } catch (err) {
        if (isMissing(err)) return;
        throw err;
      }
      for (const entry of entries) {
        const path = dir === "" ? entry.name : `${dir}/${entry.name}`;
        if (path === TEMP_DIR) continue;
        if (entry.isDirectory) {
          await walk(path);
        } else if (entry.isFile) {
          const name = this.#namePath.nameFromBlobPath(path);
          if (name !== null) names.push(name);
        }
      }
    };
    await walk(start);
    return paginate(names.sort(), options);
  }

  /** Ready when the root is a directory or can still be created (it is, on first write). */
  async ready(): Promise<void> {
    try {
      if (!(await Deno.stat(this.bucket)).isDirectory) {
        throw new Error(`file backend: ${this.bucket} is not a directory`);
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
}
