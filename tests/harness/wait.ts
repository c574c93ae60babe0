/**
 * Waiting for something that happens asynchronously: the one polling helper of the test suite
 * (unit tests beside the modules and flow tests alike).
 *
 * ```ts
 * import { waitFor } from "./wait.ts";
 * await waitFor("the write-back", () => exists(backendFile));
 * const trace = await waitFor("the upload trace", () => findTrace(), { timeoutMs: 20_000 });
 * ```
 *
 * Use it for events whose timing the test does not control (another process, a socket, an exporter).
 * Time that a module measures itself is driven with `ManualTimers`
 * (`common/timers.ts`) instead, and "nothing happened" is asserted right after the
 * moment it would have happened, never after a sleep.
 *
 * @module
 */

/** Options of {@linkcode waitFor}. */
export interface WaitForOptions {
  /** Give up after this long (default 10 000 ms). */
  timeoutMs?: number;
  /** Pause between attempts (default 10 ms). */
  intervalMs?: number;
  /** Added to the timeout error, e.g. the last failure seen or a process's log. */
  detail?: () => string;
}

/** What a probe returns while the awaited thing has not happened yet. */
export type NotYet = undefined | null | false;

/**
 * Calls `probe` until it returns something other than `undefined`, `null` or `false`, and returns
 * that. Throws `timed out after <timeoutMs> ms waiting for <what>` when the time is up; an error
 * thrown by the probe ends the wait at once.
 *
 * @param what what is awaited, for the error message
 * @param probe checks once; may be async
 * @param options see {@linkcode WaitForOptions}
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | NotYet | Promise<T | NotYet>,
  options: WaitForOptions = {},
): Promise<Exclude<T, NotYet>> {
  const { timeoutMs = 10_000, intervalMs = 10, detail } = options;
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const value = await probe();
    if (value !== undefined && value !== null && value !== false) {
      return value as Exclude<T, NotYet>;
    }
    if (Date.now() >= deadline) {
      const extra = detail ? ` ${detail()}` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${extra}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
