/**
 * The config blocks of persisted task queues (`storage/writeback.ts`), in its option names:
 * `writeback:` of the roles that write back (origin, build-index: the queue's SQLite file, its
 * retry timing and its workers; only the database's default differs between the roles), and
 * {@linkcode retryQueueSchema} for a queue that lives in another queue's database (build-index's
 * `tag_replication:`).
 *
 * ```yaml
 * writeback: { db: <storage.root>/origin.db, retry_interval: 30s, max_retry_interval: 5m,
 *              poll_interval: 15s, workers: 4 }
 * ```
 *
 * @module
 */

import { ConfigError } from "../common/config.ts";
import { duration, int, object, path, type Schema } from "../common/schema.ts";
import { DEFAULT_MAX_RETRY_INTERVAL_MS } from "./writeback.ts";

/** Retry timing and workers of a queue whose tasks are `what` (`write-back`, ...). */
function retryFields(what: string) {
  return {
    retry_interval: duration().default("30s").describe(
      `Wait after a ${what}'s first failure; doubled after each further one (plus up to 20 % ` +
        "jitter), up to `max_retry_interval`.",
    ),
    max_retry_interval: duration({ positive: true }).optional("`5m` (or `retry_interval`)")
      .describe(`Cap on the wait between attempts of a failed ${what}.`),
    poll_interval: duration({ positive: true }).default("15s")
      .describe(`How often failed ${what}s are rescanned for retry.`),
    workers: int({ min: 1 }).default(4).describe(`Number of ${what}s run at once.`),
  };
}

const RENAMES = {
  retry_interval: "retryIntervalMs",
  max_retry_interval: "maxRetryIntervalMs",
  poll_interval: "pollIntervalMs",
} as const;

/** Resolves the retry cap's default and refuses one below the retry interval. */
function withRetryCap<T extends { retryIntervalMs: number; maxRetryIntervalMs?: number }>(
  schema: Schema<T>,
) {
  return schema.map(({ maxRetryIntervalMs, ...rest }, key) => {
    const max = maxRetryIntervalMs ?? Math.max(DEFAULT_MAX_RETRY_INTERVAL_MS, rest.retryIntervalMs);
    if (max < rest.retryIntervalMs) {
      throw new ConfigError(`${key}.max_retry_interval`, "must not be below retry_interval");
    }
    return { ...rest, maxRetryIntervalMs: max };
  });
}

/**
 * The schema of a role's `writeback:` block. `db` is optional (the role resolves its default);
 * `dbDefault` and `dbDescription` are what the generated docs say about it.
 */
export function writebackSchema(dbDefault: string, dbDescription: string) {
  return withRetryCap(
    object({
      db: path().optional(dbDefault).describe(dbDescription),
      ...retryFields("write-back"),
    }, { rename: RENAMES }),
  );
}

/** The schema of a queue without a database of its own: retry timing and workers of `what`s. */
export function retryQueueSchema(what: string) {
  return withRetryCap(object(retryFields(what), { rename: RENAMES }));
}
