import assert from "node:assert/strict";
import { stringify } from "yaml";
import { bytesSource, OriginClient, OriginClusterClient } from "../../cluster/blob_client.ts";
import { serveTestfs } from "../../storage/backend/testfs_server.ts";
import { digestOfBytes } from "../../storage/digest.ts";
import { freePorts, ProcessGroup, waitForHttp } from "../../tests/harness/procs.ts";
import { exists } from "../../tests/harness/fs.ts";
import { waitFor } from "../../tests/harness/wait.ts";
import { externalTest } from "../../tests/harness/external.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

externalTest(
  "origin processes: replication across two processes; write-back survives a restart",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "kraken-origin-procs-" });
    const [p1, p2, testfsPort] = freePorts(3);
    const hosts = [`127.0.0.1:${p1}`, `127.0.0.1:${p2}`];
    // Each origin's config sits in its own directory, which its relative paths resolve against.
    const configs = hosts.map((host, i) => {
      const path = `${dir}/o${i}/origin.yaml`;
      Deno.mkdirSync(`${dir}/o${i}`);
      Deno.writeTextFileSync(
        path,
        stringify({
          advertise: host,
          hashring: { hosts, max_replica: 2 },
          storage: { root: "store" },
          peer: { host: "127.0.0.1", port: 0 },
          backends: [{
            namespace: ".*",
            backend: { testfs: { addr: `127.0.0.1:${testfsPort}`, root: "blobs" } },
          }],
          // No periodic retry: a failed write-back is retried only when a process starts.
          writeback: { poll_interval: "1h", retry_interval: "0ms" },
          duplicate_write_back_stagger: "1h",
          tracing: { enabled: false },
        }),
      );
      return path;
    });
    const group = new ProcessGroup();
    const start = (i: number) => {
      const port = hosts[i].split(":")[1];
      const proc = group.spawnDeno(MAIN, [
        "--role=origin",
        `--config=${configs[i]}`,
        `--port=${port}`,
      ], {
        name: `origin${i}`,
      });
      return waitForHttp(`http://${hosts[i]}/health`, { process: proc }).then(() => proc);
    };
    let testfs: ReturnType<typeof serveTestfs> | undefined;
    try {
      // The port comes from --port, as an operator would give it per process.
      await Promise.all([start(0), start(1)]);
      const data = new TextEncoder().encode("blob pushed while the backend is down");
      const digest = await digestOfBytes(data);
      const cluster = new OriginClusterClient({ hosts });
      await cluster.uploadBlob("library/app", digest, bytesSource(data));
      for (const host of hosts) {
        assert.deepEqual(
          await new OriginClient(host).stat("library/app", digest, { local: true }),
          { size: data.length },
          `${host} has the blob`,
        );
      }
      // The backend is down: wait for the primary's failed attempt, then stop everything.
      const primary = (await cluster.locations(digest))[0];
      const primaryIndex = hosts.indexOf(primary);
      await waitFor(
        "failed write-back",
        () => group.processes.some((p) => p.log().includes('"msg":"write-back failed"')),
        { timeoutMs: 10_000 },
      );
      await group.stopAll();

      testfs = serveTestfs({ root: `${dir}/testfs`, port: testfsPort });
      await start(primaryIndex);
      await waitFor(
        "write-back after restart",
        () => exists(`${dir}/testfs/blobs/${digest.hex}`),
        { timeoutMs: 10_000 },
      );
      assert.deepEqual(await Deno.readFile(`${dir}/testfs/blobs/${digest.hex}`), data);
    } finally {
      await group.stopAll();
      await testfs?.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
