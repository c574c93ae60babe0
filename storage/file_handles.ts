/**
 * A bounded pool of open read-only file handles, for readers that read many ranges of the same
 * few immutable files: a P2P seeder serving a blob piece by piece opens the blob's file once, not
 * once per piece (an open, an `fstat` and a close per 4 MiB piece were ~8% of an origin's CPU).
 *
 * Each read takes an idle handle of its file (or opens one), seeks only when the handle is not
 * already at the offset, reads the whole range and gives the handle back; reads of one file run
 * concurrently on separate handles, since `Deno.FsFile` has no positional read. Bounds:
 *
 * - at most `maxOpen` handles are open over all files; at the bound a read closes the least
 *   recently used idle handle to open its own, and when every handle is busy it reads through a
 *   handle of its own that is closed right after (the unpooled path, never a wait);
 * - a handle unused for `idleMs` is closed by a sweep every `idleMs / 2` (an interval of the
 *   `timers` seam, unref'd in production, running only while idle handles exist);
 * - {@linkcode FileHandlePool.forget} closes a file's handles (a deleted or evicted blob), busy
 *   ones once their read finishes, so later reads open the file again and see that it is gone.
 *
 * A file's size is taken once, when its handle opens: the pool is for files that do not change
 * while open (cached blobs are content-addressed and never rewritten). A handle keeps reading a
 * file deleted behind the pool's back until it is forgotten or idles out, as an open stream does.
 *
 * @example
 * ```ts
 * import { FileHandlePool } from "./file_handles.ts";
 * const pool = new FileHandlePool({ maxOpen: 16 });
 * const buf = new Uint8Array(4 << 20);
 * const piece = await pool.readAt("blob", () => Deno.open("/tmp/blob"), 0, 4 << 20, buf);
 * pool.close();
 * ```
 *
 * @module
 */

import { systemTimers, type Timers } from "../common/timers.ts";

/**
 * Checks a range read's arguments.
 * @throws {RangeError} if `offset` or `length` is not a non-negative integer, or `into` (when
 *   given) holds fewer than `length` bytes
 */
export function checkReadRange(offset: number, length: number, into?: Uint8Array): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new RangeError(`invalid range offset=${offset} length=${length}`);
  }
  if (into !== undefined && into.length < length) {
    throw new RangeError(`a ${into.length}-byte buffer cannot take ${length} bytes`);
  }
}

/**
 * Checks that a range lies within a file of `size` bytes.
 * @throws {RangeError} if it extends past the end
 */
export function checkWithin(offset: number, length: number, size: number): void {
  if (offset + length > size) {
    throw new RangeError(`range ${offset}+${length} extends past end (${size} bytes)`);
  }
}

/**
 * Reads `length` bytes from `file`, already positioned at `offset`, into the start of `into` when
 * given (the result is then a view of it), else into a new array.
 * @throws {RangeError} if the file ends first
 */
export async function readAtPosition(
  file: Deno.FsFile,
  offset: number,
  length: number,
  into?: Uint8Array,
): Promise<Uint8Array> {
  const out = into?.subarray(0, length) ?? new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const n = await file.read(out.subarray(got));
    if (n === null) throw new RangeError(`file shrank while reading ${offset}+${length}`);
    got += n;
  }
  return out;
}

/** Options of {@linkcode FileHandlePool}. */
export interface FileHandlePoolOptions {
  /** Handles open at most over all files. Default 64. */
  maxOpen?: number;
  /** A handle unused this long (ms) is closed. Default 10 s. */
  idleMs?: number;
  /** Clock and sweep interval. Default {@linkcode systemTimers}. */
  timers?: Timers;
}

interface Handle {
  key: string;
  file: Deno.FsFile;
  size: number;
  // The file position, or -1 when unknown (a read failed): such a handle is closed, not reused.
  position: number;
  lastUsed: number;
  pooled: boolean;
  // Forgotten or pool closed while busy: close when the read finishes.
  doomed: boolean;
}

/** Open read-only file handles shared by readers of ranges; see the module doc. */
export class FileHandlePool {
  readonly #maxOpen: number;
  readonly #idleMs: number;
  readonly #timers: Timers;
  // Idle handles per key, the most recently used last.
  readonly #idle = new Map<string, Handle[]>();
  readonly #busy = new Set<Handle>();
  // Opens in flight, so a forget() meanwhile still dooms the handle they produce.
  readonly #opening = new Set<{ key: string; doomed: boolean }>();
  // Pooled handles open or being opened.
  #open = 0;
  #sweeper?: number;
  #closed = false;

  /** Creates an empty pool. */
  constructor(options: FileHandlePoolOptions = {}) {
    this.#maxOpen = options.maxOpen ?? 64;
    this.#idleMs = options.idleMs ?? 10_000;
    this.#timers = options.timers ?? systemTimers;
    if (!Number.isSafeInteger(this.#maxOpen) || this.#maxOpen < 0) {
      throw new RangeError(`maxOpen must be a non-negative integer, got ${this.#maxOpen}`);
    }
  }

  /** Pooled handles open now (idle and busy), for the open-files gauge. */
  get openHandles(): number {
    return this.#open;
  }

  /**
   * Reads `length` bytes at `offset` of the file `key` names, into the start of `into` when given
   * (the result is then a view of it), else into a new array. `open` opens the file read-only when
   * no idle handle of `key` is at hand; its errors (such as `Deno.errors.NotFound`) propagate.
   *
   * @throws {RangeError} if the range is invalid or extends past the file's end, or `into` is too
   *   small
   */
  async readAt(
    key: string,
    open: () => Promise<Deno.FsFile>,
    offset: number,
    length: number,
    into?: Uint8Array,
  ): Promise<Uint8Array> {
    checkReadRange(offset, length, into);
    const handle = this.#take(key) ?? await this.#openHandle(key, open);
    try {
      checkWithin(offset, length, handle.size);
      // lseek(2) only sets the handle's offset: no I/O to move off the event loop.
      if (handle.position !== offset) handle.file.seekSync(offset, Deno.SeekMode.Start);
      handle.position = -1; // unknown until the read completes
      const out = await readAtPosition(handle.file, offset, length, into);
      handle.position = offset + length;
      return out;
    } finally {
      this.#release(handle);
    }
  }

  /**
   * Closes the handles of `key`: idle ones now, busy ones when their read finishes. Later reads
   * open the file again.
   */
  forget(key: string): void {
    for (const handle of this.#idle.get(key) ?? []) this.#closeHandle(handle);
    this.#idle.delete(key);
    for (const handle of this.#busy) if (handle.key === key) handle.doomed = true;
    for (const opening of this.#opening) if (opening.key === key) opening.doomed = true;
  }

  /** Closes every handle (busy ones after their read) and stops the sweep; reads still work unpooled. */
  close(): void {
    this.#closed = true;
    this.#stopSweep();
    for (const handles of this.#idle.values()) for (const h of handles) this.#closeHandle(h);
    this.#idle.clear();
    for (const handle of this.#busy) handle.doomed = true;
    for (const opening of this.#opening) opening.doomed = true;
  }

  #take(key: string): Handle | undefined {
    const handles = this.#idle.get(key);
    const handle = handles?.pop();
    if (handle === undefined) return undefined;
    if (handles!.length === 0) this.#idle.delete(key);
    this.#busy.add(handle);
    return handle;
  }

  async #openHandle(key: string, open: () => Promise<Deno.FsFile>): Promise<Handle> {
    let pooled = !this.#closed && this.#maxOpen > 0;
    if (pooled && this.#open >= this.#maxOpen) pooled = this.#evictOne();
    if (pooled) this.#open++;
    const opening = { key, doomed: false };
    this.#opening.add(opening);
    let file: Deno.FsFile | undefined;
    try {
      file = await open();
      // fstat of an open file touches no disk: no round trip through the blocking pool.
      const size = file.statSync().size;
      const handle: Handle = {
        key,
        file,
        size,
        position: 0,
        lastUsed: 0,
        pooled,
        doomed: opening.doomed,
      };
      this.#busy.add(handle);
      return handle;
    } catch (err) {
      file?.close();
      if (pooled) this.#open--;
      throw err;
    } finally {
      this.#opening.delete(opening);
    }
  }

  // Closes the least recently used idle handle; false when every handle is busy.
  #evictOne(): boolean {
    let oldest: Handle | undefined;
    for (const handles of this.#idle.values()) {
      if (oldest === undefined || handles[0].lastUsed < oldest.lastUsed) oldest = handles[0];
    }
    if (oldest === undefined) return false;
    this.#removeIdle(oldest);
    this.#closeHandle(oldest);
    return true;
  }

  #release(handle: Handle): void {
    this.#busy.delete(handle);
    if (!handle.pooled || handle.doomed || this.#closed || handle.position < 0) {
      this.#closeHandle(handle);
      return;
    }
    handle.lastUsed = this.#timers.now();
    let handles = this.#idle.get(handle.key);
    if (handles === undefined) this.#idle.set(handle.key, handles = []);
    handles.push(handle);
    this.#armSweep();
  }

  #removeIdle(handle: Handle): void {
    const handles = this.#idle.get(handle.key);
    if (handles === undefined) return;
    const i = handles.indexOf(handle);
    if (i >= 0) handles.splice(i, 1);
    if (handles.length === 0) this.#idle.delete(handle.key);
  }

  #closeHandle(handle: Handle): void {
    try {
      handle.file.close();
    } catch {
      // Already closed.
    }
    if (handle.pooled) {
      handle.pooled = false;
      this.#open--;
    }
  }

  #armSweep(): void {
    if (this.#sweeper !== undefined || this.#closed) return;
    this.#sweeper = this.#timers.setInterval(() => this.#sweep(), Math.max(1, this.#idleMs / 2));
  }

  #stopSweep(): void {
    if (this.#sweeper === undefined) return;
    this.#timers.clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  #sweep(): void {
    const now = this.#timers.now();
    for (const [key, handles] of this.#idle) {
      const keep = handles.filter((h) => now - h.lastUsed < this.#idleMs);
      for (const h of handles) if (!keep.includes(h)) this.#closeHandle(h);
      if (keep.length === 0) this.#idle.delete(key);
      else this.#idle.set(key, keep);
    }
    if (this.#idle.size === 0) this.#stopSweep();
  }
}
