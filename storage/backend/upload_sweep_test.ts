import assert from "node:assert/strict";
import { memoryLogger } from "../../tracing/_test_util.ts";
import { MetricsRegistry } from "../../tracing/mod.ts";
import type { Backend, UploadSweepPolicy, UploadSweepResult } from "./backend.ts";
import { startUploadSweeps } from "./upload_sweep.ts";

/** A backend holding unfinished uploads of `names`; a sweep aborts those `keep` turns down. */
function sweepingBackend(names: string[], policy: Partial<UploadSweepPolicy> = {}) {
  const unfinished = new Set(names);
  let sweeps = 0;
  const backend: Backend & { unfinished: Set<string>; readonly sweeps: number } = {
    type: "s3",
    bucket: "blobs",
    unfinished,
    get sweeps() {
      return sweeps;
    },
    uploadSweep: { intervalMs: 50, minAgeMs: 0, max: 100, ...policy },
    sweepUploads(keep): Promise<UploadSweepResult> {
      sweeps++;
      const result = { found: unfinished.size, aborted: 0, kept: 0, limited: false };
      for (const name of [...unfinished]) {
        if (keep(name)) result.kept++;
        else if (result.aborted >= backend.uploadSweep!.max) {
          result.kept++;
          result.limited = true;
        } else {
          unfinished.delete(name);
          result.aborted++;
        }
      }
      return Promise.resolve(result);
    },
    stat: () => Promise.resolve(null),
    upload: () => Promise.resolve(),
    download: () => Promise.resolve(null),
    list: () => Promise.resolve({ names: [], continuationToken: "" }),
    ready: () => Promise.resolve(),
  };
  return backend;
}

Deno.test("upload sweeps: at start and every interval; pending names kept; counted and logged", async () => {
  const metrics = new MetricsRegistry();
  const logger = memoryLogger("origin");
  const backend = sweepingBackend(["a", "b", "c", "pending"], { max: 2 });
  // A backend without a sweep, and one whose interval is 0 (off), are left alone.
  const plain = { ...sweepingBackend(["x"]), uploadSweep: undefined };
  const off = sweepingBackend(["y"], { intervalMs: 0 });
  const sweeps = startUploadSweeps({
    backends: [backend, plain, off],
    pendingNames: () => ["pending"],
    metrics,
    logger,
  });
  try {
    // The start-up sweep is bounded by max (two of the three abandoned uploads), the next one
    // aborts the third.
    await waitUntil(() => backend.unfinished.size === 1);
    assert.deepEqual([...backend.unfinished], ["pending"]);
    assert.ok(backend.sweeps >= 2, "the interval swept again");
    assert.equal(plain.unfinished.size, 1);
    assert.equal(off.unfinished.size, 1);
    assert.equal(off.sweeps, 0);
    const text = metrics.render();
    assert.match(text, /kraken_backend_abandoned_uploads_aborted_total\{backend="s3"\} 3/);
    const lines = logger.lines.map((l) => JSON.parse(l)).filter((l) =>
      l.msg === "aborted abandoned uploads"
    );
    assert.ok(lines.length >= 2, logger.lines.join("\n"));
    assert.equal(lines[0].backend, "s3");
    assert.equal(lines[0].bucket, "blobs");
    assert.equal(lines[0].aborted, 2);
    assert.equal(lines[0].limited, true);
  } finally {
    await sweeps.stop();
  }
});

Deno.test("upload sweeps: a failing sweep is logged and the next interval tries again", async () => {
  const logger = memoryLogger("origin");
  const backend = sweepingBackend(["a"]);
  let failures = 1;
  const sweep = backend.sweepUploads!.bind(backend);
  backend.sweepUploads = (keep) =>
    failures-- > 0 ? Promise.reject(new Error("s3 blobs: status 503: SlowDown")) : sweep(keep);
  const sweeps = startUploadSweeps({
    backends: [backend],
    pendingNames: () => [],
    metrics: new MetricsRegistry(),
    logger,
  });
  try {
    await waitUntil(() => backend.unfinished.size === 0);
    const failed = logger.lines.map((l) => JSON.parse(l)).find((l) =>
      l.msg === "abandoned upload sweep failed"
    );
    assert.ok(failed, logger.lines.join("\n"));
    assert.match(JSON.stringify(failed), /SlowDown/);
  } finally {
    await sweeps.stop();
  }
});

async function waitUntil(done: () => boolean, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}
