/**
 * The `writeback:` block of the roles that run a persisted write-back queue (origin, build-index):
 * the queue's SQLite file, its retry timing and its workers, in `storage/writeback.ts`'s option
 * names. Only the database's default differs between the roles.
 *
 * ```yaml
 * writeback: { db: <storage.root>/origin.db, retry_interval: 30s, max_retry_interval: 5m,
 *              poll_interval: 15s, workers: 4 }
 * ```
 *
 * @module
 */

import { ConfigError } from "../common/config.ts";
import { duration, int, object, path } from "../common/schema.ts";
import { DEFAULT_MAX_RETRY_INTERVAL_MS } from "./writeback.ts";

/**
 * The schema of a role's `writeback:` block. `db` is optional (the role resolves its default);
 * `dbDefault` and `dbDescription` are what the generated docs say about it.
 */
export function writebackSchema(dbDefault: string, dbDescription: string) {
  return object({
    db: path().optional(dbDefault).describe(dbDescription),
    retry_interval: duration().default("30s").describe(
      "Wait after a write-back's first failure; doubled after each further one (plus up to 20 % " +
        "jitter), up to `max_retry_interval`.",
    ),
    max_retry_interval: duration({ positive: true }).optional("`5m` (or `retry_interval`)")
      .describe("Cap on the wait between attempts of a failed write-back."),
    poll_interval: duration({ positive: true }).default("15s")
      .describe("How often failed write-backs are rescanned for retry."),
    workers: int({ min: 1 }).default(4).describe("Number of write-backs run at once."),
  }, {
    rename: {
      retry_interval: "retryIntervalMs",
      max_retry_interval: "maxRetryIntervalMs",
      poll_interval: "pollIntervalMs",
    },
  }).map(({ maxRetryIntervalMs, ...wb }, key) => {
    const max = maxRetryIntervalMs ?? Math.max(DEFAULT_MAX_RETRY_INTERVAL_MS, wb.retryIntervalMs);
    if (max < wb.retryIntervalMs) {
      throw new ConfigError(`${key}.max_retry_interval`, "must not be below retry_interval");
    }
    return { ...wb, maxRetryIntervalMs: max };
  });
}
