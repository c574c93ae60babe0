/**
 * Load signals in [0, 1] for the circuit breaker and adaptive sampling.
 *
 * - {@linkcode EventLoopDelayMonitor}: a timer that should fire every `sampleIntervalMs` notes how
 *   late it actually fires (the event-loop delay: time the loop spent on other work). Load is the
 *   mean delay over the last `windowSize` samples divided by `maxDelayMs`, capped at 1. With the
 *   defaults (100 ms samples, a 10-sample window, 100 ms max) a loop that is late by 90 ms on
 *   average over the last second reads 0.9; one isolated 500 ms stall reads at most 0.5 and is
 *   forgotten after a second, so a single slow synchronous step does not trip the breaker. The
 *   timer sleeps through a sample period in which nothing {@linkcode EventLoopDelayMonitor.touch}ed
 *   it (no span started: nothing for the load to decide), so an idle process is not woken ten
 *   times a second; the next touch wakes it, and the periods slept count as on-time samples.
 * - {@linkcode InFlightCounter}: requests being served divided by `max`, capped at 1; the HTTP
 *   server wrapper calls `begin()`/`end()` around each request.
 *
 * Each exposes `load` as a bound function, ready to pass as a `() => number` load source.
 *
 * @module
 */

import type { LoadSourceKind } from "../sampling/config.ts";
import { systemTimers, type Timers } from "../../common/timers.ts";
import type { SpanGate } from "../tracer.ts";

/** Options of {@linkcode EventLoopDelayMonitor}. */
export interface EventLoopDelayOptions {
  /** Sampling period, ms. Default 100. */
  sampleIntervalMs?: number;
  /** Mean delay that reads as load 1, ms. Default 100. */
  maxDelayMs?: number;
  /** Samples averaged. Default 10. */
  windowSize?: number;
  /** Clock and timers. Default {@linkcode systemTimers}. */
  timers?: Timers;
}

/** Measures event-loop delay with an interval timer. */
export class EventLoopDelayMonitor {
  readonly #interval: number;
  readonly #maxDelay: number;
  readonly #timers: Timers;
  readonly #samples: Float64Array;
  #next = 0;
  #sum = 0;
  #expected = 0;
  #timer: number | undefined;
  #started = false;
  // Touched since the last sample; the timer sleeps after a sample period without a touch.
  #touched = false;
  #lastSample = 0;

  /** Creates a stopped monitor (load 0 until started). */
  constructor(options: EventLoopDelayOptions = {}) {
    this.#interval = options.sampleIntervalMs ?? 100;
    this.#maxDelay = options.maxDelayMs ?? 100;
    this.#timers = options.timers ?? systemTimers;
    this.#samples = new Float64Array(options.windowSize ?? 10);
  }

  /** Starts sampling (no-op when already started). */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#lastSample = this.#timers.now();
    this.#arm(this.#lastSample);
  }

  /** Stops sampling; the last load reading stays. */
  stop(): void {
    this.#started = false;
    this.#sleep();
  }

  /**
   * Notes activity that the load reading is for (a span start): keeps the timer sampling, or wakes
   * it. O(1) and allocation-free while it runs.
   */
  touch(): void {
    if (this.#timer !== undefined) this.#touched = true;
    else if (this.#started) this.#wake();
  }

  /** Whether the sampling timer is running (false while asleep or stopped). */
  get sampling(): boolean {
    return this.#timer !== undefined;
  }

  #arm(now: number): void {
    this.#expected = now + this.#interval;
    this.#timer = this.#timers.setInterval(() => this.#tick(), this.#interval);
  }

  #sleep(): void {
    if (this.#timer === undefined) return;
    this.#timers.clearInterval(this.#timer);
    this.#timer = undefined;
  }

  // Sample periods slept through since the last sample, up to a window: they read as on time (a
  // loop no span start waited on), in the reading while asleep and as samples on waking.
  #missed(now: number): number {
    return Math.min(this.#samples.length, Math.floor((now - this.#lastSample) / this.#interval));
  }

  #wake(): void {
    const now = this.#timers.now();
    const missed = this.#missed(now);
    for (let i = 0; i < missed; i++) this.#record(0);
    this.#touched = false;
    this.#arm(now);
  }

  #tick(): void {
    const now = this.#timers.now();
    this.#record(Math.max(0, now - this.#expected));
    this.#lastSample = now;
    this.#expected = now + this.#interval;
    if (!this.#touched) this.#sleep();
    this.#touched = false;
  }

  #record(delay: number): void {
    this.#sum += delay - this.#samples[this.#next];
    this.#samples[this.#next] = delay;
    this.#next = (this.#next + 1) % this.#samples.length;
  }

  /** Mean delay over the window, ms (periods slept through count as on-time samples). */
  get meanDelayMs(): number {
    let sum = this.#sum;
    if (this.#started && this.#timer === undefined) {
      const missed = this.#missed(this.#timers.now());
      for (let i = 0; i < missed; i++) {
        sum -= this.#samples[(this.#next + i) % this.#samples.length];
      }
    }
    return Math.max(0, sum / this.#samples.length);
  }

  /** Load in [0, 1]: mean delay / max delay, capped. */
  readonly load = (): number => Math.min(1, this.meanDelayMs / this.#maxDelay);
}

/** Counts requests in flight. */
export class InFlightCounter {
  readonly #max: number;
  #inFlight = 0;

  /** `max` requests in flight read as load 1. Default 256. */
  constructor(max = 256) {
    this.#max = max;
  }

  /** A request started. */
  begin(): void {
    this.#inFlight++;
  }

  /** A request finished. */
  end(): void {
    if (this.#inFlight > 0) this.#inFlight--;
  }

  /** Requests in flight now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Load in [0, 1]: in flight / max, capped. */
  readonly load = (): number => Math.min(1, this.#inFlight / this.#max);
}

/** Options of {@linkcode LoadSources}; the names match `SafeguardsConfig`. */
export interface LoadSourcesOptions {
  /** Event-loop delay that reads as load 1, ms. Default 100. */
  maxEventLoopDelayMs?: number;
  /** In-flight requests that read as load 1. Default 256. */
  maxInFlight?: number;
  /** Clock and timers. Default {@linkcode systemTimers}. */
  timers?: Timers;
}

/**
 * The process's load sources, created on demand so the event-loop timer only runs when some
 * consumer asked for it. One instance per process; `inFlight` is the counter the server wrapper
 * feeds.
 */
export class LoadSources {
  /** The in-flight request counter (feed it from the HTTP server wrapper). */
  readonly inFlight: InFlightCounter;
  readonly #options: LoadSourcesOptions;
  #eventLoop: EventLoopDelayMonitor | undefined;

  /** Creates the sources; nothing runs until an event-loop source is requested. */
  constructor(options: LoadSourcesOptions = {}) {
    this.#options = options;
    this.inFlight = new InFlightCounter(options.maxInFlight);
  }

  /** The load function of `kind`; asking for `event_loop_delay` starts its monitor. */
  get(kind: LoadSourceKind): () => number {
    if (kind === "in_flight") return this.inFlight.load;
    if (!this.#eventLoop) {
      this.#eventLoop = new EventLoopDelayMonitor({
        maxDelayMs: this.#options.maxEventLoopDelayMs,
        timers: this.#options.timers,
      });
      this.#eventLoop.start();
    }
    return this.#eventLoop.load;
  }

  /**
   * `gate` with each span start also touching the event-loop monitor (span starts are what keeps it
   * sampling); `gate` itself when no monitor was started.
   */
  touchingGate(gate: SpanGate): SpanGate {
    const monitor = this.#eventLoop;
    if (monitor === undefined) return gate;
    return {
      allow() {
        monitor.touch();
        return gate.allow();
      },
    };
  }

  /** Stops the event-loop monitor, if one was started. */
  stop(): void {
    this.#eventLoop?.stop();
  }
}
