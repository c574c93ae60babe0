/**
 * `scripts/demo.ts` end to end, as `npm run demo` runs it: the default on testfs, and
 * `--backend=s3` with the origins on moto's S3 server (the write-backs are in the bucket and in the
 * push traces as `backend.upload` with their `PUT /{bucket}/{key+}` client spans). Without moto, or
 * with an unknown backend, the demo says so and exits non-zero before starting anything.
 */

import assert from "node:assert/strict";

const DEMO = new URL("../scripts/demo.ts", import.meta.url).pathname;

async function runDemo(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", DEMO, ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code, out: text.decode(stdout) + text.decode(stderr) };
}

/** What every demo run prints: three pulls of the image and its traces. */
function assertPulledEverywhere(out: string): void {
  assert.match(out, /agent 1 pulled demo\/app:v1 \(4 blobs/, out);
  assert.match(out, /agent 2 pulled demo\/app:v1 \(4 blobs/, out);
  assert.match(out, /zone-b's agent pulled the replicated demo\/app:v1 \(4 blobs/, out);
  assert.match(out, /── push: blob upload sha256:/, out);
  assert.match(out, /── pull: sha256:[0-9a-f]{64} on agent 2/, out);
}

Deno.test("demo: the default cluster on testfs pushes, pulls and prints its traces", async () => {
  const { code, out } = await runDemo([]);
  assert.equal(code, 0, out);
  assert.match(out, /starting testfs, 2 origins/, out);
  assertPulledEverywhere(out);
  assert.doesNotMatch(out, /\{bucket\}/, out);
});

Deno.test("demo: --backend=s3 writes the origins' blobs to moto's S3 server", async () => {
  const { code, out } = await runDemo(["--backend=s3"]);
  assert.equal(code, 0, out);
  assert.match(out, /moto's S3 server at http:\/\/127\.0\.0\.1:\d+/, out);
  // Three layers, the config and the manifest.
  assert.match(out, /bucket zone-a-blobs holds 5 objects/, out);
  assertPulledEverywhere(out);
  assert.match(out, /backend\.upload[\s\S]*PUT \/\{bucket\}\/\{key\+\}/, out);
});

Deno.test("demo: --backend=s3 without moto, or an unknown backend, stops with a message", async () => {
  const missing = await runDemo(["--backend=s3"], { MOTO_SERVER_BIN: "/nonexistent/moto_server" });
  assert.equal(missing.code, 1, missing.out);
  assert.match(missing.out, /needs moto's S3 server, which is not installed at \/nonexistent/);
  assert.match(missing.out, /scripts\/setup\.sh/);
  const unknown = await runDemo(["--backend=hdfs"]);
  assert.equal(unknown.code, 2, unknown.out);
  assert.match(unknown.out, /unknown --backend=hdfs; one of testfs, s3/);
});
