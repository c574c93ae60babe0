import assert from "node:assert/strict";
import { stringify } from "yaml";
import { encodeAnnounceRequest, type PeerInfo } from "../../wire/announce.ts";
import { parseDigest } from "../../storage/digest.ts";
import { InfoHash } from "../../storage/metainfo.ts";
import { externalTest } from "../../tests/harness/external.ts";
import { freePorts, ProcessGroup, waitForHttp } from "../../tests/harness/procs.ts";
import { startFakeOrigin, startRedis } from "./_test_util.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

function metric(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  assert.ok(line, `${series} missing from /metrics:\n${text}`);
  return Number(line.split(" ")[1]);
}

externalTest(
  "tracker process: Redis stopped under it — bounded error log with counts, metrics and readiness show it, recovery is noticed",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "kraken-tracker-redis-" });
    const [trackerPort, redisPort] = freePorts(2);
    let redis = await startRedis(redisPort);
    const origin = startFakeOrigin();
    const group = new ProcessGroup();
    try {
      const configPath = `${dir}/tracker.yaml`;
      await Deno.writeTextFile(
        configPath,
        stringify({
          listen: { host: "127.0.0.1", port: trackerPort },
          origins: { hosts: [origin.addr] },
          peerstore: { type: "redis", redis: { addr: redis.addr, dial_timeout: "500ms" } },
          tracing: { enabled: false },
        }),
      );
      const tracker = group.spawnDeno(MAIN, ["--role=tracker", `--config=${configPath}`], {
        name: "tracker",
      });
      const base = `http://127.0.0.1:${trackerPort}`;
      await waitForHttp(`${base}/readiness`, { process: tracker, timeoutMs: 20_000 });
      const digest = parseDigest(`sha256:${"5a".repeat(32)}`);
      const infoHash = InfoHash.fromHex("ab".repeat(20));
      const announce = async (n: number) => {
        const peer: PeerInfo = {
          peerId: n.toString(16).padStart(40, "0"),
          ip: "10.0.0.1",
          port: 16000 + (n % 1000),
          origin: false,
          complete: false,
        };
        const res = await fetch(`${base}/announce/${infoHash.hex}`, {
          method: "POST",
          body: encodeAnnounceRequest({ digest, infoHash, peer }),
        });
        await res.body?.cancel();
        return res.status;
      };
      assert.equal(await announce(0), 200);
      let text = await (await fetch(`${base}/metrics`)).text();
      assert.equal(metric(text, `kraken_tracker_peer_store_up{store="redis"}`), 1);
      assert.equal(metric(text, `kraken_tracker_peer_store_errors_total{store="redis"}`), 0);

      await redis.stop();
      const N = 500;
      const started = performance.now();
      for (let i = 1; i <= N; i += 50) {
        const statuses = await Promise.all(Array.from({ length: 50 }, (_, j) => announce(i + j)));
        // The handout falls back to the origins: announces keep working.
        assert.deepEqual(new Set(statuses), new Set([200]));
      }
      const seconds = (performance.now() - started) / 1000;
      text = await (await fetch(`${base}/metrics`)).text();
      assert.equal(metric(text, `kraken_tracker_peer_store_up{store="redis"}`), 0);
      // Every announce failed both its update and its read.
      assert.ok(metric(text, `kraken_tracker_peer_store_errors_total{store="redis"}`) >= 2 * N);
      const ready = await fetch(`${base}/readiness`);
      assert.equal(ready.status, 503);
      assert.match(await ready.text(), /^not ready to serve traffic: peer store: /);

      const logLines = () =>
        tracker.log().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
      const errors = logLines().filter((l) => l.level === "error");
      // One line per 10 s interval at most, each counting what it suppressed.
      assert.ok(
        errors.length >= 1 && errors.length <= 2 + Math.ceil(seconds / 10),
        `${errors.length} error lines for ${2 * N} failures in ${seconds.toFixed(1)} s:\n` +
          errors.map((l) => JSON.stringify(l)).join("\n"),
      );
      assert.ok(errors.every((l) => l.msg === "peer store error"), JSON.stringify(errors));

      redis = await startRedis(redisPort);
      await waitForHttp(`${base}/readiness`, { process: tracker, timeoutMs: 20_000 });
      assert.equal(await announce(N + 1), 200);
      text = await (await fetch(`${base}/metrics`)).text();
      assert.equal(metric(text, `kraken_tracker_peer_store_up{store="redis"}`), 1);
      const recovered = logLines().filter((l) => l.msg === "peer store recovered");
      assert.equal(recovered.length, 1);
      assert.ok(recovered[0].failures >= 2 * N);
    } finally {
      await group.stopAll();
      await origin.stop();
      await redis.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
