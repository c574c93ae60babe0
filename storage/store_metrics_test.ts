import assert from "node:assert/strict";
import { MetricsRegistry } from "../tracing/mod.ts";
import { BlobStore } from "./blob_store.ts";
import { digestOfBytes } from "./digest.ts";
import { registerStoreMetrics } from "./store_metrics.ts";

function value(registry: MetricsRegistry, name: string): number {
  const line = registry.render().split("\n").find((l) => l.startsWith(name + " "));
  assert.ok(line, `${name} in ${registry.render()}`);
  return Number(line.split(" ")[1]);
}

Deno.test("store metrics: blobs and bytes follow commits and deletes, and survive a reopen", async () => {
  const root = await Deno.makeTempDir({ prefix: "store-metrics-" });
  try {
    const store = await BlobStore.open({ root });
    const registry = new MetricsRegistry();
    registerStoreMetrics(registry, store);
    assert.equal(value(registry, "kraken_storage_blobs"), 0);
    const a = new TextEncoder().encode("first blob");
    const b = new TextEncoder().encode("second, longer blob");
    await store.putBlob(await digestOfBytes(a), a);
    await store.putBlob(await digestOfBytes(b), b);
    await store.putBlob(await digestOfBytes(b), b); // already there: not counted twice
    assert.equal(value(registry, "kraken_storage_blobs"), 2);
    assert.equal(value(registry, "kraken_storage_bytes"), a.length + b.length);
    assert.equal(await store.delete(await digestOfBytes(a)), true);
    assert.equal(await store.delete(await digestOfBytes(a)), false);
    assert.equal(value(registry, "kraken_storage_blobs"), 1);
    assert.equal(value(registry, "kraken_storage_bytes"), b.length);
    assert.equal(value(registry, "kraken_storage_blobs_deleted_total"), 1);
    assert.ok(value(registry, "kraken_storage_disk_free_bytes") > 0);
    assert.ok(
      value(registry, "kraken_storage_disk_size_bytes") >=
        value(registry, "kraken_storage_disk_free_bytes"),
    );
    const reopened = await BlobStore.open({ root });
    assert.deepEqual(reopened.usage, { blobs: 1, bytes: b.length, deleted: 0 });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
