import assert from "node:assert/strict";
import { stringify } from "yaml";
import { bytesSource, OriginClient, OriginClusterClient } from "../../cluster/blob_client.ts";
import { serveTestfs } from "../../storage/backend/testfs_server.ts";
import { digestOfBytes } from "../../storage/digest.ts";
import { freePorts, ProcessGroup, waitForHttp } from "../../tests/harness/procs.ts";
import { exists } from "../../tests/harness/fs.ts";
import { waitFor } from "../../tests/harness/wait.ts";
import { externalTest } from "../../tests/harness/external.ts";
import { startSlowRelay } from "../../tests/harness/slow_relay.ts";

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

externalTest(
  "origin process: write-back to a slow backend succeeds under the idle timeout; a stalled one fails per idle timeout and its retries back off",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "kraken-origin-slow-backend-" });
    const testfs = serveTestfs({ root: `${dir}/backend` });
    // About 4 MiB/s, steadily: 48 MiB take 12 s, four idle timeouts of 3 s.
    const slow = startSlowRelay(testfs.addr, { toServer: { bytesPerTick: 64 * 1024, tickMs: 15 } });
    // Takes 512 KiB of each upload, then nothing more.
    const stalled = startSlowRelay(testfs.addr, {
      toServer: { bytesPerTick: 64 * 1024, tickMs: 1, stallAfterBytes: 512 * 1024 },
    });
    const group = new ProcessGroup();
    try {
      const [port] = freePorts(1);
      const host = `127.0.0.1:${port}`;
      const configPath = `${dir}/origin.yaml`;
      await Deno.writeTextFile(
        configPath,
        stringify({
          listen: { host: "127.0.0.1", port },
          hashring: { hosts: [host], max_replica: 1 },
          storage: { root: "store" },
          peer: { host: "127.0.0.1", port: 0 },
          backends: [
            {
              namespace: "^slow/",
              backend: { testfs: { addr: slow.addr, root: "blobs", idle_timeout: "3s" } },
            },
            {
              namespace: "^stalled/",
              backend: { testfs: { addr: stalled.addr, root: "blobs", idle_timeout: "500ms" } },
            },
          ],
          writeback: { retry_interval: "1s", max_retry_interval: "4s", poll_interval: "100ms" },
          tracing: { enabled: false },
        }),
      );
      const origin = group.spawnDeno(MAIN, ["--role=origin", `--config=${configPath}`], {
        name: "origin",
      });
      await waitForHttp(`http://${host}/health`, { process: origin, timeoutMs: 20_000 });
      const timeouts = async () => {
        const text = await (await fetch(`http://${host}/metrics`)).text();
        const line = text.split("\n")
          .find((l) => l.startsWith('kraken_backend_idle_timeouts_total{backend="testfs"} '));
        assert.ok(line, text);
        return Number(line.split(" ")[1]);
      };
      assert.equal(await timeouts(), 0);

      const pattern = crypto.getRandomValues(new Uint8Array(64 * 1024));
      const big = new Uint8Array(48 * 1024 * 1024);
      for (let i = 0; i < big.length; i += pattern.length) big.set(pattern, i);
      const bigDigest = await digestOfBytes(big);
      const small = new Uint8Array(4 * 1024 * 1024).fill(7);
      const smallDigest = await digestOfBytes(small);
      const client = new OriginClient(host);
      const started = Date.now();
      await client.uploadBlob("slow/app", bigDigest, bytesSource(big));
      await client.uploadBlob("stalled/app", smallDigest, bytesSource(small));

      // Every idle timeout of the stalled backend, as the metric moves.
      const failures: number[] = [];
      const bigPath = `${dir}/backend/blobs/${bigDigest.hex}`;
      let bigDoneAt: number | undefined;
      while (Date.now() - started < 40_000 && (failures.length < 4 || bigDoneAt === undefined)) {
        const n = await timeouts();
        while (failures.length < n) failures.push(Date.now());
        const written = origin.log().split("\n").some((l) =>
          l.includes('"msg":"written back"') && l.includes(bigDigest.hex)
        );
        if (bigDoneAt === undefined && written) bigDoneAt = Date.now();
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(bigDoneAt !== undefined, `the slow write-back never finished:\n${origin.log()}`);
      assert.equal((await Deno.stat(bigPath)).size, big.length);
      assert.ok(bigDoneAt - started > 3 * 3000, `the slow backend was not slow`);
      assert.ok(failures.length >= 4, `${failures.length} idle timeouts:\n${origin.log()}`);
      assert.equal(await exists(`${dir}/backend/blobs/${smallDigest.hex}`), false);
      // Attempt, idle timeout, then waits of 1, 2 and 4 s (+ up to 20 % jitter) between attempts.
      const gaps = failures.slice(1, 4).map((t, i) => t - failures[i]);
      assert.ok(gaps[0] >= 1000 && gaps[1] > gaps[0] && gaps[2] > gaps[1], gaps.join(", "));
      assert.ok(gaps[2] >= 4000, gaps.join(", "));
      // The failures are logged at a bounded rate, with the count of the ones not logged.
      const lines = origin.log().split("\n").filter((l) => l.includes('"msg":"write-back failed"'))
        .map((l) => JSON.parse(l));
      const seconds = (Date.now() - started) / 1000;
      assert.ok(lines.length >= 1 && lines.length <= 1 + Math.ceil(seconds / 10), lines.join("\n"));
      assert.match(lines[0].error.message, /no progress for 500 ms \(idle timeout\)/);
      if (lines.length > 1) assert.ok(lines[1].suppressed >= 1);
    } finally {
      await group.stopAll();
      await slow.close();
      await stalled.close();
      await testfs.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
