/**
 * Health filters for hash-ring members, with upstream Kraken's defaults.
 *
 * - {@linkcode PassiveHealthFilter}: what trackers and agents use. Callers
 *   report failed requests; 3 failures within 5 minutes exclude a host for
 *   5 minutes.
 * - {@linkcode ActiveHealthChecker}: what origins use for their peers. Every
 *   10 s each host gets `GET /health` (3 s timeout); 3 consecutive failures
 *   mark it unhealthy and 2 consecutive passes mark it healthy again.
 *
 * Both expose `isHealthy(host)` as a bound function, so it can be handed to
 * `HashRing` as its `isHealthy` option directly. Hosts never seen are healthy.
 *
 * @module
 */

import { systemTimers, type Timers } from "../common/timers.ts";

/** Options for {@linkcode PassiveHealthFilter}. */
export interface PassiveHealthFilterOptions {
  /** Failures within `failWindowMs` that exclude a host (default 3). */
  fails?: number;
  /** Window in which failures are counted (default 5 min). */
  failWindowMs?: number;
  /** How long an excluded host stays excluded (default 5 min). */
  excludeMs?: number;
  /** Clock in epoch milliseconds (default `Date.now`). */
  now?: () => number;
}

/** Excludes hosts that recently failed repeatedly, based on reported failures. */
export class PassiveHealthFilter {
  readonly #fails: number;
  readonly #windowMs: number;
  readonly #excludeMs: number;
  readonly #now: () => number;
  readonly #failures = new Map<string, number[]>();
  readonly #excludedUntil = new Map<string, number>();

  /** @param options see {@linkcode PassiveHealthFilterOptions} */
  constructor(options: PassiveHealthFilterOptions = {}) {
    this.#fails = options.fails ?? 3;
    this.#windowMs = options.failWindowMs ?? 5 * 60_000;
    this.#excludeMs = options.excludeMs ?? 5 * 60_000;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Records a failed request to `host`.
   *
   * @param host the ring label that failed
   */
  failed = (host: string): void => {
    const now = this.#now();
    const recent = (this.#failures.get(host) ?? []).filter((t) => now - t < this.#windowMs);
    recent.push(now);
    if (recent.length >= this.#fails) {
      this.#excludedUntil.set(host, now + this.#excludeMs);
      this.#failures.delete(host);
    } else {
      this.#failures.set(host, recent);
    }
  };

  /**
   * Reports whether `host` is currently usable.
   *
   * @param host a ring label
   */
  isHealthy = (host: string): boolean => {
    const until = this.#excludedUntil.get(host);
    if (until === undefined) return true;
    if (this.#now() < until) return false;
    this.#excludedUntil.delete(host);
    return true;
  };
}

/** Options for {@linkcode ActiveHealthChecker}. */
export interface ActiveHealthCheckerOptions {
  /** Hosts (`host:port`) to probe, or a function returning the current list. */
  hosts: Iterable<string> | (() => Iterable<string>);
  /** The fetch used for probes; roles pass a traced one (default `globalThis.fetch`). */
  fetch?: typeof fetch;
  /** Time between rounds (default 10 s). */
  intervalMs?: number;
  /** Per-probe timeout (default 3 s). */
  timeoutMs?: number;
  /** Consecutive failures that mark a host unhealthy (default 3). */
  fails?: number;
  /** Consecutive passes that mark an unhealthy host healthy again (default 2). */
  passes?: number;
  /** URL scheme of probes (default `http`). */
  scheme?: "http" | "https";
  /** Called when a host's health flips. */
  onChange?: (host: string, healthy: boolean) => void;
  /** Timers of the rounds (default {@linkcode systemTimers}); probe timeouts use real time. */
  timers?: Timers;
}

interface HostState {
  healthy: boolean;
  // Length of the current run of identical probe outcomes.
  streak: number;
  lastPassed: boolean;
}

/** Probes every host's `/health` endpoint periodically and tracks its health. */
export class ActiveHealthChecker {
  readonly #hosts: () => Iterable<string>;
  readonly #fetch: typeof fetch;
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #fails: number;
  readonly #passes: number;
  readonly #scheme: string;
  readonly #onChange?: (host: string, healthy: boolean) => void;
  readonly #timers: Timers;
  readonly #state = new Map<string, HostState>();
  #timer: number | undefined;
  #round: Promise<void> | undefined;
  #abort = new AbortController();
  #running = false;

  /** @param options see {@linkcode ActiveHealthCheckerOptions} */
  constructor(options: ActiveHealthCheckerOptions) {
    const hosts = options.hosts;
    this.#hosts = typeof hosts === "function" ? hosts : () => hosts;
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#intervalMs = options.intervalMs ?? 10_000;
    this.#timeoutMs = options.timeoutMs ?? 3_000;
    this.#fails = options.fails ?? 3;
    this.#passes = options.passes ?? 2;
    this.#scheme = options.scheme ?? "http";
    this.#onChange = options.onChange;
    this.#timers = options.timers ?? systemTimers;
  }

  /**
   * Reports whether `host` is healthy; hosts not probed yet count as healthy.
   *
   * @param host a ring label
   */
  isHealthy = (host: string): boolean => this.#state.get(host)?.healthy ?? true;

  /** Runs one probe round over the current host list and waits for it. */
  check(): Promise<void> {
    if (this.#round) return this.#round; // a slow round is joined, never doubled
    if (this.#abort.signal.aborted) this.#abort = new AbortController();
    this.#round = this.#runRound().finally(() => {
      this.#round = undefined;
    });
    return this.#round;
  }

  /** Starts periodic rounds, the first one immediately. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    const tick = () => {
      this.check().finally(() => {
        if (this.#running) this.#timer = this.#timers.setTimeout(tick, this.#intervalMs);
      });
    };
    tick();
  }

  /** Stops periodic rounds, aborts probes in flight and waits for them to settle. */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#abort.abort();
    await this.#round;
  }

  async #runRound(): Promise<void> {
    const hosts = new Set(this.#hosts());
    for (const host of this.#state.keys()) {
      if (!hosts.has(host)) this.#state.delete(host);
    }
    await Promise.all([...hosts].map(async (host) => {
      const passed = await this.#probe(host);
      // A stop() during the round must not record aborted probes as failures.
      if (this.#abort.signal.aborted) return;
      this.#record(host, passed);
    }));
  }

  async #probe(host: string): Promise<boolean> {
    const controller = new AbortController();
    const onStop = () => controller.abort();
    this.#abort.signal.addEventListener("abort", onStop);
    const timer = setTimeout(() => controller.abort(), this.#timeoutMs);
    try {
      const res = await this.#fetch(`${this.#scheme}://${host}/health`, {
        signal: controller.signal,
      });
      await res.body?.cancel();
      return res.status === 200;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
      this.#abort.signal.removeEventListener("abort", onStop);
    }
  }

  #record(host: string, passed: boolean): void {
    const state = this.#state.get(host) ?? { healthy: true, streak: 0, lastPassed: passed };
    state.streak = state.lastPassed === passed ? state.streak + 1 : 1;
    state.lastPassed = passed;
    const flip = state.healthy
      ? !passed && state.streak >= this.#fails
      : passed && state.streak >= this.#passes;
    if (flip) {
      state.healthy = !state.healthy;
      this.#onChange?.(host, state.healthy);
    }
    this.#state.set(host, state);
  }
}
