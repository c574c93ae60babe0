/**
 * A write-back queue's series in the role's metrics registry (origins write blobs back, the
 * build-index tags): tasks added, succeeded and failed, the queue depth, the age of the oldest task
 * not yet done, and the tasks running.
 *
 * | Series | Kind | statsd |
 * |---|---|---|
 * | `kraken_writeback_tasks_added_total` | counter | `tasks.added` (upstream's) |
 * | `kraken_writeback_tasks_succeeded_total` | counter | `writeback.tasks_succeeded` |
 * | `kraken_writeback_task_failures_total` | counter | `task_failures` (upstream's) |
 * | `kraken_writeback_queue_depth` | gauge | `queue.size` (upstream's) |
 * | `kraken_writeback_oldest_task_age_seconds` | gauge | `writeback.oldest_task_age_seconds` |
 * | `kraken_writeback_running` | gauge | `writeback.running` |
 *
 * @module
 */

import type { MetricsRegistry } from "../tracing/mod.ts";
import type { WriteBackManager } from "./writeback.ts";

/**
 * Registers `manager`'s series in `registry`; `wallClock` is the clock its rows are stamped with
 * (the manager's `now`, default `Date.now`).
 */
export function registerWriteBackMetrics(
  registry: MetricsRegistry,
  manager: WriteBackManager,
  wallClock: () => number = Date.now,
): void {
  registry.observedCounter(
    "kraken_writeback_tasks_added_total",
    "Write-back tasks queued (one per blob committed to an origin).",
    () => manager.stats().added,
    {},
    { statsd: "tasks.added" },
  );
  registry.observedCounter(
    "kraken_writeback_tasks_succeeded_total",
    "Write-back executions that completed (blob in the backend, or the task dropped).",
    () => manager.stats().succeeded,
  );
  registry.observedCounter(
    "kraken_writeback_task_failures_total",
    "Write-back executions that failed and wait for a retry.",
    () => manager.stats().failed,
    {},
    { statsd: "task_failures" },
  );
  registry.gauge(
    "kraken_writeback_queue_depth",
    "Write-back tasks stored and not yet done (pending or waiting for a retry).",
    () => manager.stats().rows,
    {},
    { statsd: "queue.size" },
  );
  registry.gauge(
    "kraken_writeback_oldest_task_age_seconds",
    "Age of the oldest write-back task not yet done; 0 when none is.",
    () => {
      const oldest = manager.stats().oldestCreatedAt;
      return oldest === undefined ? 0 : Math.max(0, (wallClock() - oldest) / 1000);
    },
  );
  registry.gauge(
    "kraken_writeback_running",
    "Write-back tasks executing now.",
    () => manager.stats().running,
  );
}
