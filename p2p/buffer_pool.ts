/**
 * A pool of piece-sized byte buffers shared by a scheduler's connections and torrents.
 *
 * Every peer connection needs piece buffers: a ring to receive payloads into, one to read pieces
 * it serves into, and a download's hash catch-up reads pieces back into one more. Allocated per
 * connection, they are new memory for every torrent, and a new 4 MiB array is zeroed and
 * page-faulted in before its first use: in a four-agent round on this VM 70–112 MiB of such pages
 * per agent. Given back to the pool when the connection or read is done, they serve the next
 * torrent instead (agent CPU per GiB ×0.82–0.88 there, `docs/performance.md`).
 *
 * Bounds: at most `maxIdleBytes` of buffers wait in the pool (a buffer given back beyond that is
 * left to the garbage collector), and once nothing has been taken for `idleMs` a sweep (an
 * interval of the `timers` seam, unref'd in production, running only while buffers wait) drops
 * them all, so an idle node holds no piece memory.
 *
 * @example
 * ```ts
 * import { PieceBufferPool } from "./buffer_pool.ts";
 * const pool = new PieceBufferPool();
 * const buf = pool.take(4 << 20); // at least 4 MiB
 * pool.give(buf); // the next take of up to buf.length bytes reuses it
 * pool.close();
 * ```
 *
 * @module
 */

import { systemTimers, type Timers } from "../common/timers.ts";

/** Where piece buffers come from and go back to (the seam {@linkcode PieceBufferPool} fills). */
export interface PieceBufferSource {
  /** A buffer of at least `length` bytes, owned by the caller until it is given back. */
  take(length: number): Uint8Array;
  /** Takes a buffer back; the caller must not touch it afterwards. */
  give(buffer: Uint8Array): void;
}

/** Options for {@linkcode PieceBufferPool}. */
export interface PieceBufferPoolOptions {
  /** Bytes of idle buffers kept for reuse. Default 128 MiB (32 buffers of 4 MiB pieces). */
  maxIdleBytes?: number;
  /** Idle buffers are dropped once none has been taken for this long, ms. Default 30 s. */
  idleMs?: number;
  /** Clock and the sweep's interval. Default {@linkcode systemTimers}. */
  timers?: Timers;
}

/** Default {@linkcode PieceBufferPoolOptions.maxIdleBytes}. */
export const DEFAULT_MAX_IDLE_BUFFER_BYTES = 128 * 1024 * 1024;

/** Default {@linkcode PieceBufferPoolOptions.idleMs}. */
export const DEFAULT_BUFFER_IDLE_MS = 30_000;

/** Reuses piece buffers across connections and torrents; see the module doc for its bounds. */
export class PieceBufferPool implements PieceBufferSource {
  readonly #maxIdleBytes: number;
  readonly #idleMs: number;
  readonly #timers: Timers;
  #idle: Uint8Array[] = [];
  #idleBytes = 0;
  #lastTake: number;
  #sweeper?: number;
  #closed = false;

  /** Creates an empty pool. */
  constructor(options: PieceBufferPoolOptions = {}) {
    this.#maxIdleBytes = options.maxIdleBytes ?? DEFAULT_MAX_IDLE_BUFFER_BYTES;
    this.#idleMs = options.idleMs ?? DEFAULT_BUFFER_IDLE_MS;
    this.#timers = options.timers ?? systemTimers;
    this.#lastTake = this.#timers.now();
  }

  /** Bytes of the buffers waiting in the pool. */
  get idleBytes(): number {
    return this.#idleBytes;
  }

  /**
   * The smallest waiting buffer of at least `length` bytes, or a new one of exactly `length`.
   * @throws {RangeError} if `length` is not a non-negative integer
   */
  take(length: number): Uint8Array {
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new RangeError(`invalid buffer length ${length}`);
    }
    this.#lastTake = this.#timers.now();
    let best = -1;
    for (let i = 0; i < this.#idle.length; i++) {
      const n = this.#idle[i].length;
      if (n >= length && (best < 0 || n < this.#idle[best].length)) best = i;
    }
    if (best < 0) return new Uint8Array(length);
    const [buffer] = this.#idle.splice(best, 1);
    this.#idleBytes -= buffer.length;
    return buffer;
  }

  /** Keeps `buffer` for a later {@linkcode take}, unless that would exceed `maxIdleBytes`. */
  give(buffer: Uint8Array): void {
    if (this.#closed || this.#idleBytes + buffer.length > this.#maxIdleBytes) return;
    if (this.#idle.includes(buffer)) return;
    this.#idle.push(buffer);
    this.#idleBytes += buffer.length;
    this.#sweeper ??= this.#timers.setInterval(
      () => this.#sweep(),
      Math.max(1, this.#idleMs / 2),
    );
  }

  /** Drops the waiting buffers and stops the sweep; later gives are dropped too. */
  close(): void {
    this.#closed = true;
    this.#drop();
  }

  #sweep(): void {
    if (this.#timers.now() - this.#lastTake >= this.#idleMs) this.#drop();
  }

  #drop(): void {
    this.#idle = [];
    this.#idleBytes = 0;
    if (this.#sweeper === undefined) return;
    this.#timers.clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }
}
