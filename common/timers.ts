/**
 * The clock and timers every module that measures time runs on (tracing's safeguards and statsd
 * emitter, the write-back queue, the tracker's peer store, the health checker), as an injectable
 * seam: production uses {@linkcode systemTimers} (intervals
 * unref'd, so they never keep a process alive); tests and simulations use {@linkcode ManualTimers},
 * whose time only moves when told to.
 *
 * @module
 */

/** A monotonic clock, repeating timers and one-shot timers. */
export interface Timers {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  /** Calls `fn` every `ms` milliseconds until cleared; returns an id. */
  setInterval(fn: () => void, ms: number): number;
  /** Stops an interval started by `setInterval`. */
  clearInterval(id: number): void;
  /** Calls `fn` once, `ms` milliseconds from now, unless cleared; returns an id. */
  setTimeout(fn: () => void, ms: number): number;
  /** Cancels a timeout started by `setTimeout`. */
  clearTimeout(id: number): void;
}

/** Resolves after `ms` milliseconds of `timers`' time. */
export function sleep(timers: Timers, ms: number): Promise<void> {
  return new Promise((resolve) => timers.setTimeout(resolve, ms));
}

/**
 * Real time: `performance.now`, unref'd `setInterval` and plain `setTimeout` (a pending timeout is
 * work in progress, such as a retry's backoff, so it keeps the process alive).
 */
export const systemTimers: Timers = {
  now: () => performance.now(),
  setInterval(fn, ms) {
    // Number(): with @types/node in the program (node:dgram) the global is typed as returning a
    // Timeout object, while Deno returns the numeric id at run time.
    const id = Number(setInterval(fn, ms));
    Deno.unrefTimer(id);
    return id;
  },
  clearInterval: (id) => clearInterval(id),
  setTimeout: (fn, ms) => Number(setTimeout(fn, ms)),
  clearTimeout: (id) => clearTimeout(id),
};

interface ManualTimer {
  fn: () => void;
  ms: number;
  due: number;
  repeat: boolean;
}

/**
 * Deterministic timers for tests: `advance` moves time forward and fires due timers in order;
 * `stall` moves time without firing anything, like an event loop blocked by synchronous work, so
 * the next `advance` fires the overdue callbacks late.
 */
export class ManualTimers implements Timers {
  #now: number;
  #nextId = 1;
  readonly #timers = new Map<number, ManualTimer>();

  /** Starts the clock at `start` ms. */
  constructor(start = 0) {
    this.#now = start;
  }

  /** Current time, ms. */
  now(): number {
    return this.#now;
  }

  /** Registers an interval; it first fires `ms` from now. */
  setInterval(fn: () => void, ms: number): number {
    return this.#add(fn, ms, true);
  }

  /** Removes an interval. */
  clearInterval(id: number): void {
    this.#timers.delete(id);
  }

  /** Registers a timeout; it fires once, `ms` from now. */
  setTimeout(fn: () => void, ms: number): number {
    return this.#add(fn, ms, false);
  }

  /** Removes a timeout that has not fired. */
  clearTimeout(id: number): void {
    this.#timers.delete(id);
  }

  #add(fn: () => void, ms: number, repeat: boolean): number {
    const id = this.#nextId++;
    this.#timers.set(id, { fn, ms, due: this.#now + Math.max(0, ms), repeat });
    return id;
  }

  /** Number of live intervals and timeouts (tests check that everything was stopped). */
  get pending(): number {
    return this.#timers.size;
  }

  /** When the earliest live timer is due, or undefined when there is none. */
  get nextDue(): number | undefined {
    let due: number | undefined;
    for (const timer of this.#timers.values()) {
      if (due === undefined || timer.due < due) due = timer.due;
    }
    return due;
  }

  /**
   * Moves time forward by `ms`, firing each due timer at its due time (or now, when overdue); an
   * interval's next firing is scheduled `ms` after the actual one, as a real event loop does, and a
   * timeout is removed before it fires.
   */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      let nextId = 0;
      let next: ManualTimer | undefined;
      for (const [id, timer] of this.#timers) {
        if (timer.due <= end && (next === undefined || timer.due < next.due)) {
          next = timer;
          nextId = id;
        }
      }
      if (next === undefined) break;
      this.#now = Math.max(this.#now, next.due);
      if (next.repeat) next.due = this.#now + next.ms;
      else this.#timers.delete(nextId);
      next.fn();
    }
    this.#now = end;
  }

  /** Moves time forward by `ms` without firing anything (a blocked event loop). */
  stall(ms: number): void {
    this.#now += ms;
  }
}
