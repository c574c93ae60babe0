/**
 * Benchmark (not a timed test): one origin process writes a large blob back to S3 (moto's server,
 * as in the tests), and this reports the write-back throughput and the origin's peak RSS (`VmHWM`).
 * The blob is uploaded to the origin first (8 MiB chunks); the write-back clock runs from the end of
 * that upload until the object is listed in the bucket. Peak RSS is reported for each phase: the
 * kernel's high-water mark is reset (`/proc/<pid>/clear_refs`) between them.
 *
 *     deno run -A bench/s3_writeback.ts [--size=2GiB] [--part-size=64MB] [--concurrency=10]
 *
 * @module
 */

import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import { parseByteSize } from "../common/byte_size.ts";
import { OriginClient } from "../cluster/blob_client.ts";
import { Digest } from "../storage/digest.ts";
import { freePorts, spawnDeno, waitForHttp } from "../tests/harness/procs.ts";
import { S3_REGION, startS3 } from "../tests/harness/s3.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "2GiB" },
    "part-size": { type: "string", default: "64MB" },
    concurrency: { type: "string", default: "10" },
  },
});
const size = parseByteSize(values.size!);
const dir = await Deno.makeTempDir({ prefix: "kraken-s3-bench-" });
const s3 = await startS3({ buckets: ["bench"] });
try {
  // The blob: a file on disk, hashed as it is written.
  const blobPath = `${dir}/blob`;
  const hash = createHash("sha256");
  const chunk = crypto.getRandomValues(new Uint8Array(1 << 16));
  const file = await Deno.open(blobPath, { write: true, create: true });
  for (let written = 0; written < size;) {
    const n = Math.min(chunk.length, size - written);
    // Vary each chunk so no part repeats another.
    chunk[0] = written & 0xff;
    chunk[1] = (written >>> 8) & 0xff;
    chunk[2] = (written >>> 16) & 0xff;
    chunk[3] = (written >>> 24) & 0xff;
    const part = chunk.subarray(0, n);
    hash.update(part);
    let off = 0;
    while (off < n) off += await file.write(part.subarray(off));
    written += n;
  }
  file.close();
  const digest = Digest.fromHex(hash.digest("hex"));

  const [port, peerPort] = freePorts(2);
  const configPath = `${dir}/origin.yaml`;
  await Deno.writeTextFile(
    configPath,
    JSON.stringify({
      listen: { host: "127.0.0.1", port },
      peer: { host: "127.0.0.1", port: peerPort },
      storage: { root: `${dir}/origin` },
      backends: [{
        namespace: ".*",
        backend: {
          s3: {
            region: S3_REGION,
            bucket: "bench",
            endpoint: s3.endpoint,
            force_path_style: true,
            root_directory: "/kraken/",
            upload_part_size: values["part-size"],
            upload_concurrency: Number(values.concurrency),
          },
        },
      }],
      writeback: { retry_interval: "1s", poll_interval: "1s" },
      tracing: { enabled: false },
    }),
  );
  const origin = spawnDeno(
    new URL("../main.ts", import.meta.url).pathname,
    ["--role=origin", `--config=${configPath}`],
    {
      name: "origin",
      env: {
        AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
      },
    },
  );
  try {
    await waitForHttp(`http://127.0.0.1:${port}/health`, { process: origin });
    const client = new OriginClient(`127.0.0.1:${port}`, {
      fetch: (url, init) => fetch(url, init),
      chunkSize: 8 * 1024 * 1024,
      commitTimeoutMs: 30 * 60_000,
    });
    const started = performance.now();
    await client.uploadBlob("bench", digest, {
      size,
      open: async () => (await Deno.open(blobPath, { read: true })).readable,
    });
    const uploaded = performance.now();
    // Peak RSS of the upload into the cache, then reset (Linux `clear_refs` 5) for the write-back.
    const hwm = async () =>
      Number(/VmHWM:\s+(\d+) kB/.exec(await Deno.readTextFile(`/proc/${origin.pid}/status`))?.[1]);
    const uploadHwmKiB = await hwm();
    await Deno.writeTextFile(`/proc/${origin.pid}/clear_refs`, "5");
    const key = `kraken/${digest.hex}`;
    while (!(await s3.listKeys("bench")).includes(key)) {
      if (origin.exited) throw new Error(`origin exited:\n${origin.log().slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const done = performance.now();
    const hwmKiB = await hwm();
    const mb = size / 1e6;
    const parts = s3.requests().filter((r) =>
      r.method === "PUT" && r.target.includes("partNumber=")
    );
    console.log(JSON.stringify(
      {
        size,
        partSize: values["part-size"],
        concurrency: Number(values.concurrency),
        uploadToOriginSeconds: +((uploaded - started) / 1000).toFixed(1),
        writeBackSeconds: +((done - uploaded) / 1000).toFixed(1),
        writeBackMBps: +(mb / ((done - uploaded) / 1000)).toFixed(1),
        totalMBps: +(mb / ((done - started) / 1000)).toFixed(1),
        originPeakRssUploadMB: +(uploadHwmKiB / 1024).toFixed(1),
        originPeakRssWriteBackMB: +(hwmKiB / 1024).toFixed(1),
        partsSent: parts.length,
      },
      null,
      2,
    ));
  } finally {
    await origin.stop();
  }
} finally {
  await s3.stop();
  await Deno.remove(dir, { recursive: true });
}
