import assert from "node:assert/strict";
import { stringify } from "yaml";
import { externalTest } from "../../tests/harness/external.ts";
import { freePorts, ProcessGroup, waitForHttp } from "../../tests/harness/procs.ts";
import { waitFor } from "../../tests/harness/wait.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const DIGEST = `sha256:${"ab".repeat(32)}`;
const CHUNK = new Uint8Array(10 * 1024).fill(7);

async function uploadFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(`${dir}/store/uploads`)) names.push(entry.name);
  return names.sort();
}

/** The value of one series on `/metrics`, or undefined when it is absent. */
async function metric(base: string, series: string): Promise<number | undefined> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

externalTest(
  "origin process: idle upload sessions expire after upload_cleanup.tti, open ones are capped (429), both on /metrics",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "kraken-origin-uploads-" });
    const [port] = freePorts(1);
    const base = `http://127.0.0.1:${port}`;
    const configPath = `${dir}/origin.yaml`;
    await Deno.writeTextFile(
      configPath,
      stringify({
        listen: { host: "127.0.0.1", port },
        storage: { root: "store" },
        peer: { host: "127.0.0.1", port: 0 },
        upload_cleanup: { interval: "200ms", tti: "3s" },
        max_upload_sessions: 20,
        tracing: { enabled: false },
      }),
    );
    await using group = new ProcessGroup();
    const origin = group.spawnDeno(MAIN, ["--role=origin", `--config=${configPath}`], {
      name: "origin",
    });
    await waitForHttp(`${base}/health`, { process: origin });
    try {
      // Abandoned pushes: a session each, 10 KB staged, never committed.
      const uids: string[] = [];
      for (let i = 0; i < 20; i++) {
        const start = await fetch(`${base}/namespace/ns/blobs/${DIGEST}/uploads`, {
          method: "POST",
        });
        await start.body?.cancel();
        assert.equal(start.status, 200);
        const uid = start.headers.get("location")!;
        const patch = await fetch(`${base}/namespace/ns/blobs/${DIGEST}/uploads/${uid}`, {
          method: "PATCH",
          headers: { "content-range": `0-${CHUNK.length}` },
          body: CHUNK,
        });
        await patch.body?.cancel();
        assert.equal(patch.status, 200);
        uids.push(uid);
      }
      assert.equal((await uploadFiles(dir)).length, 20);
      assert.equal(await metric(base, "kraken_origin_upload_sessions"), 20);

      // The cap: the 21st and 22nd sessions are refused with a message, counted, logged once.
      for (let i = 0; i < 2; i++) {
        const refused = await fetch(`${base}/namespace/ns/blobs/${DIGEST}/uploads`, {
          method: "POST",
        });
        assert.equal(refused.status, 429);
        assert.match(
          await refused.text(),
          /too many open upload sessions \(max_upload_sessions 20\)/,
        );
      }
      assert.equal(await metric(base, "kraken_origin_upload_sessions_refused_total"), 2);
      await waitFor("the refusal log line", () => origin.log().includes("upload session limit"));
      assert.equal(origin.log().split("upload session limit").length - 1, 1, "rate-limited");

      // One session stays in use: it is written to more often than the idle time.
      const [kept] = uids;
      const started = Date.now();
      const keepAlive = (async () => {
        while (Date.now() - started < 6_000) {
          const res = await fetch(`${base}/namespace/ns/blobs/${DIGEST}/uploads/${kept}`, {
            method: "PATCH",
            headers: { "content-range": `0-${CHUNK.length}` },
            body: CHUNK,
          });
          await res.body?.cancel();
          assert.equal(res.status, 200, "the session in use is kept");
          await new Promise((r) => setTimeout(r, 500));
        }
      })();
      await waitFor(
        "the idle sessions to expire",
        async () => (await uploadFiles(dir)).length === 1,
        {
          timeoutMs: 15_000,
        },
      );
      await keepAlive;
      assert.deepEqual(await uploadFiles(dir), [kept]);
      assert.equal(await metric(base, "kraken_origin_upload_sessions_expired_total"), 19);
      assert.equal(await metric(base, "kraken_origin_upload_sessions"), 1);
      assert.match(origin.log(), /expired idle upload sessions/);

      // Room again: a new session starts.
      const again = await fetch(`${base}/namespace/ns/blobs/${DIGEST}/uploads`, { method: "POST" });
      await again.body?.cancel();
      assert.equal(again.status, 200);
    } finally {
      await group.stopAll();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
