import assert from "node:assert/strict";
import { externalTest } from "../tests/harness/external.ts";
import { measurePageCacheWrite, writeTwice } from "./page_cache.ts";

externalTest("writeTwice: both writes measured, no file left behind", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await writeTwice(dir, 8 * 1024 * 1024 + 5);
    assert.equal(r.bytes, 8 * 1024 * 1024 + 5);
    assert.ok(r.freshCpuSecondsPerGiB >= 0 && Number.isFinite(r.freshCpuSecondsPerGiB));
    assert.ok(r.reusedCpuSecondsPerGiB >= 0 && Number.isFinite(r.reusedCpuSecondsPerGiB));
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dir)), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

externalTest(
  "measurePageCacheWrite: the child's figures, and its error when the directory is missing",
  async () => {
    const dir = await Deno.makeTempDir();
    try {
      const r = await measurePageCacheWrite({ dir, bytes: 4 * 1024 * 1024 });
      assert.equal(r.bytes, 4 * 1024 * 1024);
      assert.ok(Number.isFinite(r.freshCpuSecondsPerGiB));
      await assert.rejects(
        measurePageCacheWrite({ dir: `${dir}/missing`, bytes: 1024 }),
        /page-cache write: .*No such file/s,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
