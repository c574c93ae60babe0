/**
 * The origin's bound on upload sessions: every start, PATCH and commit flavour stages its bytes in
 * the blob store's `uploads/`, and a client that never commits would otherwise leave its file
 * there for good (a bare POST already creates one). Two limits, both visible on `/metrics`:
 *
 * - **Expiry** (upstream's `upload_cleanup`): every `interval`, sessions not written to for `tti`
 *   are deleted with their staged bytes (`kraken_origin_upload_sessions_expired_total`, one log
 *   line per sweep that removed any).
 * - **Cap** (`max_upload_sessions`): starting a session while that many are open is refused with
 *   {@linkcode UploadLimitError}, answered 429 (`kraken_origin_upload_sessions_refused_total`, a
 *   warning at most every 30 s with the number suppressed).
 *
 * `kraken_origin_upload_sessions` is the number open, sessions left by an earlier run included.
 *
 * @module
 */

import { type Logger, rateLimited } from "../../common/log.ts";
import type { BlobStore } from "../../storage/blob_store.ts";
import { UploadLimitError } from "../../storage/blob_store.ts";
import type { MetricsRegistry } from "../../tracing/mod.ts";

export { UploadLimitError } from "../../storage/blob_store.ts";

/** Options of {@linkcode OriginUploadSessions}. */
export interface OriginUploadSessionsOptions {
  /** The origin's blob store. */
  store: BlobStore;
  /** A session idle this long is deleted, ms. */
  ttiMs: number;
  /** How often idle sessions are looked for, ms. */
  intervalMs: number;
  /** Most sessions open at once. */
  maxSessions: number;
  /** The role's metrics (`TracingRuntime.roleMetrics`). */
  metrics: MetricsRegistry;
  /** The role's logger. */
  logger: Logger;
}

/** Upload sessions of one origin: capped when started, expired when abandoned. */
export class OriginUploadSessions {
  readonly #o: OriginUploadSessionsOptions;
  readonly #expired;
  readonly #refused;
  readonly #warnRefused;
  #timer: ReturnType<typeof setInterval> | undefined;
  #sweeping: Promise<number> | undefined;

  /** @param options see {@linkcode OriginUploadSessionsOptions} */
  constructor(options: OriginUploadSessionsOptions) {
    this.#o = options;
    const { metrics, store, logger } = options;
    metrics.gauge(
      "kraken_origin_upload_sessions",
      "Upload sessions open (staged, not yet committed).",
      () => store.openUploads,
    );
    this.#expired = metrics.counter(
      "kraken_origin_upload_sessions_expired_total",
      "Upload sessions deleted after upload_cleanup.tti without a write.",
    );
    this.#refused = metrics.counter(
      "kraken_origin_upload_sessions_refused_total",
      "Upload starts refused (429) because max_upload_sessions were open.",
    );
    this.#warnRefused = rateLimited(30_000, (msg, fields) => logger.warn(msg, fields));
  }

  /**
   * Starts an upload session within the cap.
   * @throws {UploadLimitError} when `maxSessions` are open (counted and logged)
   */
  async create(): Promise<string> {
    try {
      return await this.#o.store.createUpload({ maxOpen: this.#o.maxSessions });
    } catch (error) {
      if (error instanceof UploadLimitError) {
        this.#refused.inc();
        this.#warnRefused("upload session limit reached; refusing new uploads", {
          max_upload_sessions: this.#o.maxSessions,
        });
      }
      throw error;
    }
  }

  /** Deletes the sessions idle past the TTI once (one sweep at a time); returns how many. */
  sweep(): Promise<number> {
    this.#sweeping ??= (async () => {
      const removed = await this.#o.store.pruneUploads(this.#o.ttiMs);
      if (removed > 0) {
        this.#expired.inc(removed);
        this.#o.logger.info("expired idle upload sessions", {
          count: removed,
          tti_ms: this.#o.ttiMs,
          open: this.#o.store.openUploads,
        });
      }
      return removed;
    })().finally(() => this.#sweeping = undefined);
    return this.#sweeping;
  }

  /** Sweeps every `intervalMs` until {@linkcode OriginUploadSessions.stop}. */
  start(): void {
    this.#timer ??= setInterval(() => {
      this.sweep().catch((error) =>
        this.#o.logger.warn("expiring idle upload sessions failed", { error })
      );
    }, this.#o.intervalMs);
  }

  /** Stops the sweeps and waits for one in progress. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#sweeping?.catch(() => {});
  }
}
