/**
 * Sweeps of abandoned resumable uploads. A retried write-back resumes its S3 multipart upload, so
 * a failed attempt leaves the upload (and its stored parts) in the bucket on purpose; when the
 * write-back task goes away without finishing it (the blob left the cache, the queue's database
 * was lost), nothing resumes the upload and the store keeps its parts. Every backend with an
 * {@linkcode UploadSweepPolicy} is swept at start-up and then every `intervalMs`: its unfinished
 * uploads that are old enough and of a name without a pending write-back are aborted, at most
 * `max` a sweep.
 *
 * Visible as `kraken_backend_abandoned_uploads_aborted_total{backend}` and one log line per sweep
 * that aborted any (`aborted abandoned uploads`, with `limited: true` when `max` cut it short);
 * a failed sweep logs `abandoned upload sweep failed` and waits for the next interval.
 *
 * ```ts
 * const sweeps = startUploadSweeps({
 *   backends,
 *   pendingNames: () => writeback.pending().map((t) => t.name),
 *   metrics,
 *   logger,
 * });
 * await sweeps.stop();
 * ```
 *
 * @module
 */

import type { Logger } from "../../common/log.ts";
import type { MetricsRegistry } from "../../tracing/mod.ts";
import type { Backend, UploadSweepResult } from "./backend.ts";

/** Options of {@linkcode startUploadSweeps}. */
export interface UploadSweepOptions {
  /** The role's backends; those without `uploadSweep`/`sweepUploads` are skipped. */
  backends: Iterable<Backend>;
  /**
   * Names of the pending write-back tasks, read at the start of each sweep: their uploads may
   * still be resumed and are kept.
   */
  pendingNames: () => Iterable<string>;
  /** The role's metrics (`TracingRuntime.roleMetrics`). */
  metrics: MetricsRegistry;
  /** The role's logger. */
  logger: Logger;
}

/** Running sweeps. */
export interface UploadSweeps {
  /** Stops the timers and waits for sweeps in progress. */
  stop(): Promise<void>;
}

/** Starts the sweeps: each sweeping backend at once, then every `uploadSweep.intervalMs`. */
export function startUploadSweeps(options: UploadSweepOptions): UploadSweeps {
  const { metrics, logger } = options;
  const swept = [...new Set(options.backends)].filter((b) =>
    b.sweepUploads !== undefined && b.uploadSweep !== undefined && b.uploadSweep.intervalMs > 0
  );
  const timers: ReturnType<typeof setInterval>[] = [];
  const running = new Map<Backend, Promise<UploadSweepResult>>();
  const counters = new Map(
    [...new Set(swept.map((b) => b.type))].map((type) => [
      type,
      metrics.counter(
        "kraken_backend_abandoned_uploads_aborted_total",
        "Unfinished uploads (S3 multipart) aborted because no write-back task will resume them.",
        { backend: type },
      ),
    ]),
  );
  const sweep = (backend: Backend): Promise<UploadSweepResult> => {
    const inFlight = running.get(backend);
    if (inFlight) return inFlight;
    const run = (async () => {
      const pending = new Set(options.pendingNames());
      const result = await backend.sweepUploads!((name) => pending.has(name));
      if (result.aborted > 0) {
        counters.get(backend.type)!.inc(result.aborted);
        logger.info("aborted abandoned uploads", {
          backend: backend.type,
          bucket: backend.bucket,
          ...result,
          min_age_ms: backend.uploadSweep!.minAgeMs,
        });
      }
      return result;
    })().finally(() => running.delete(backend));
    running.set(backend, run);
    return run;
  };
  const sweepLogged = (backend: Backend) =>
    sweep(backend).catch((error) =>
      logger.warn("abandoned upload sweep failed", {
        backend: backend.type,
        bucket: backend.bucket,
        error,
      })
    );
  for (const backend of swept) {
    void sweepLogged(backend);
    timers.push(setInterval(() => void sweepLogged(backend), backend.uploadSweep!.intervalMs));
  }
  return {
    async stop() {
      for (const timer of timers) clearInterval(timer);
      await Promise.allSettled(running.values());
    },
  };
}
