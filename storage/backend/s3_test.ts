import assert from "node:assert/strict";
import { externalTest } from "../../tests/harness/external.ts";
import { type S3Server, startS3 } from "../../tests/harness/s3.ts";
import { bytesSource, type UploadSource } from "./backend.ts";
import { describeS3Error, S3Backend, type S3BackendOptions } from "./s3.ts";
import { BackendRequestError } from "./transport.ts";

const MiB = 1024 * 1024;
const HEX = "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d";

function data(size: number, seed = 7): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

async function readAll(stream: ReadableStream<Uint8Array> | null): Promise<Uint8Array> {
  assert.ok(stream);
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function withS3(
  fn: (s3: S3Server, backend: (extra?: Partial<S3BackendOptions>) => S3Backend) => Promise<void>,
): Promise<void> {
  const s3 = await startS3({ buckets: ["blobs"] });
  try {
    await fn(s3, (extra = {}) =>
      new S3Backend({
        region: "us-east-1",
        bucket: "blobs",
        endpoint: s3.endpoint,
        forcePathStyle: true,
        rootDirectory: "/kraken/",
        credentials: s3.credentials,
        retry: { initialMs: 5, maxMs: 20 },
        ...extra,
      }));
  } finally {
    await s3.stop();
  }
}

/** Parts uploaded (`UploadPart` answered 200) for `key`, from moto's log. */
function partsSent(s3: S3Server, key: string): number[] {
  return s3.requests()
    .filter((r) => r.method === "PUT" && r.status === 200 && r.target.startsWith(`/blobs/${key}?`))
    .map((r) => Number(new URLSearchParams(r.target.split("?")[1]).get("partNumber")))
    .filter((n) => n > 0);
}

externalTest(
  "s3: stat, put, ranged and streamed get, list with continuation tokens",
  () =>
    withS3(async (s3, backend) => {
      const b = backend({ listMaxKeys: 2 });
      await b.ready();
      assert.equal(await b.stat("ns", HEX), null);
      assert.equal(await b.download("ns", HEX), null);
      const bytes = data(100_000);
      const result = await b.upload("ns", HEX, bytes);
      assert.deepEqual(result, { key: `kraken/${HEX}`, parts: 1, partsSent: 1 });
      assert.deepEqual(await b.stat("ns", HEX), { size: bytes.length });
      assert.deepEqual(await readAll(await b.download("ns", HEX)), bytes);
      assert.deepEqual(
        await readAll(await b.download("ns", HEX, { offset: 1000, length: 5000 })),
        bytes.subarray(1000, 6000),
      );
      assert.deepEqual(
        await readAll(await b.download("ns", HEX, { offset: 99_990 })),
        bytes.subarray(99_990),
      );
      await assert.rejects(b.download("ns", HEX, { offset: 99_999, length: 2 }), RangeError);
      // Keys land under the root directory, as upstream lays them out.
      assert.deepEqual(await s3.listKeys("blobs"), [`kraken/${HEX}`]);
      for (const name of ["a1", "a2", "a3", "b1"]) {
        await b.upload("ns", name, new TextEncoder().encode(name));
      }
      await s3.putObject("blobs", "elsewhere/x", new Uint8Array([1]));
      // Without maxKeys every page is read (pages of 2 here).
      assert.deepEqual((await b.list("")).names.sort(), ["a1", "a2", "a3", "b1", HEX].sort());
      // The prefix is a key prefix, as upstream's ListObjectsV2 call (not a directory).
      assert.deepEqual((await b.list("a")).names, ["a1", "a2", "a3"]);
      const first = await b.list("", { maxKeys: 3 });
      assert.equal(first.names.length, 3);
      assert.notEqual(first.continuationToken, "");
      const rest = await b.list("", { maxKeys: 3, continuationToken: first.continuationToken });
      assert.deepEqual(
        [...first.names, ...rest.names].sort(),
        ["a1", "a2", "a3", "b1", HEX].sort(),
      );
      assert.equal(rest.continuationToken, "");
    }),
);

externalTest(
  "s3: a blob above the part size goes multipart and streams from its source",
  () =>
    withS3(async (s3, backend) => {
      const b = backend({ uploadPartSize: 5 * MiB, uploadConcurrency: 2 });
      const bytes = data(12 * MiB + 3);
      let opened = 0;
      const base = bytesSource(bytes);
      const source: UploadSource = { size: base.size, open: (s, e) => (opened++, base.open(s, e)) };
      const result = await b.upload("ns", HEX, source);
      assert.deepEqual(result, { key: `kraken/${HEX}`, parts: 3, partsSent: 3, partsResumed: 0 });
      assert.equal(opened, 3, "each part reads its own range of the source");
      assert.deepEqual(partsSent(s3, `kraken/${HEX}`).sort(), [1, 2, 3]);
      assert.deepEqual(await s3.getObject("blobs", `kraken/${HEX}`), bytes);
      // A stream of unknown size is cut into buffered parts.
      const other = "ab".repeat(32);
      await b.upload("ns", other, new Blob([bytes]).stream());
      assert.deepEqual(await s3.getObject("blobs", `kraken/${other}`), bytes);
    }),
);

externalTest(
  "s3: a failed multipart upload resumes: only the missing parts are sent again",
  () =>
    withS3(async (s3, backend) => {
      const b = backend({
        uploadPartSize: 5 * MiB,
        uploadConcurrency: 1,
        retry: { attempts: 2, initialMs: 1, maxMs: 1 },
      });
      const bytes = data(21 * MiB);
      const base = bytesSource(bytes);
      // The source fails from the 4th part on (a network error on every attempt of it).
      const failing: UploadSource = {
        size: base.size,
        open: (start = 0, end) =>
          start >= 15 * MiB
            ? Promise.reject(new TypeError("connection reset"))
            : base.open(start, end),
      };
      await assert.rejects(b.upload("ns", HEX, failing), /connection reset/);
      assert.deepEqual(partsSent(s3, `kraken/${HEX}`), [1, 2, 3]);
      const result = await b.upload("ns", HEX, base);
      assert.deepEqual(result, { key: `kraken/${HEX}`, parts: 5, partsSent: 2, partsResumed: 3 });
      assert.deepEqual(partsSent(s3, `kraken/${HEX}`), [1, 2, 3, 4, 5]);
      assert.deepEqual(await s3.getObject("blobs", `kraken/${HEX}`), bytes);
      // Nothing is left unfinished.
      const uploads = s3.requests().filter((r) => r.target.startsWith("/blobs?uploads"));
      assert.ok(uploads.length >= 2);
    }),
);

externalTest(
  "s3: wrong credentials and a missing bucket fail at once with the store's message",
  () =>
    withS3(async (s3, backend) => {
      const secret = "not-the-secret-0123456789";
      const wrong = backend({ credentials: { ...s3.credentials, secretAccessKey: secret } });
      await assert.rejects(
        wrong.ready(),
        (e: Error) => e instanceof BackendRequestError && e.status === 403,
      );
      await assert.rejects(
        wrong.upload("ns", HEX, new Uint8Array(10)),
        (e: Error) =>
          e instanceof BackendRequestError && e.code === "SignatureDoesNotMatch" &&
          !e.message.includes(secret),
      );
      assert.equal(wrong.stats.retries, 0, "a 403 is not retried");
      const unknown = backend({
        credentials: { accessKeyId: "AKIANOSUCHKEY0000000", secretAccessKey: secret },
      });
      await assert.rejects(
        unknown.stat("ns", HEX),
        (e: Error) => e instanceof BackendRequestError && e.status === 403,
      );
      const missing = backend({ bucket: "no-such-bucket" });
      await assert.rejects(missing.ready(), /bucket no-such-bucket does not exist/);
      await assert.rejects(
        missing.upload("ns", HEX, new Uint8Array(10)),
        (e: Error) => e instanceof BackendRequestError && e.code === "NoSuchBucket",
      );
    }),
);

Deno.test("s3: error answers read as code and message, HEAD answers by status", () => {
  assert.deepEqual(
    describeS3Error(
      503,
      "<Error><Code>SlowDown</Code><Message>Reduce your rate &amp; retry.</Message></Error>",
    ),
    { code: "SlowDown", message: "Reduce your rate & retry." },
  );
  assert.equal(describeS3Error(403, "").code, "Forbidden");
  assert.throws(
    () =>
      new S3Backend({
        region: "r",
        bucket: "bucket",
        credentials: { accessKeyId: "a", secretAccessKey: "s" },
        rootDirectory: "rel/",
      }),
    /absolute/,
  );
  assert.throws(
    () =>
      new S3Backend({
        region: "r",
        bucket: "bucket",
        credentials: { accessKeyId: "a", secretAccessKey: "s" },
        uploadPartSize: 1024,
      }),
    /at least 5MB/,
  );
  const vhost = new S3Backend({
    region: "eu-west-1",
    bucket: "bucket",
    rootDirectory: "/x/",
    namePath: "sharded_docker_blob",
    credentials: { accessKeyId: "a", secretAccessKey: "s" },
  });
  assert.equal(vhost.objectKey(HEX), `x/docker/registry/v2/blobs/sha256/3e/${HEX}/data`);
});

externalTest(
  "s3: a sweep aborts old multipart uploads no write-back will resume, within its bound",
  () =>
    withS3(async (s3, backend) => {
      const names = ["a1", "a2", "a3", "kept"];
      for (const name of names) await s3.createMultipartUpload("blobs", `kraken/${name}`);
      // Outside the name layout: never touched.
      await s3.createMultipartUpload("blobs", "elsewhere/x");
      // The store's clock decides the age (moto reports one fixed start time for every upload).
      const initiated = Date.parse((await s3.listMultipartUploads("blobs"))[0].initiated);
      const young = backend({ now: () => initiated + 3_600_000 });
      assert.deepEqual(young.uploadSweep, {
        intervalMs: 3_600_000,
        minAgeMs: 86_400_000,
        max: 100,
      });
      // An hour old: too young for the default day.
      assert.deepEqual(await young.sweepUploads(() => false), {
        found: 4,
        aborted: 0,
        kept: 4,
        limited: false,
      });
      const later = () => initiated + 2 * 86_400_000;
      const bounded = backend({ now: later, uploadSweep: { max: 2 } });
      assert.deepEqual(await bounded.sweepUploads((name) => name === "kept"), {
        found: 4,
        aborted: 2,
        kept: 2,
        limited: true,
      });
      assert.deepEqual((await s3.listMultipartUploads("blobs")).map((u) => u.key), [
        "elsewhere/x",
        "kraken/a3",
        "kraken/kept",
      ]);
      assert.deepEqual(await bounded.sweepUploads((name) => name === "kept"), {
        found: 2,
        aborted: 1,
        kept: 1,
        limited: false,
      });
      assert.deepEqual((await s3.listMultipartUploads("blobs")).map((u) => u.key), [
        "elsewhere/x",
        "kraken/kept",
      ]);
    }),
);
