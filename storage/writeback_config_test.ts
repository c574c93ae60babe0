import assert from "node:assert/strict";
import { ConfigError } from "../common/config.ts";
import { DEFAULT_MAX_RETRY_INTERVAL_MS } from "./writeback.ts";
import { retryQueueSchema, writebackSchema } from "./writeback_config.ts";

const schema = writebackSchema("`<root>/x.db`", "The queue's file.");

Deno.test("writeback config: defaults, option names and the retry cap", () => {
  assert.deepEqual(schema.parse({}, "writeback"), {
    db: undefined,
    retryIntervalMs: 30_000,
    maxRetryIntervalMs: DEFAULT_MAX_RETRY_INTERVAL_MS,
    pollIntervalMs: 15_000,
    workers: 4,
  });
  // A retry interval above the default cap raises the cap to it.
  assert.equal(schema.parse({ retry_interval: "10m" }, "writeback").maxRetryIntervalMs, 600_000);
  assert.throws(
    () => schema.parse({ retry_interval: "1m", max_retry_interval: "30s" }, "origin.writeback"),
    (e) =>
      e instanceof ConfigError &&
      e.message === "origin.writeback.max_retry_interval: must not be below retry_interval",
  );
});

Deno.test("writeback config: a queue in another queue's database has no db key", () => {
  const queue = retryQueueSchema("replication");
  assert.deepEqual(queue.parse({ poll_interval: "1s" }, "tag_replication"), {
    retryIntervalMs: 30_000,
    maxRetryIntervalMs: DEFAULT_MAX_RETRY_INTERVAL_MS,
    pollIntervalMs: 1_000,
    workers: 4,
  });
  assert.throws(() => queue.parse({ db: "x.db" }, "tag_replication"), /tag_replication\.db/);
});
