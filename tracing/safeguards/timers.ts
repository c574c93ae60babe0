/**
 * The clock and interval timers the safeguards and the statsd emitter run on, as an injectable
 * seam: production uses {@linkcode systemTimers} (unref'd, so they never keep a process alive);
 * tests and simulations use {@linkcode ManualTimers}, whose time only moves when told to.
 *
 * @module
 */

/** A monotonic clock and repeating timers. */
export interface Timers {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  /** Calls `fn` every `ms` milliseconds until cleared; returns an id. */
  setInterval(fn: () => void, ms: number): number;
  /** Stops an interval started by `setInterval`. */
  clearInterval(id: number): void;
}

/** Real time: `performance.now` and unref'd `setInterval`. */
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
};

interface ManualInterval {
  fn: () => void;
  ms: number;
  due: number;
}

/**
 * Deterministic timers for tests: `advance` moves time forward and fires due intervals in order;
 * `stall` moves time without firing anything, like an event loop blocked by synchronous work, so
 * the next `advance` fires the overdue callbacks late.
 */
export class ManualTimers implements Timers {
  #now: number;
  #nextId = 1;
  readonly #intervals = new Map<number, ManualInterval>();

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
    const id = this.#nextId++;
    this.#intervals.set(id, { fn, ms, due: this.#now + ms });
    return id;
  }

  /** Removes an interval. */
  clearInterval(id: number): void {
    this.#intervals.delete(id);
  }

  /** Number of live intervals (tests check that everything was stopped). */
  get pending(): number {
    return this.#intervals.size;
  }

  /**
   * Moves time forward by `ms`, firing each due interval at its due time (or now, when overdue);
   * the next firing is scheduled `ms` after the actual one, as a real event loop does.
   */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      let next: ManualInterval | undefined;
      for (const interval of this.#intervals.values()) {
        if (interval.due <= end && (next === undefined || interval.due < next.due)) next = interval;
      }
      if (next === undefined) break;
      this.#now = Math.max(this.#now, next.due);
      next.due = this.#now + next.ms;
      next.fn();
    }
    this.#now = end;
  }

  /** Moves time forward by `ms` without firing anything (a blocked event loop). */
  stall(ms: number): void {
    this.#now += ms;
  }
}
