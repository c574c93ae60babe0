/**
 * A content-addressed blob store on local disk, shared by the origin, agent and proxy roles.
 *
 * Blobs enter the cache only through a verified, atomic step: bytes are staged under another
 * name, flushed with fsync, hashed, and only when the SHA-256 matches the claimed digest are they
 * hard-linked into the cache (the link fails if the name exists, so two concurrent writers of the
 * same digest cannot clobber each other; the winner's complete file is what everyone sees).
 * A reader therefore never sees a half-written blob, even after a crash.
 *
 * Layout under `root`:
 *
 * | Path | Content |
 * |---|---|
 * | `tmp/` | scratch files for atomic writes; emptied by {@linkcode BlobStore.open} |
 * | `uploads/<uid>` | staging file of an upload session (survives restarts) |
 * | `cache/<hex[0:2]>/<hex>` | a verified blob |
 * | `cache/<hex[0:2]>/<hex>.meta/<key>` | per-blob metadata, e.g. `metainfo`, `persist` |
 *
 * Upload sessions mirror the origin's start / PATCH / commit protocol (kraken-wire.md §1.4):
 * {@linkcode BlobStore.createUpload}, {@linkcode BlobStore.writeChunk} (any order, any offset),
 * {@linkcode BlobStore.commitUpload}. Commit first renames the staging file into `tmp/`, so a
 * crash mid-commit cannot leave an upload name that shares its inode with a cached blob (a later
 * chunk write would otherwise corrupt the cache). After a commit attempt that reached
 * verification the session is gone, whether it succeeded, hit {@linkcode DigestMismatchError}
 * (the wrong bytes are deleted: the client has to start over anyway) or
 * {@linkcode BlobExistsError}. A writer that hashed the bytes as it staged them (the P2P download,
 * piece by piece in order) passes that digest to the commit, which then flushes and links without
 * reading the file again; a mismatch is refused all the same.
 *
 * @example
 * ```ts
 * import { BlobStore } from "./blob_store.ts";
 * import { digestOfBytes } from "./digest.ts";
 *
 * const store = await BlobStore.open({ root: "/var/cache/kraken" });
 * const data = new TextEncoder().encode("hello");
 * const uid = await store.createUpload();
 * await store.writeChunk(uid, 0, data.length, data);
 * await store.commitUpload(uid, await digestOfBytes(data));
 * ```
 *
 * @module
 */

import { syncDir, writeAll, writeFileAtomic } from "../common/atomic_file.ts";
import { closeQuietly } from "../common/close.ts";
import { Digest, DigestHasher } from "./digest.ts";
import { FileBody } from "./file_body.ts";
import { checkReadRange, checkWithin, readAtPosition } from "./file_handles.ts";
import { resolveInside } from "./paths.ts";
import type { UploadSource } from "./backend/backend.ts";

/** Thrown when a blob is not in the cache. */
export class BlobNotFoundError extends Error {
  /** @param digest the missing blob */
  constructor(readonly digest: Digest) {
    super(`blob ${digest} not found`);
    this.name = "BlobNotFoundError";
  }
}

/** Thrown when a blob being committed is already in the cache (upstream answers 409). */
export class BlobExistsError extends Error {
  /** @param digest the blob that already exists */
  constructor(readonly digest: Digest) {
    super(`blob ${digest} already exists`);
    this.name = "BlobExistsError";
  }
}

/** Thrown when an upload uid is unknown, malformed, or is being committed/aborted. */
export class UploadNotFoundError extends Error {
  /** @param uid the upload id as given */
  constructor(readonly uid: string, detail = "not found") {
    super(`upload ${JSON.stringify(uid.slice(0, 64))} ${detail}`);
    this.name = "UploadNotFoundError";
  }
}

/** Thrown when {@linkcode BlobStore.createUpload} would open more sessions than allowed. */
export class UploadLimitError extends Error {
  /** @param limit the most sessions that may be open at once */
  constructor(readonly limit: number) {
    super(`${limit} upload sessions are open already`);
    this.name = "UploadLimitError";
  }
}

/** Thrown when content does not hash to the digest it was stored under. */
export class DigestMismatchError extends Error {
  /**
   * @param expected the digest the caller claimed
   * @param actual the digest of the bytes received
   */
  constructor(readonly expected: Digest, readonly actual: Digest) {
    super(`digest mismatch: expected ${expected}, got ${actual}`);
    this.name = "DigestMismatchError";
  }
}

/** Thrown for an invalid chunk range (negative, reversed, non-integer); upstream answers 400. */
export class ChunkRangeError extends RangeError {
  /** @param message what was wrong with the range */
  constructor(message: string) {
    super(message);
    this.name = "ChunkRangeError";
  }
}

/** Thrown when a chunk body's length differs from its range (a client error: 400). */
export class ChunkLengthError extends Error {
  /** @param message the expected and actual lengths */
  constructor(message: string) {
    super(message);
    this.name = "ChunkLengthError";
  }
}

/** Options for {@linkcode BlobStore.open}. */
export interface BlobStoreOptions {
  /** Directory that holds everything; created if missing. */
  readonly root: string;
}

/** Options of {@linkcode BlobStore.createUpload}. */
export interface CreateUploadOptions {
  /** Refuse with {@linkcode UploadLimitError} when this many sessions are open (default: no cap). */
  readonly maxOpen?: number;
}

/** Size information of a cached blob or an upload. */
export interface BlobStat {
  /** Size in bytes. */
  readonly size: number;
}

/** An open blob: its size and its bytes (or the range asked for), which own the file handle. */
export interface OpenBlob {
  /** Size in bytes (the whole blob's). */
  readonly size: number;
  /** The bytes, for a file response (`http/file_response.ts`); sending it releases the file. */
  readonly body: FileBody;
  /** The same bytes as a stream (`body.stream`); read it to the end or cancel it. */
  readonly stream: ReadableStream<Uint8Array>;
}

/** An upload's file open for writes, from {@linkcode BlobStore.openUploadWriter}. */
export interface UploadWriter {
  /**
   * Writes `bytes` at `offset`. One write at a time: the handle's position is shared.
   * @throws {UploadNotFoundError} the upload is being committed or aborted, or has ended, or the
   *   writer is closed
   * @throws {ChunkRangeError} `offset` is not a non-negative integer
   */
  write(offset: number, bytes: Uint8Array): Promise<void>;
  /**
   * Flushes the written bytes to disk (fdatasync), so a large download's commit does not pay for
   * the whole file's writeback at once.
   * @throws {UploadNotFoundError} the writer is closed
   */
  sync(): Promise<void>;
  /** Closes the file (idempotent). */
  close(): void;
}

/** A chunk or blob body. */
export type BlobBody = ReadableStream<Uint8Array> | Uint8Array;

const UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const META_KEY = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const SHARD = /^[0-9a-f]{2}$/;
const READ_BUFFER = 1 << 20;

/**
 * Per-upload coordination inside this process: chunk writes share, commit and abort are
 * exclusive and wait for in-flight writes to drain.
 */
interface UploadLock {
  writers: number;
  exclusive: number;
  tail: Promise<void>;
  drained: (() => void)[];
}

/** The on-disk content-addressed store. Create with {@linkcode BlobStore.open}. */
export class BlobStore {
  /** Absolute root directory. */
  readonly root: string;
  readonly #tmp: string;
  readonly #uploads: string;
  readonly #cache: string;
  readonly #locks = new Map<string, UploadLock>();
  /** Uids whose staging file exists (found at open, or created since). */
  readonly #open = new Set<string>();
  #blobs = 0;
  #bytes = 0;
  #deleted = 0;

  private constructor(root: string) {
    this.root = resolveInside(root);
    this.#tmp = resolveInside(this.root, "tmp");
    this.#uploads = resolveInside(this.root, "uploads");
    this.#cache = resolveInside(this.root, "cache");
  }

  /**
   * Opens (creating if needed) a store and deletes temp files left by a crash. Upload sessions
   * are kept: see {@linkcode BlobStore.pruneUploads}.
   */
  static async open(options: BlobStoreOptions): Promise<BlobStore> {
    const store = new BlobStore(options.root);
    await Deno.remove(store.#tmp, { recursive: true }).catch(ignoreNotFound);
    for (const dir of [store.#tmp, store.#uploads, store.#cache]) {
      await Deno.mkdir(dir, { recursive: true });
    }
    for await (const entry of Deno.readDir(store.#uploads)) {
      if (UID.test(entry.name)) store.#open.add(entry.name);
    }
    for (const digest of await store.list()) {
      const info = await Deno.stat(store.#blobPath(digest)).catch(() => null);
      if (!info) continue;
      store.#blobs++;
      store.#bytes += info.size;
    }
    return store;
  }

  /**
   * What the cache holds: blobs and their bytes (counted at open, then kept up to date by commits
   * and deletes), and how many blobs were deleted since open.
   */
  get usage(): { blobs: number; bytes: number; deleted: number } {
    return { blobs: this.#blobs, bytes: this.#bytes, deleted: this.#deleted };
  }

  // ---- upload sessions ------------------------------------------------------------------

  /** Number of upload sessions open (their staging files exist), restarts included. */
  get openUploads(): number {
    return this.#open.size;
  }

  /**
   * Starts an upload session and returns its uid (a lowercase UUID, used verbatim on the wire).
   * @throws {UploadLimitError} when `options.maxOpen` sessions are open already
   */
  async createUpload(options: CreateUploadOptions = {}): Promise<string> {
    if (options.maxOpen !== undefined && this.#open.size >= options.maxOpen) {
      throw new UploadLimitError(options.maxOpen);
    }
    const uid = crypto.randomUUID();
    // Counted before the first await, so concurrent starts cannot pass the cap together.
    this.#open.add(uid);
    try {
      const file = await Deno.open(this.#uploadPath(uid), { write: true, createNew: true });
      file.close();
    } catch (error) {
      this.#open.delete(uid);
      throw error;
    }
    return uid;
  }

  /**
   * Writes exactly `end - start` bytes of `body` at offset `start` (end exclusive, as the
   * origin's `Content-Range: start-end`). Chunks may arrive in any order; gaps stay zero until
   * written. Concurrent writes to one upload are allowed.
   * @throws {UploadNotFoundError} unknown uid, or a commit/abort is in progress
   * @throws {ChunkRangeError} invalid range
   * @throws {ChunkLengthError} body shorter or longer than the range (a short stream's bytes
   *   may already be written)
   */
  async writeChunk(uid: string, start: number, end: number, body: BlobBody): Promise<void> {
    let path: string;
    try {
      path = this.#uploadPath(uid);
    } catch (err) {
      await cancelBody(body);
      throw err;
    }
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
      await cancelBody(body);
      throw new ChunkRangeError(`invalid chunk range ${start}-${end}`);
    }
    const want = end - start;
    if (body instanceof Uint8Array && body.length !== want) {
      throw new ChunkLengthError(
        `chunk ${start}-${end} needs ${want} bytes, body has ${body.length}`,
      );
    }
    await this.#shared(uid, () => cancelBody(body), async () => {
      let file: Deno.FsFile;
      try {
        file = await Deno.open(path, { write: true });
      } catch (err) {
        await cancelBody(body);
        if (err instanceof Deno.errors.NotFound) throw new UploadNotFoundError(uid);
        throw err;
      }
      try {
        await file.seek(start, Deno.SeekMode.Start);
        if (body instanceof Uint8Array) {
          await writeAll(file, body);
        } else {
          let got = 0;
          for await (const chunk of body) {
            if (got + chunk.length > want) {
              throw new ChunkLengthError(`chunk ${start}-${end} body exceeds ${want} bytes`);
            }
            await writeAll(file, chunk);
            got += chunk.length;
          }
          if (got !== want) {
            throw new ChunkLengthError(
              `chunk ${start}-${end} needs ${want} bytes, body had ${got}`,
            );
          }
        }
      } finally {
        file.close();
      }
    });
  }

  /**
   * Cuts an upload's staging file back to `size` bytes, so an append that was rejected halfway
   * (the proxy's chunks are appends) leaves the upload as it was before it.
   * @throws {UploadNotFoundError} unknown uid, or a commit/abort is in progress
   */
  async truncateUpload(uid: string, size: number): Promise<void> {
    const path = this.#uploadPath(uid);
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`invalid size ${size}`);
    await this.#shared(uid, () => Promise.resolve(), async () => {
      try {
        await Deno.truncate(path, size);
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) throw new UploadNotFoundError(uid);
        throw err;
      }
    });
  }

  /**
   * Current size of an upload's staging file (highest byte written + 1).
   * @throws {UploadNotFoundError} unknown uid
   */
  async statUpload(uid: string): Promise<BlobStat> {
    try {
      return { size: (await Deno.stat(this.#uploadPath(uid))).size };
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) throw new UploadNotFoundError(uid);
      throw err;
    }
  }

  /**
   * Reads `length` bytes at `offset` of an upload in progress (the P2P layer serves pieces it
   * already has while still downloading), into the start of `into` when given (it must hold
   * `length` bytes; the result is then a view of it) or else a new array.
   * @throws {UploadNotFoundError} unknown uid
   * @throws {RangeError} range beyond the staged bytes
   */
  async readUploadRange(
    uid: string,
    offset: number,
    length: number,
    into?: Uint8Array,
  ): Promise<Uint8Array> {
    const path = this.#uploadPath(uid);
    try {
      return await readRangeOf(path, offset, length, into);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) throw new UploadNotFoundError(uid);
      throw err;
    }
  }

  /**
   * An upload's file kept open for writes at chosen offsets, so a writer of many chunks (a
   * download's pieces) opens it once instead of once a chunk. Its writes are refused, as
   * {@linkcode writeChunk}'s are, once a commit or abort holds the upload or has ended it.
   * @throws {UploadNotFoundError} unknown uid
   */
  async openUploadWriter(uid: string): Promise<UploadWriter> {
    const path = this.#uploadPath(uid);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { write: true });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) throw new UploadNotFoundError(uid);
      throw err;
    }
    // Flushes go through a handle of their own: the runtime runs one operation at a time per
    // handle, and a write must not wait for a flush.
    let syncFile: Promise<Deno.FsFile> | undefined;
    let closed = false;
    const refuseClosed = () => {
      if (closed) throw new UploadNotFoundError(uid, "its writer is closed");
    };
    return {
      write: (offset, bytes) =>
        this.#shared(uid, () => Promise.resolve(), async () => {
          refuseClosed();
          if (!this.#open.has(uid)) throw new UploadNotFoundError(uid);
          if (!Number.isSafeInteger(offset) || offset < 0) {
            throw new ChunkRangeError(`invalid write offset ${offset}`);
          }
          // The offset is the handle's: one write at a time (see UploadWriter).
          file.seekSync(offset, Deno.SeekMode.Start);
          await writeAll(file, bytes);
        }),
      sync: async () => {
        refuseClosed();
        if (syncFile === undefined) {
          const opening = Deno.open(path, { read: true });
          syncFile = opening;
          // A failed open (the commit moved the file) is not kept: the next flush tries again.
          opening.catch(() => {
            if (syncFile === opening) syncFile = undefined;
          });
        }
        await (await syncFile).syncData();
      },
      close: () => {
        closed = true;
        closeQuietly(file);
        syncFile?.then(closeQuietly, () => {});
      },
    };
  }

  /**
   * Verifies the staged bytes against `digest` and moves them into the cache. The session ends
   * whatever the outcome, except on I/O errors (then it can be retried).
   *
   * `options.hashed` is the SHA-256 the caller computed over exactly the bytes it staged, in
   * order, as it wrote them; the store then only flushes the file instead of reading it back.
   * @throws {UploadNotFoundError} unknown uid
   * @throws {BlobExistsError} the digest is already cached (the staged bytes are discarded)
   * @throws {DigestMismatchError} the bytes hash differently (they are deleted; nothing enters
   *   the cache)
   */
  async commitUpload(
    uid: string,
    digest: Digest,
    options: { hashed?: Digest } = {},
  ): Promise<void> {
    const path = this.#uploadPath(uid);
    return await this.#exclusive(uid, async () => {
      if (await this.has(digest)) {
        await Deno.remove(path).catch((err) => {
          if (err instanceof Deno.errors.NotFound) throw new UploadNotFoundError(uid);
          throw err;
        });
        this.#open.delete(uid);
        throw new BlobExistsError(digest);
      }
      const claimed = resolveInside(this.#tmp, `commit-${uid}`);
      try {
        await Deno.rename(path, claimed);
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) throw new UploadNotFoundError(uid);
        throw err;
      }
      this.#open.delete(uid);
      let actual: Digest;
      try {
        actual = options.hashed === undefined
          ? await hashAndSync(claimed)
          : await syncFile(claimed).then(() => options.hashed!);
      } catch (err) {
        // Give the session back so the client may retry after a transient I/O failure.
        await Deno.rename(claimed, path).then(() => this.#open.add(uid), () => {});
        throw err;
      }
      if (!actual.equals(digest)) {
        await Deno.remove(claimed);
        throw new DigestMismatchError(digest, actual);
      }
      if (!await this.#install(claimed, digest)) throw new BlobExistsError(digest);
    });
  }

  /**
   * Discards an upload session.
   * @throws {UploadNotFoundError} unknown uid
   */
  async abortUpload(uid: string): Promise<void> {
    const path = this.#uploadPath(uid);
    return await this.#exclusive(uid, async () => {
      try {
        await Deno.remove(path);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
        this.#open.delete(uid);
        throw new UploadNotFoundError(uid);
      }
      this.#open.delete(uid);
    });
  }

  /**
   * Deletes upload sessions not written to for `maxAgeMs` (abandoned pushes would otherwise
   * fill the disk). Sessions in use by this process are skipped. Returns how many were removed.
   */
  async pruneUploads(maxAgeMs: number): Promise<number> {
    const cutoff = Date.now() - maxAgeMs;
    let removed = 0;
    for await (const entry of Deno.readDir(this.#uploads)) {
      if (!UID.test(entry.name) || this.#locks.has(entry.name)) continue;
      const path = resolveInside(this.#uploads, entry.name);
      const info = await Deno.stat(path).catch(() => null);
      if (info?.mtime && info.mtime.getTime() < cutoff) {
        await Deno.remove(path).then(() => removed++, ignoreNotFound);
        this.#open.delete(entry.name);
      }
    }
    return removed;
  }

  // ---- direct writes --------------------------------------------------------------------

  /**
   * Stores a whole blob from a stream (backend fetches, P2P downloads): staged in `tmp/`,
   * verified, then linked into the cache. A blob already present makes this a no-op (the body
   * is cancelled) and returns false; otherwise returns true.
   * @throws {DigestMismatchError} the bytes hash differently (nothing enters the cache)
   */
  async putBlob(digest: Digest, body: BlobBody): Promise<boolean> {
    if (await this.has(digest)) {
      await cancelBody(body);
      return false;
    }
    const tmp = await Deno.makeTempFile({ dir: this.#tmp, prefix: "put-" });
    try {
      const hasher = new DigestHasher();
      const file = await Deno.open(tmp, { write: true });
      try {
        const chunks = body instanceof Uint8Array ? [body] : body;
        for await (const chunk of chunks) {
          hasher.update(chunk);
          await writeAll(file, chunk);
        }
        await file.sync();
      } finally {
        file.close();
      }
      const actual = hasher.digest();
      if (!actual.equals(digest)) throw new DigestMismatchError(digest, actual);
      return await this.#install(tmp, digest);
    } finally {
      await Deno.remove(tmp).catch(ignoreNotFound);
    }
  }

  // ---- cache reads ----------------------------------------------------------------------

  /** True when the blob is cached. */
  async has(digest: Digest): Promise<boolean> {
    return (await this.stat(digest)) !== null;
  }

  /** The cached blob's size, or null if absent. */
  async stat(digest: Digest): Promise<BlobStat | null> {
    try {
      const info = await Deno.stat(this.#blobPath(digest));
      return info.isFile ? { size: info.size } : null;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return null;
      throw err;
    }
  }

  /**
   * Opens a cached blob for streaming, or with `range` only the bytes `[offset, offset + length)`
   * (a ranged GET). The size is the whole blob's, from the open handle, so it matches the stream
   * even if the blob is deleted meanwhile.
   * @throws {BlobNotFoundError} if absent
   */
  async open(digest: Digest, range?: { offset: number; length: number }): Promise<OpenBlob> {
    const file = await this.openFile(digest);
    try {
      // fstat and lseek of an open file touch no disk, so they run here rather than as a round
      // trip through the runtime's blocking pool (~70 µs of CPU each on the project's VM).
      const size = file.statSync().size;
      if (range) file.seekSync(range.offset, Deno.SeekMode.Start);
      const body = new FileBody(file, range ? range.length : size);
      return {
        size,
        body,
        get stream() {
          return body.stream;
        },
      };
    } catch (err) {
      file.close();
      throw err;
    }
  }

  /**
   * Opens a cached blob's file read-only for the caller to read and close (`open`, and the pool of
   * handles serving P2P pieces, `file_handles.ts`). The file never changes while cached; a delete
   * unlinks it, and an open handle keeps reading the old bytes.
   * @throws {BlobNotFoundError} if absent
   */
  async openFile(digest: Digest): Promise<Deno.FsFile> {
    try {
      return await Deno.open(this.#blobPath(digest), { read: true });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) throw new BlobNotFoundError(digest);
      throw err;
    }
  }

  /**
   * A cached blob as an upload source that backends re-read from any offset (a resumed or retried
   * write-back sends only what is missing). Each `open` opens the file again; the size is taken now.
   * @throws {BlobNotFoundError} if absent
   */
  async source(digest: Digest): Promise<UploadSource> {
    const path = this.#blobPath(digest);
    let size: number;
    try {
      size = (await Deno.stat(path)).size;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) throw new BlobNotFoundError(digest);
      throw err;
    }
    return {
      size,
      open: async (start = 0, end = size) => {
        if (
          !Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start ||
          end > size
        ) {
          throw new RangeError(`invalid range ${start}-${end} of a ${size}-byte blob`);
        }
        return (await this.open(digest, { offset: start, length: end - start })).stream;
      },
    };
  }

  /**
   * Reads `length` bytes at `offset` (a P2P piece), into the start of `into` when given (it must
   * hold `length` bytes; the result is then a view of it) or else a new array: a P2P sender
   * reuses one buffer per connection instead of allocating each piece.
   * @throws {BlobNotFoundError} if absent
   * @throws {RangeError} if the range is invalid or extends past the end, or `into` is too small
   */
  async readRange(
    digest: Digest,
    offset: number,
    length: number,
    into?: Uint8Array,
  ): Promise<Uint8Array> {
    try {
      return await readRangeOf(this.#blobPath(digest), offset, length, into);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) throw new BlobNotFoundError(digest);
      throw err;
    }
  }

  /**
   * Removes a blob and its metadata. Open streams keep reading the old bytes.
   * Returns false if it was not cached.
   */
  async delete(digest: Digest): Promise<boolean> {
    const path = this.#blobPath(digest);
    try {
      const { size } = await Deno.stat(path);
      await Deno.remove(path);
      this.#blobs--;
      this.#bytes -= size;
      this.#deleted++;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return false;
      throw err;
    }
    await Deno.remove(this.#metaDir(digest), { recursive: true }).catch(ignoreNotFound);
    return true;
  }

  /** Every cached blob, in no particular order. */
  async list(): Promise<Digest[]> {
    const out: Digest[] = [];
    for await (const shard of Deno.readDir(this.#cache)) {
      if (!shard.isDirectory || !SHARD.test(shard.name)) continue;
      for await (const entry of Deno.readDir(resolveInside(this.#cache, shard.name))) {
        if (entry.isFile && HEX64.test(entry.name) && entry.name.startsWith(shard.name)) {
          out.push(Digest.fromHex(entry.name));
        }
      }
    }
    return out;
  }

  // ---- metadata -------------------------------------------------------------------------

  /** A metadata value of a cached blob, or null if unset (or the blob is absent). */
  async getMetadata(digest: Digest, key: string): Promise<Uint8Array | null> {
    try {
      return await Deno.readFile(this.#metaPath(digest, key));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return null;
      throw err;
    }
  }

  /**
   * Atomically sets a metadata value (temp file, fsync, rename). Keys are 1–64 characters of
   * `[a-z0-9_-]`, starting with a letter or digit.
   * @throws {BlobNotFoundError} if the blob is not cached
   * @throws {TypeError} for an invalid key
   */
  async setMetadata(digest: Digest, key: string, value: Uint8Array): Promise<void> {
    const target = this.#metaPath(digest, key);
    if (!await this.has(digest)) throw new BlobNotFoundError(digest);
    const dir = this.#metaDir(digest);
    await writeFileAtomic(target, value, { tempDir: this.#tmp, tempPrefix: "meta-" });
    // A concurrent delete may have removed the blob between the check and the rename.
    if (!await this.has(digest)) {
      await Deno.remove(dir, { recursive: true }).catch(ignoreNotFound);
      throw new BlobNotFoundError(digest);
    }
  }

  /** Removes a metadata value; returns false if it was not set. */
  async deleteMetadata(digest: Digest, key: string): Promise<boolean> {
    try {
      await Deno.remove(this.#metaPath(digest, key));
      return true;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return false;
      throw err;
    }
  }

  // ---- internals ------------------------------------------------------------------------

  #uploadPath(uid: string): string {
    if (typeof uid !== "string" || !UID.test(uid)) {
      throw new UploadNotFoundError(String(uid), "is not a valid upload id");
    }
    return resolveInside(this.#uploads, uid);
  }

  #blobPath(digest: Digest): string {
    return resolveInside(this.#cache, digest.hex.slice(0, 2), digest.hex);
  }

  #metaDir(digest: Digest): string {
    return resolveInside(this.#cache, digest.hex.slice(0, 2), `${digest.hex}.meta`);
  }

  #metaPath(digest: Digest, key: string): string {
    if (typeof key !== "string" || !META_KEY.test(key)) {
      throw new TypeError(`invalid metadata key ${JSON.stringify(String(key).slice(0, 80))}`);
    }
    return resolveInside(this.#metaDir(digest), key);
  }

  /**
   * Links a verified, fsynced temp file into the cache. Linking (unlike rename) fails when the
   * target exists, which makes "first writer wins" atomic across concurrent commits.
   * Returns false if the blob was already there. Removes the temp file either way.
   */
  async #install(tmp: string, digest: Digest): Promise<boolean> {
    const dir = resolveInside(this.#cache, digest.hex.slice(0, 2));
    await Deno.mkdir(dir, { recursive: true });
    try {
      await Deno.link(tmp, this.#blobPath(digest));
      const { size } = await Deno.stat(tmp);
      this.#blobs++;
      this.#bytes += size;
    } catch (err) {
      if (err instanceof Deno.errors.AlreadyExists) return false;
      throw err;
    } finally {
      await Deno.remove(tmp).catch(ignoreNotFound);
    }
    await syncDir(dir);
    return true;
  }

  #lock(uid: string): UploadLock {
    let lock = this.#locks.get(uid);
    if (!lock) {
      lock = { writers: 0, exclusive: 0, tail: Promise.resolve(), drained: [] };
      this.#locks.set(uid, lock);
    }
    return lock;
  }

  #unlockIfIdle(uid: string, lock: UploadLock): void {
    if (lock.writers === 0 && lock.exclusive === 0 && this.#locks.get(uid) === lock) {
      this.#locks.delete(uid);
    }
  }

  /**
   * Runs a write of an upload alongside other writes; refused (after `refused`) while a commit or
   * abort holds the upload.
   */
  async #shared(uid: string, refused: () => Promise<void>, fn: () => Promise<void>) {
    const lock = this.#lock(uid);
    if (lock.exclusive > 0) {
      this.#unlockIfIdle(uid, lock);
      await refused();
      throw new UploadNotFoundError(uid, "is being committed or aborted");
    }
    lock.writers++;
    try {
      await fn();
    } finally {
      lock.writers--;
      if (lock.writers === 0) { for (const wake of lock.drained.splice(0)) wake(); }
      this.#unlockIfIdle(uid, lock);
    }
  }

  async #exclusive<T>(uid: string, fn: () => Promise<T>): Promise<T> {
    const lock = this.#lock(uid);
    lock.exclusive++;
    const previous = lock.tail;
    let release!: () => void;
    lock.tail = new Promise((resolve) => (release = resolve));
    try {
      await previous;
      while (lock.writers > 0) await new Promise<void>((wake) => lock.drained.push(wake));
      return await fn();
    } finally {
      lock.exclusive--;
      release();
      this.#unlockIfIdle(uid, lock);
    }
  }
}

/** Hashes a file and flushes it to disk, so what gets linked into the cache is durable. */
async function hashAndSync(path: string): Promise<Digest> {
  const file = await Deno.open(path, { read: true });
  try {
    const hasher = new DigestHasher();
    const buf = new Uint8Array(READ_BUFFER);
    for (;;) {
      const n = await file.read(buf);
      if (n === null) break;
      hasher.update(buf.subarray(0, n));
    }
    await file.sync();
    return hasher.digest();
  } finally {
    file.close();
  }
}

async function syncFile(path: string): Promise<void> {
  const file = await Deno.open(path, { read: true });
  try {
    await file.sync();
  } finally {
    file.close();
  }
}

async function readRangeOf(
  path: string,
  offset: number,
  length: number,
  into?: Uint8Array,
): Promise<Uint8Array> {
  checkReadRange(offset, length, into);
  const file = await Deno.open(path, { read: true });
  try {
    // fstat and lseek of an open file touch no disk (see `open`).
    checkWithin(offset, length, file.statSync().size);
    file.seekSync(offset, Deno.SeekMode.Start);
    return await readAtPosition(file, offset, length, into);
  } finally {
    file.close();
  }
}

async function cancelBody(body: BlobBody): Promise<void> {
  if (!(body instanceof Uint8Array)) await body.cancel().catch(() => {});
}

function ignoreNotFound(err: unknown): void {
  if (!(err instanceof Deno.errors.NotFound)) throw err;
}
