/**
 * When does Redis, the trackers' shared peer store, become the limit? `npm run perf` starts a real
 * `redis-server` and one tracker (tracing off) on it, fires announces with several in flight from
 * a pool of torrents and peers, and reads the CPU time of both processes: the tracker's and
 * Redis's CPU per announce say how many announces per second one tracker core and Redis's one core
 * serve, and so how many trackers one Redis carries.
 *
 * @module
 */

import { startDownloadCluster } from "../tests/harness/cluster.ts";
import { freePort, freePorts, type ProcessGroup, waitForTcp } from "../tests/harness/procs.ts";
import { digestOfBytes } from "../storage/digest.ts";
import { InfoHash } from "../storage/metainfo.ts";
import { ANNOUNCE, encodeAnnounceRequest } from "../wire/announce.ts";
import { expand } from "../wire/route.ts";
import { cpuSeconds, requestTimeout } from "./e2e.ts";
import { pool } from "./e2e_completeness.ts";
import type { RedisFigures } from "./report.ts";

/** Options of {@linkcode measureRedisAnnounces}. */
export interface RedisAnnounceOptions {
  /** Directory for the cluster's data and logs. */
  dir: string;
  /** Owns every process started. */
  group: ProcessGroup;
  /** Announces to send (after 200 untimed ones). */
  announces: number;
  /** Announces in flight (default 16). */
  concurrency?: number;
  /** Time bound, ms (default 60 000). */
  maxMs?: number;
}

/** Starts Redis and a tracker on it, and measures announces against them. */
export async function measureRedisAnnounces(
  options: RedisAnnounceOptions,
): Promise<RedisFigures> {
  const { dir, group } = options;
  const concurrency = options.concurrency ?? 16;
  const maxMs = options.maxMs ?? 60_000;
  const redisPort = freePort();
  const redis = group.spawn("redis-server", [
    "--save",
    "",
    "--appendonly",
    "no",
    "--port",
    String(redisPort),
    "--bind",
    "127.0.0.1",
  ], { name: "redis-server", logFile: `${dir}/redis.log` });
  await waitForTcp("127.0.0.1", redisPort, { process: redis });
  const cluster = await startDownloadCluster({ dir, group, agents: 0, origins: 1 });
  const [trackerPort] = freePorts(1);
  const tracker = await cluster.startRole("tracker", "tracker-redis", trackerPort, {
    listen: { host: "127.0.0.1", port: trackerPort },
    origins: { hosts: cluster.origins.map((o) => o.addr) },
    peerstore: { type: "redis", redis: { addr: `127.0.0.1:${redisPort}` } },
  });
  const torrents = await Promise.all(Array.from({ length: 64 }, async (_, t) => {
    const d = await digestOfBytes(new TextEncoder().encode(`perf redis torrent ${t}`));
    return { digest: d, infoHash: InfoHash.fromHex(d.hex.slice(0, 40)) };
  }));
  const announce = async (i: number) => {
    const t = torrents[i % torrents.length];
    const res = await fetch(
      `${tracker.url}${expand(ANNOUNCE, { infohash: t.infoHash.hex })}`,
      {
        method: "POST",
        signal: requestTimeout(),
        headers: { "content-type": "application/json" },
        body: encodeAnnounceRequest({
          digest: t.digest,
          infoHash: t.infoHash,
          peer: {
            peerId: (i % 1000).toString(16).padStart(40, "0"),
            ip: "127.0.0.1",
            port: 20_000 + (i % 1000),
            origin: false,
            complete: i % 4 === 0,
          },
        }),
      },
    );
    const text = await res.text();
    if (res.status !== 200) throw new Error(`announce: HTTP ${res.status}: ${text}`);
  };
  await pool(200, concurrency, announce);
  const before = await Promise.all([tracker.process.pid, redis.pid].map(cpuSeconds));
  const started = performance.now();
  const deadline = started + maxMs;
  let done = 0;
  await pool(options.announces, concurrency, async (i) => {
    if (performance.now() > deadline) return;
    await announce(200 + i);
    done++;
  });
  const seconds = (performance.now() - started) / 1000;
  const after = await Promise.all([tracker.process.pid, redis.pid].map(cpuSeconds));
  return {
    announces: done,
    perSecond: done / seconds,
    trackerCpuMicros: ((after[0] - before[0]) * 1e6) / done,
    redisCpuMicros: ((after[1] - before[1]) * 1e6) / done,
    concurrency,
  };
}
