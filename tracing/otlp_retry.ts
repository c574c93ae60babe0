/**
 * The OTLP exporters' retry policy (OTLP specification, "Failures" and "OTLP/HTTP Throttling"):
 * an export is tried up to `maxAttempts` times within one overall timeout; a retryable failure
 * waits the server's hint (`Retry-After` for HTTP, `RetryInfo` for gRPC) when it gave one, else an
 * exponential backoff with jitter. A hint that does not fit into the remaining time ends the export
 * at once, as a failure, rather than hammering the collector early.
 *
 * Both transports ({@linkcode OtlpHttpExporter} and {@linkcode OtlpGrpcExporter}) run their
 * attempts through {@linkcode sendWithRetries}, so they retry alike.
 *
 * @module
 */

/** An export did not finish within its timeout (the collector accepted and did not answer). */
export class ExportTimeoutError extends Error {
  /** The timeout that elapsed, ms. */
  readonly timeoutMs: number;

  /** Creates the error. */
  constructor(timeoutMs: number) {
    super(`export timed out after ${timeoutMs} ms`);
    this.name = "ExportTimeoutError";
    this.timeoutMs = timeoutMs;
  }
}

/** HTTP statuses the OTLP specification calls retryable. */
export const RETRYABLE_HTTP_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504]);

/** What one attempt came to. */
export type AttemptOutcome =
  | {
    /** The collector accepted the request. */
    ok: true;
    /** Spans the collector said it rejected (OTLP partial success). */
    rejectedSpans?: number;
    /** The collector's partial-success message. */
    message?: string;
  }
  | {
    /** The attempt failed. */
    ok: false;
    /** Whether another attempt may succeed. */
    retryable: boolean;
    /** The server's wait hint, ms (`Retry-After`, `RetryInfo`). */
    retryAfterMs?: number;
    /** What went wrong. */
    error: Error;
  };

/** Options of {@linkcode sendWithRetries}. */
export interface RetryOptions {
  /** Overall time the export may take, attempts and waits included. */
  timeoutMs: number;
  /** Attempts at most. */
  maxAttempts: number;
  /** First backoff, doubled per attempt (jittered ±10 %). */
  backoffMs: number;
  /** Aborted when the exporter shuts down. */
  shutdown?: AbortSignal;
  /** Called before each wait with the attempt number that failed and the delay (tests, logs). */
  onRetry?: (attempt: number, delayMs: number) => void;
}

/**
 * Parses an HTTP `Retry-After` value: delta-seconds or an HTTP date. Undefined when absent or
 * unparseable (the caller then backs off on its own).
 */
export function parseRetryAfter(
  value: string | null,
  now: number = Date.now(),
): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const date = Date.parse(v);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/**
 * Runs `attempt` until it succeeds, fails for good, runs out of attempts, or the timeout elapses
 * (then the attempt's signal is aborted with an {@linkcode ExportTimeoutError}). Resolves with the
 * successful outcome; rejects with the last error.
 */
export async function sendWithRetries(
  attempt: (signal: AbortSignal) => Promise<AttemptOutcome>,
  options: RetryOptions,
): Promise<AttemptOutcome & { ok: true }> {
  const { timeoutMs, maxAttempts, backoffMs, shutdown } = options;
  const deadline = performance.now() + timeoutMs;
  let lastError: Error = new Error("export not attempted");
  for (let n = 1; n <= maxAttempts && !shutdown?.aborted; n++) {
    const abort = new AbortController();
    const timer = setTimeout(
      () => abort.abort(new ExportTimeoutError(timeoutMs)),
      Math.max(0, deadline - performance.now()),
    );
    Deno.unrefTimer(timer);
    const onShutdown = () => abort.abort(new Error("exporter shut down"));
    shutdown?.addEventListener("abort", onShutdown);
    let outcome: AttemptOutcome;
    try {
      outcome = await attempt(abort.signal);
    } catch (error) {
      outcome = { ok: false, retryable: true, error: error as Error };
    } finally {
      clearTimeout(timer);
      shutdown?.removeEventListener("abort", onShutdown);
    }
    if (abort.signal.aborted && abort.signal.reason instanceof Error) {
      throw abort.signal.reason;
    }
    if (outcome.ok) return outcome;
    lastError = outcome.error;
    if (!outcome.retryable || n === maxAttempts) break;
    const delay = outcome.retryAfterMs ??
      backoffMs * 2 ** (n - 1) * (0.9 + Math.random() * 0.2);
    // No time left for another attempt within the export's timeout: it fails as it stands.
    if (performance.now() + delay >= deadline) break;
    options.onRetry?.(n, delay);
    await sleep(delay, shutdown);
  }
  throw lastError;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    Deno.unrefTimer(t);
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}
