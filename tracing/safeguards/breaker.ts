/**
 * The tracing circuit breaker (ERD §7.4): sheds tracing while the process is overloaded or the
 * export path is failing, and brings it back carefully. Trace context keeps flowing while it is
 * open; only recording stops.
 *
 * States and transitions (each logged exactly once):
 * - **closed** (tracing on) → **open** when a load poll reads more than `loadThreshold`, when
 *   `exportFailureThreshold` exports in a row fail, when `exportTimeoutThreshold` exports of such a
 *   run timed out (a collector that accepts and never answers costs a whole timeout per export),
 *   or when `queueFullThreshold` load polls in a row saw the export queue full (`recordQueueFull`
 *   since the previous poll).
 * - **open** (tracing off) → **half_open** at the first poll after `cooldownMs` at which load is at
 *   or below the threshold; while load stays high the breaker stays open, quietly.
 * - **half_open** lets a trickle through (`halfOpenSpansPerPoll` span starts per poll interval)
 *   → **closed** on the next successful export, or, when it opened for load alone, at the next
 *   poll with load at or below the threshold; → **open** on a failed export, a full queue, or load
 *   above the threshold.
 *
 * `allow()` runs on every span start: it reads one field and notes the start (and decrements a
 * counter while half open), never the clock, and allocates nothing. Load is polled on a timer
 * instead. While closed, the poll timer stops after a poll interval in which no span started (an
 * idle process is not woken for it); the next span start, or an export result that changes the
 * state, starts it again.
 *
 * @module
 */

import { systemTimers, type Timers } from "../../common/timers.ts";

/** Breaker state. */
export type BreakerState = "closed" | "open" | "half_open";

/** Why the breaker changed state. */
export type BreakerReason =
  | "load"
  | "export_failures"
  | "export_timeouts"
  | "queue_full"
  | "cooldown_elapsed"
  | "export_success"
  | "load_recovered"
  | "probe_failed";

/** Gauge values of the states: 0 closed, 1 half-open, 2 open. */
export const BREAKER_STATE_CODE: Readonly<Record<BreakerState, number>> = Object.freeze({
  closed: 0,
  half_open: 1,
  open: 2,
});

/** The logging the breaker needs (the tracing logger satisfies it). */
export interface BreakerLogger {
  /** Recovery transitions. */
  info(msg: string, fields?: Record<string, unknown>): void;
  /** The breaker opened. */
  warn(msg: string, fields?: Record<string, unknown>): void;
}

/**
 * Options of {@linkcode CircuitBreaker}. The threshold fields have the names and units of
 * `SafeguardsConfig`, so a parsed config can be spread in.
 */
export interface CircuitBreakerOptions {
  /** When false, `allow()` is always true and no timer runs. Default true. */
  circuitBreakerEnabled?: boolean;
  /** Load in [0, 1] above which the breaker opens. Default 0.9. */
  loadThreshold?: number;
  /** Minimum time open before probing, ms. Default 30 000. */
  cooldownMs?: number;
  /** Consecutive failed exports that open the breaker. Default 5. */
  exportFailureThreshold?: number;
  /** Timed-out exports within a run of failed ones that open the breaker. Default 3. */
  exportTimeoutThreshold?: number;
  /** Consecutive polls with a full queue that open the breaker. Default 3. */
  queueFullThreshold?: number;
  /** Load poll period, ms. Default 1000. */
  loadPollIntervalMs?: number;
  /** Span starts let through per poll interval while half open. Default 10. */
  halfOpenSpansPerPoll?: number;
  /** Process load in [0, 1] (see `load.ts`). Default: always 0. */
  load?: () => number;
  /** Transition log. Default: none. */
  logger?: BreakerLogger;
  /** Called once per transition, after the state changed (e.g. to set the metrics gauge). */
  onStateChange?: (state: BreakerState, previous: BreakerState, reason: BreakerReason) => void;
  /** Clock and timers. Default {@linkcode systemTimers}. */
  timers?: Timers;
}

const CLOSED = 0;
const HALF_OPEN = 1;
const OPEN = 2;
const NAMES: readonly BreakerState[] = ["closed", "half_open", "open"];

/** The tracing circuit breaker. */
export class CircuitBreaker {
  readonly #enabled: boolean;
  readonly #loadThreshold: number;
  readonly #cooldownMs: number;
  readonly #failureThreshold: number;
  readonly #timeoutThreshold: number;
  readonly #queueFullThreshold: number;
  readonly #pollMs: number;
  readonly #trickle: number;
  readonly #load: () => number;
  readonly #logger: BreakerLogger | undefined;
  readonly #onStateChange: CircuitBreakerOptions["onStateChange"];
  readonly #timers: Timers;
  #state = CLOSED;
  #allowance = 0;
  #failures = 0;
  #timeouts = 0;
  #queueFullSincePoll = false;
  #queueFullPolls = 0;
  #openedAt = 0;
  #openedFor: BreakerReason = "load";
  #lastLoad = 0;
  #timer: number | undefined;
  // start() was called and stop() was not; the timer may still be asleep.
  #polling = false;
  #spanStarted = false;

  /** Creates a closed breaker; call `start()` to begin polling load. */
  constructor(options: CircuitBreakerOptions = {}) {
    this.#enabled = options.circuitBreakerEnabled ?? true;
    this.#loadThreshold = options.loadThreshold ?? 0.9;
    this.#cooldownMs = options.cooldownMs ?? 30_000;
    this.#failureThreshold = options.exportFailureThreshold ?? 5;
    this.#timeoutThreshold = options.exportTimeoutThreshold ?? 3;
    this.#queueFullThreshold = options.queueFullThreshold ?? 3;
    this.#pollMs = options.loadPollIntervalMs ?? 1000;
    this.#trickle = options.halfOpenSpansPerPoll ?? 10;
    this.#load = options.load ?? (() => 0);
    this.#logger = options.logger;
    this.#onStateChange = options.onStateChange;
    this.#timers = options.timers ?? systemTimers;
  }

  /** True when a span may be recorded. O(1), allocation-free. */
  allow(): boolean {
    if (this.#state === CLOSED) {
      this.#spanStarted = true;
      if (this.#timer === undefined && this.#polling) this.#wake();
      return true;
    }
    if (this.#state === OPEN) return false;
    if (this.#allowance > 0) {
      this.#allowance--;
      return true;
    }
    return false;
  }

  /** Current state. */
  get state(): BreakerState {
    return NAMES[this.#state];
  }

  /** Current state as a gauge value (see {@linkcode BREAKER_STATE_CODE}). */
  get stateCode(): number {
    return this.#state;
  }

  /** Starts the load poll timer (no-op when disabled or already started). */
  start(): void {
    if (!this.#enabled || this.#polling) return;
    this.#polling = true;
    this.#wake();
  }

  /** Stops the load poll timer. */
  stop(): void {
    this.#polling = false;
    this.#sleep();
  }

  /** Whether the poll timer is running (false while asleep or stopped). */
  get polling(): boolean {
    return this.#timer !== undefined;
  }

  #wake(): void {
    if (this.#timer !== undefined || !this.#polling) return;
    this.#timer = this.#timers.setInterval(() => this.#poll(), this.#pollMs);
  }

  #sleep(): void {
    if (this.#timer === undefined) return;
    this.#timers.clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** An export succeeded: resets the failure streak; closes a half-open breaker. */
  recordExportSuccess(): void {
    this.#failures = 0;
    this.#timeouts = 0;
    if (this.#state === HALF_OPEN) this.#transition(CLOSED, "export_success");
  }

  /**
   * An export failed (after its retries).
   *
   * @param timedOut whether it failed by running out of its timeout
   */
  recordExportFailure(timedOut = false): void {
    if (!this.#enabled) return;
    this.#failures++;
    if (timedOut) this.#timeouts++;
    if (this.#state === HALF_OPEN) this.#open("probe_failed");
    else if (this.#state === CLOSED && this.#timeouts >= this.#timeoutThreshold) {
      this.#open("export_timeouts");
    } else if (this.#state === CLOSED && this.#failures >= this.#failureThreshold) {
      this.#open("export_failures");
    }
  }

  /** A span was dropped because the export queue was full. */
  recordQueueFull(): void {
    if (!this.#enabled) return;
    this.#queueFullSincePoll = true;
    this.#wake();
    if (this.#state === HALF_OPEN) this.#open("probe_failed");
  }

  #poll(): void {
    this.#pollOnce();
    // Closed, and nothing started or filled the queue since the last poll: nothing to decide
    // until a span starts.
    if (this.#state === CLOSED && !this.#spanStarted && this.#queueFullPolls === 0) this.#sleep();
    this.#spanStarted = false;
  }

  #pollOnce(): void {
    const load = this.#load();
    this.#lastLoad = load;
    const overloaded = load > this.#loadThreshold;
    this.#queueFullPolls = this.#queueFullSincePoll ? this.#queueFullPolls + 1 : 0;
    this.#queueFullSincePoll = false;
    if (this.#state === CLOSED) {
      if (overloaded) this.#open("load");
      else if (this.#queueFullPolls >= this.#queueFullThreshold) this.#open("queue_full");
    } else if (this.#state === OPEN) {
      if (this.#timers.now() - this.#openedAt < this.#cooldownMs) return;
      if (overloaded) return;
      this.#allowance = this.#trickle;
      this.#transition(HALF_OPEN, "cooldown_elapsed");
    } else if (overloaded) {
      this.#open("load");
    } else if (this.#openedFor === "load") {
      this.#transition(CLOSED, "load_recovered");
    } else {
      this.#allowance = this.#trickle;
    }
  }

  #open(reason: BreakerReason): void {
    this.#openedAt = this.#timers.now();
    if (reason !== "probe_failed") this.#openedFor = reason;
    this.#transition(OPEN, reason);
  }

  #transition(next: number, reason: BreakerReason): void {
    const previous = this.#state;
    if (previous === next) return;
    this.#state = next;
    // An export result can open the breaker while its poll sleeps; the cooldown needs the poll.
    if (next !== CLOSED) this.#wake();
    this.#failures = 0;
    this.#timeouts = 0;
    this.#queueFullPolls = 0;
    if (next !== HALF_OPEN) this.#allowance = 0;
    const fields = { state: NAMES[next], previous: NAMES[previous], reason, load: this.#lastLoad };
    if (next === OPEN) {
      this.#logger?.warn("tracing circuit breaker opened: spans are not recorded", fields);
    } else if (next === HALF_OPEN) {
      this.#logger?.info(
        "tracing circuit breaker half-open: probing with a trickle of spans",
        fields,
      );
    } else {
      this.#logger?.info("tracing circuit breaker closed: tracing resumed", fields);
    }
    this.#onStateChange?.(NAMES[next], NAMES[previous], reason);
  }
}
