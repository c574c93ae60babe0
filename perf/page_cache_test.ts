import assert from "node:assert/strict";
import { externalTest } from "../tests/harness/external.ts";
import { measurePageCacheWrite, parsePageState, recyclePages, writeTwice } from "./page_cache.ts";

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

Deno.test("recyclePages: creates the scratch file, then deletes it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const watcher = Deno.watchFs(dir);
    const seen = new Set<string>();
    const watching = (async () => {
      for await (const event of watcher) {
        for (const path of event.paths) seen.add(`${event.kind} ${path.slice(dir.length + 1)}`);
      }
    })();
    await recyclePages(dir, 9 * 1024 * 1024 + 7);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dir)), []);
    await new Promise((r) => setTimeout(r, 100));
    watcher.close();
    await watching;
    assert.ok(seen.has("create recycled-pages"), [...seen].join(", "));
    assert.ok(seen.has("remove recycled-pages"), [...seen].join(", "));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parsePageState: recycled or fresh, anything else refused by name", () => {
  assert.equal(parsePageState("recycled"), "recycled");
  assert.equal(parsePageState("fresh"), "fresh");
  assert.throws(() => parsePageState("warm"), /--pages=warm: expected recycled or fresh/);
});
