import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { bytesSource, OriginClient, OriginClusterClient } from "../../cluster/blob_client.ts";
import { serveTestfs } from "../../storage/backend/testfs_server.ts";
import { digestOfBytes } from "../../storage/digest.ts";
import { freePorts } from "../../tests/harness/procs.ts";
import { exists } from "../../tests/harness/fs.ts";
import { waitFor } from "../../tests/harness/wait.ts";
import { startTestOrigin, startTestRing, type TestOrigin } from "./_test_util.ts";

const enc = new TextEncoder();

interface Cluster {
  origins: TestOrigin[];
  dir: string;
  testfsDir: string;
}

/** Two origins on one ring, both writing back to one testfs server. */
async function withCluster(fn: (c: Cluster) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kraken-origin-cluster-" });
  const testfsDir = `${dir}/testfs`;
  const testfs = serveTestfs({ root: testfsDir });
  const origins: TestOrigin[] = [];
  try {
    origins.push(
      ...await startTestRing(2, {
        hashring: { max_replica: 2 },
        backends: [{ namespace: ".*", backend: { testfs: { addr: testfs.addr, root: "blobs" } } }],
        writeback: { poll_interval: "50ms", retry_interval: "0ms" },
        duplicate_write_back_stagger: "1h",
      }, { baseDir: dir }),
    );
    await fn({ origins, dir, testfsDir });
  } finally {
    for (const o of origins) await o.stop();
    await testfs.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("origin cluster: an upload replicates to the other ring member and is written back once", () =>
  withCluster(async ({ origins, dir, testfsDir }) => {
    const data = enc.encode("replicated layer ".repeat(50));
    const digest = await digestOfBytes(data);
    const cluster = new OriginClusterClient({ hosts: origins.map((o) => o.addr) });
    const locations = await cluster.locations(digest);
    assert.deepEqual([...locations].sort(), origins.map((o) => o.advertise).sort());

    await cluster.uploadBlob("library/app", digest, bytesSource(data));
    for (const o of origins) {
      assert.deepEqual(
        await new OriginClient(o.addr).stat("library/app", digest, { local: true }),
        { size: data.length },
        `${o.advertise} has the blob`,
      );
      const mi = await new OriginClient(o.addr).getMetaInfo("library/app", digest);
      assert.equal(mi.length, data.length);
    }

    // The first location writes back now; the replica's copy waits for its stagger (1h).
    await waitFor("write-back", () => exists(`${testfsDir}/blobs/${digest.hex}`));
    assert.deepEqual(await Deno.readFile(`${testfsDir}/blobs/${digest.hex}`), data);
    const replicaIndex = origins.findIndex((o) => o.advertise === locations[1]);
    const db = new DatabaseSync(`${dir}/o${replicaIndex}/origin.db`, { readOnly: true });
    try {
      const rows = db.prepare("SELECT namespace, name, delay FROM writeback_task").all();
      assert.deepEqual(rows.map((r) => ({ ...r })), [
        { namespace: "library/app", name: digest.hex, delay: 3_600_000_000_000 },
      ]);
    } finally {
      db.close();
    }
    const cluster2 = new OriginClusterClient({ hosts: [origins[1].addr] });
    assert.equal(
      await new Response(await cluster2.downloadBlob("library/app", digest)).text(),
      new TextDecoder().decode(data),
    );
  }));

Deno.test("origin cluster: a blob fetched from the backend is pushed to the other replica", () =>
  withCluster(async ({ origins, testfsDir }) => {
    const data = enc.encode("cold blob, only in the backend");
    const digest = await digestOfBytes(data);
    await Deno.mkdir(`${testfsDir}/blobs`, { recursive: true });
    await Deno.writeFile(`${testfsDir}/blobs/${digest.hex}`, data);
    const cluster = new OriginClusterClient({
      hosts: origins.map((o) => o.addr),
      poll: { initialMs: 20, maxIntervalMs: 50 },
    });
    const body = await cluster.downloadBlob("ns", digest);
    assert.equal(await new Response(body).text(), "cold blob, only in the backend");
    for (const o of origins) {
      await waitFor(
        `${o.advertise} has the blob`,
        async () => (await new OriginClient(o.addr).stat("ns", digest, { local: true })) !== null,
      );
    }
  }));

Deno.test("origin cluster: replication failure is logged, not fatal", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kraken-origin-cluster-" });
  const [port, deadPort] = freePorts(2);
  const self = `127.0.0.1:${port}`;
  const origin = await startTestOrigin({
    listen: { host: "127.0.0.1", port },
    hashring: { hosts: [self, `127.0.0.1:${deadPort}`], max_replica: 2 },
    storage: { root: "store" },
    peer: { host: "127.0.0.1", port: 0 },
  }, { baseDir: dir });
  try {
    const data = enc.encode("lonely");
    const digest = await digestOfBytes(data);
    await new OriginClient(origin.addr).uploadBlob("ns", digest, bytesSource(data));
    assert.ok(
      origin.logs.some((l) => l.includes('"msg":"replication failed"')),
      origin.logs.join("\n"),
    );
    assert.deepEqual(await new OriginClient(origin.addr).stat("ns", digest, { local: true }), {
      size: 6,
    });
  } finally {
    await origin.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
