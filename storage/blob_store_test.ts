import assert from "node:assert/strict";
import {
  BlobExistsError,
  BlobNotFoundError,
  BlobStore,
  ChunkLengthError,
  ChunkRangeError,
  DigestMismatchError,
  UploadLimitError,
  UploadNotFoundError,
} from "./blob_store.ts";
import { type Digest, digestOfBytes } from "./digest.ts";
import { withTempDir } from "../tests/harness/fs.ts";
import { concatBytes } from "../common/bytes.ts";

const enc = new TextEncoder();

function withStore(fn: (store: BlobStore, root: string) => Promise<void>): Promise<void> {
  return withTempDir(async (root) => fn(await BlobStore.open({ root }), root), {
    prefix: "blobstore-test-",
  });
}

function bytesOf(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function listDir(path: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(path)) names.push(e.name);
  return names.sort();
}

async function upload(store: BlobStore, data: Uint8Array): Promise<string> {
  const uid = await store.createUpload();
  await store.writeChunk(uid, 0, data.length, data);
  return uid;
}

Deno.test("upload happy path: stage, commit, read back", () =>
  withStore(async (store) => {
    const data = enc.encode("hello");
    const d = await digestOfBytes(data);
    const uid = await store.createUpload();
    assert.match(uid, /^[0-9a-f-]{36}$/);
    await store.writeChunk(uid, 0, 5, data);
    assert.deepEqual(await store.statUpload(uid), { size: 5 });
    assert.equal(await store.has(d), false);
    await store.commitUpload(uid, d);
    assert.equal(await store.has(d), true);
    assert.deepEqual(await store.stat(d), { size: 5 });
    const blob = await store.open(d);
    assert.equal(blob.size, 5);
    assert.deepEqual(await readAll(blob.stream), data);
    assert.deepEqual((await store.list()).map(String), [d.toString()]);
    await assert.rejects(store.statUpload(uid), UploadNotFoundError); // session ended
  }));

Deno.test("chunks written out of order, as streams and byte arrays", () =>
  withStore(async (store) => {
    const data = bytesOf(300_000);
    const d = await digestOfBytes(data);
    const uid = await store.createUpload();
    const cuts = [0, 100_000, 200_000, 300_000];
    // Last chunk first, then the first as a multi-part stream, then the middle.
    await store.writeChunk(uid, cuts[2], cuts[3], data.subarray(cuts[2], cuts[3]));
    const first = data.subarray(cuts[0], cuts[1]);
    await store.writeChunk(
      uid,
      cuts[0],
      cuts[1],
      ReadableStream.from([
        first.subarray(0, 7),
        first.subarray(7, 60_000),
        first.subarray(60_000),
      ]),
    );
    assert.deepEqual(await store.readUploadRange(uid, 0, 10), data.subarray(0, 10));
    await store.writeChunk(
      uid,
      cuts[1],
      cuts[2],
      ReadableStream.from([data.subarray(cuts[1], cuts[2])]),
    );
    await store.commitUpload(uid, d);
    assert.deepEqual(await readAll((await store.open(d)).stream), data);
  }));

Deno.test("digest mismatch: nothing enters the cache and the session ends", () =>
  withStore(async (store, root) => {
    const data = enc.encode("hello");
    const wrong = await digestOfBytes(enc.encode("world"));
    const uid = await upload(store, data);
    const err = await store.commitUpload(uid, wrong).catch((e) => e);
    assert.ok(err instanceof DigestMismatchError);
    assert.equal(err.expected.hex, wrong.hex);
    assert.equal(err.actual.hex, (await digestOfBytes(data)).hex);
    assert.equal(await store.has(wrong), false);
    assert.equal(await store.has(await digestOfBytes(data)), false);
    assert.deepEqual(await store.list(), []);
    await assert.rejects(store.statUpload(uid), UploadNotFoundError);
    assert.deepEqual(await listDir(`${root}/tmp`), []);
    assert.deepEqual(await listDir(`${root}/uploads`), []);
  }));

Deno.test("unknown or hostile upload ids give UploadNotFoundError", () =>
  withStore(async (store) => {
    const d = await digestOfBytes(enc.encode("x"));
    for (const uid of [crypto.randomUUID(), "../../etc/passwd", "", "A".repeat(36), "x\0"]) {
      await assert.rejects(store.writeChunk(uid, 0, 1, enc.encode("x")), UploadNotFoundError);
      await assert.rejects(
        store.writeChunk(uid, 0, 1, ReadableStream.from([enc.encode("x")])),
        UploadNotFoundError,
      );
      await assert.rejects(store.commitUpload(uid, d), UploadNotFoundError);
      await assert.rejects(store.abortUpload(uid), UploadNotFoundError);
      await assert.rejects(store.statUpload(uid), UploadNotFoundError);
      await assert.rejects(store.readUploadRange(uid, 0, 0), UploadNotFoundError);
      await assert.rejects(store.openUploadWriter(uid), UploadNotFoundError);
    }
  }));

Deno.test("an upload writer writes at any offset on one open file until the upload ends", () =>
  withStore(async (store) => {
    const data = bytesOf(9000);
    const d = await digestOfBytes(data);
    const uid = await store.createUpload();
    const writer = await store.openUploadWriter(uid);
    for (const offset of [-1, 0.5, Number.NaN, 2 ** 53]) {
      await assert.rejects(writer.write(offset, data.subarray(0, 1)), ChunkRangeError);
    }
    // Out of order, as a download's pieces land.
    for (const [s, e] of [[6000, 9000], [0, 3000], [3000, 6000]]) {
      await writer.write(s, data.subarray(s, e));
    }
    await writer.sync();
    assert.deepEqual(await store.readUploadRange(uid, 0, 9000), data);
    await store.commitUpload(uid, d);
    await assert.rejects(writer.write(0, data.subarray(0, 1)), UploadNotFoundError);
    writer.close();
    writer.close();
    await assert.rejects(writer.sync(), /writer is closed/);
    assert.deepEqual(await readAll((await store.open(d)).stream), data);

    const aborted = await store.createUpload();
    const late = await store.openUploadWriter(aborted);
    await store.abortUpload(aborted);
    await assert.rejects(late.write(0, data.subarray(0, 1)), UploadNotFoundError);
    late.close();
    assert.deepEqual(await listDir(`${store.root}/uploads`), []);
  }));

Deno.test("bad ranges and wrong body lengths are rejected", () =>
  withStore(async (store) => {
    const uid = await store.createUpload();
    const x = enc.encode("abc");
    for (const [s, e] of [[-1, 2], [3, 2], [0.5, 3], [0, Number.NaN], [0, 2 ** 53]]) {
      await assert.rejects(store.writeChunk(uid, s, e, x), ChunkRangeError);
    }
    assert.ok(new ChunkRangeError("x") instanceof RangeError);
    await assert.rejects(store.writeChunk(uid, 0, 4, x), ChunkLengthError); // short array
    await assert.rejects(store.writeChunk(uid, 0, 2, x), ChunkLengthError); // long array
    await assert.rejects(
      store.writeChunk(uid, 0, 4, ReadableStream.from([x])),
      /needs 4 bytes, body had 3/,
    );
    await assert.rejects(
      store.writeChunk(uid, 0, 2, ReadableStream.from([x])),
      /exceeds 2 bytes/,
    );
    await store.writeChunk(uid, 0, 0, new Uint8Array()); // empty chunk is fine
    await store.abortUpload(uid);
    await assert.rejects(store.statUpload(uid), UploadNotFoundError);
  }));

Deno.test("commit of a digest already cached gives BlobExistsError", () =>
  withStore(async (store) => {
    const data = enc.encode("dup");
    const d = await digestOfBytes(data);
    await store.commitUpload(await upload(store, data), d);
    const uid2 = await upload(store, data);
    await assert.rejects(store.commitUpload(uid2, d), BlobExistsError);
    await assert.rejects(store.statUpload(uid2), UploadNotFoundError);
    assert.deepEqual(await readAll((await store.open(d)).stream), data);
  }));

Deno.test("concurrent commits and putBlobs of one digest: one wins, content complete", () =>
  withStore(async (store, root) => {
    const data = bytesOf(200_000, 7);
    const d = await digestOfBytes(data);
    const uids = await Promise.all([1, 2, 3].map(() => upload(store, data)));
    const results = await Promise.allSettled(uids.map((uid) => store.commitUpload(uid, d)));
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    for (const r of results) {
      if (r.status === "rejected") assert.ok(r.reason instanceof BlobExistsError);
    }
    assert.deepEqual(await readAll((await store.open(d)).stream), data);

    const data2 = bytesOf(200_000, 9);
    const d2 = await digestOfBytes(data2);
    const stored = await Promise.all(
      [1, 2, 3, 4].map(() =>
        store.putBlob(d2, ReadableStream.from([data2.subarray(0, 1000), data2.subarray(1000)]))
      ),
    );
    assert.equal(stored.filter(Boolean).length, 1);
    assert.deepEqual(await readAll((await store.open(d2)).stream), data2);
    assert.deepEqual(await listDir(`${root}/tmp`), []);
    assert.deepEqual(await listDir(`${root}/uploads`), []);
  }));

Deno.test("the same uid committed twice at once: one succeeds, one finds no upload", () =>
  withStore(async (store) => {
    const data = enc.encode("twice");
    const d = await digestOfBytes(data);
    const uid = await upload(store, data);
    const [a, b] = await Promise.allSettled([
      store.commitUpload(uid, d),
      store.commitUpload(uid, d),
    ]);
    assert.equal(a.status, "fulfilled");
    assert.equal(b.status, "rejected");
    assert.ok(b.reason instanceof UploadNotFoundError);
  }));

Deno.test("commit waits for an in-flight chunk and refuses new chunks meanwhile", () =>
  withStore(async (store) => {
    const data = enc.encode("slow!");
    const d = await digestOfBytes(data);
    const uid = await store.createUpload();
    let feed!: ReadableStreamDefaultController<Uint8Array>;
    const slow = new ReadableStream<Uint8Array>({ start: (c) => void (feed = c) });
    const writing = store.writeChunk(uid, 0, 5, slow);
    await new Promise((r) => setTimeout(r, 10)); // let the write open the file and block
    const committing = store.commitUpload(uid, d);
    await assert.rejects(store.writeChunk(uid, 0, 1, enc.encode("x")), /being committed/);
    feed.enqueue(data);
    feed.close();
    await writing;
    await committing;
    assert.deepEqual(await readAll((await store.open(d)).stream), data);
  }));

Deno.test("reopening after a crash removes temp files; half-written blobs never appear", async () => {
  const root = await Deno.makeTempDir({ prefix: "blobstore-test-" });
  try {
    const store = await BlobStore.open({ root });
    const data = enc.encode("survivor");
    const d = await digestOfBytes(data);
    const kept = await upload(store, data);
    // What a crash can leave behind: a half-written putBlob and an upload claimed by a commit.
    await Deno.writeFile(`${root}/tmp/put-123`, data.subarray(0, 3));
    const claimed = await upload(store, enc.encode("claimed"));
    await Deno.rename(`${root}/uploads/${claimed}`, `${root}/tmp/commit-${claimed}`);
    assert.deepEqual(await store.list(), []);

    const reopened = await BlobStore.open({ root });
    assert.deepEqual(await listDir(`${root}/tmp`), []);
    assert.deepEqual(await reopened.list(), []);
    // Accepted upload sessions survive the restart and can still be committed.
    assert.deepEqual(await reopened.statUpload(kept), { size: data.length });
    await reopened.commitUpload(kept, d);
    assert.deepEqual(await reopened.readRange(d, 0, data.length), data);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("putBlob verifies, is a no-op when present, leaves nothing on mismatch", () =>
  withStore(async (store, root) => {
    const data = bytesOf(70_000);
    const d = await digestOfBytes(data);
    const wrong = await digestOfBytes(enc.encode("nope"));
    await assert.rejects(store.putBlob(wrong, ReadableStream.from([data])), DigestMismatchError);
    assert.deepEqual(await store.list(), []);
    assert.deepEqual(await listDir(`${root}/tmp`), []);
    assert.equal(await store.putBlob(d, data), true);
    let cancelled = false;
    const body = new ReadableStream({ cancel: () => void (cancelled = true) });
    assert.equal(await store.putBlob(d, body), false);
    assert.ok(cancelled);
  }));

Deno.test("readRange reads pieces and checks bounds", () =>
  withStore(async (store) => {
    const data = bytesOf(10_000);
    const d = await digestOfBytes(data);
    await store.putBlob(d, data);
    assert.deepEqual(await store.readRange(d, 0, 4096), data.subarray(0, 4096));
    assert.deepEqual(await store.readRange(d, 8192, 1808), data.subarray(8192));
    assert.deepEqual(await store.readRange(d, 10_000, 0), new Uint8Array());
    await assert.rejects(store.readRange(d, 8192, 1809), /past end/);
    await assert.rejects(store.readRange(d, -1, 1), RangeError);
    const missing = await digestOfBytes(enc.encode("missing"));
    await assert.rejects(store.readRange(missing, 0, 1), BlobNotFoundError);
    await assert.rejects(store.open(missing), BlobNotFoundError);
    assert.equal(await store.stat(missing), null);
  }));

Deno.test("readRange and readUploadRange fill a caller's buffer when given one", () =>
  withStore(async (store) => {
    const data = bytesOf(10_000);
    const d = await digestOfBytes(data);
    await store.putBlob(d, data);
    const into = new Uint8Array(4096).fill(0xee);
    const got = await store.readRange(d, 1000, 3000, into);
    assert.equal(got.buffer, into.buffer);
    assert.equal(got.byteOffset, 0);
    assert.deepEqual(got, data.subarray(1000, 4000));
    assert.equal(into[3000], 0xee, "bytes past the range are left alone");
    await assert.rejects(store.readRange(d, 0, 5000, into), /cannot take 5000 bytes/);
    const uid = await upload(store, data.subarray(0, 6000));
    const part = await store.readUploadRange(uid, 2000, 4000, into);
    assert.equal(part.buffer, into.buffer);
    assert.deepEqual(part, data.subarray(2000, 6000));
  }));

Deno.test("commit with the writer's own digest: a match is cached, a mismatch is refused", () =>
  withStore(async (store) => {
    const data = bytesOf(20_000);
    const d = await digestOfBytes(data);
    const uid = await upload(store, data);
    await store.commitUpload(uid, d, { hashed: d });
    assert.deepEqual(await readAll((await store.open(d)).stream), data);

    const other = bytesOf(20_000, 2);
    const claimed = await digestOfBytes(other);
    const uid2 = await upload(store, data);
    await assert.rejects(
      store.commitUpload(uid2, claimed, { hashed: d }),
      DigestMismatchError,
    );
    assert.equal(await store.has(claimed), false);
    await assert.rejects(store.openUploadWriter(uid2), UploadNotFoundError);
  }));

Deno.test("metadata round trip, atomic overwrite, removed with the blob", () =>
  withStore(async (store) => {
    const data = enc.encode("meta");
    const d = await digestOfBytes(data);
    await assert.rejects(store.setMetadata(d, "persist", new Uint8Array()), BlobNotFoundError);
    await store.putBlob(d, data);
    assert.equal(await store.getMetadata(d, "metainfo"), null);
    await store.setMetadata(d, "metainfo", enc.encode("v1"));
    await store.setMetadata(d, "metainfo", enc.encode("v2"));
    await store.setMetadata(d, "persist", new Uint8Array());
    assert.deepEqual(await store.getMetadata(d, "metainfo"), enc.encode("v2"));
    assert.deepEqual(await store.getMetadata(d, "persist"), new Uint8Array());
    assert.deepEqual((await store.list()).map((x: Digest) => x.hex), [d.hex]);
    assert.equal(await store.deleteMetadata(d, "persist"), true);
    assert.equal(await store.deleteMetadata(d, "persist"), false);
    assert.equal(await store.getMetadata(d, "persist"), null);
    for (const key of ["", "../x", "a/b", ".hidden", "UPPER", "x".repeat(65)]) {
      await assert.rejects(store.setMetadata(d, key, new Uint8Array()), TypeError, key);
      await assert.rejects(store.getMetadata(d, key), TypeError, key);
    }
    assert.equal(await store.delete(d), true);
    assert.equal(await store.delete(d), false);
    await store.putBlob(d, data);
    assert.equal(await store.getMetadata(d, "metainfo"), null); // did not outlive the blob
  }));

Deno.test("an open stream keeps reading after delete", () =>
  withStore(async (store) => {
    const data = bytesOf(50_000);
    const d = await digestOfBytes(data);
    await store.putBlob(d, data);
    const blob = await store.open(d);
    await store.delete(d);
    assert.equal(await store.has(d), false);
    assert.deepEqual(await readAll(blob.stream), data);
  }));

Deno.test("pruneUploads removes only stale sessions", () =>
  withStore(async (store, root) => {
    const stale = await store.createUpload();
    const fresh = await store.createUpload();
    const old = new Date(Date.now() - 3_600_000);
    await Deno.utime(`${root}/uploads/${stale}`, old, old);
    assert.equal(await store.pruneUploads(60_000), 1);
    await assert.rejects(store.statUpload(stale), UploadNotFoundError);
    assert.deepEqual(await store.statUpload(fresh), { size: 0 });
  }));

Deno.test("truncateUpload cuts a session back to the bytes it had", () =>
  withStore(async (store) => {
    const uid = await upload(store, bytesOf(100));
    await store.writeChunk(uid, 100, 150, bytesOf(50, 2));
    await store.truncateUpload(uid, 100);
    assert.deepEqual(await store.statUpload(uid), { size: 100 });
    await store.writeChunk(uid, 100, 110, bytesOf(10, 3));
    const whole = new Uint8Array([...bytesOf(100), ...bytesOf(10, 3)]);
    await store.commitUpload(uid, await digestOfBytes(whole));
    await assert.rejects(store.truncateUpload(uid, 0), UploadNotFoundError);
    await assert.rejects(store.truncateUpload("nope", 0), UploadNotFoundError);
  }));

Deno.test("open uploads are counted across reopen, commit, abort and prune; createUpload caps them", () =>
  withStore(async (store, root) => {
    const data = enc.encode("counted");
    const committed = await upload(store, data);
    const aborted = await store.createUpload();
    const stale = await store.createUpload();
    assert.equal(store.openUploads, 3);
    await assert.rejects(store.createUpload({ maxOpen: 3 }), (error: unknown) => {
      assert.ok(error instanceof UploadLimitError);
      assert.equal(error.limit, 3);
      return true;
    });
    assert.equal((await BlobStore.open({ root })).openUploads, 3, "a restart finds them");
    await store.commitUpload(committed, await digestOfBytes(data));
    await store.abortUpload(aborted);
    const old = new Date(Date.now() - 3_600_000);
    await Deno.utime(`${root}/uploads/${stale}`, old, old);
    assert.equal(await store.pruneUploads(60_000), 1);
    assert.equal(store.openUploads, 0);
    const [a, b] = await Promise.allSettled([
      store.createUpload({ maxOpen: 1 }),
      store.createUpload({ maxOpen: 1 }),
    ]);
    assert.equal(a.status, "fulfilled");
    assert.equal(b.status, "rejected", "concurrent starts cannot both pass the cap");
  }));

Deno.test("open with a range streams only those bytes; size stays the blob's", () =>
  withStore(async (store) => {
    const data = bytesOf(3 * 1024 * 1024 + 17);
    const d = await digestOfBytes(data);
    await store.putBlob(d, data);
    const blob = await store.open(d, { offset: 1_500_000, length: 2_000_000 });
    assert.equal(blob.size, data.length);
    assert.deepEqual(await readAll(blob.stream), data.slice(1_500_000, 3_500_000));
    const tail = await store.open(d, { offset: data.length - 5, length: 5 });
    assert.deepEqual(await readAll(tail.stream), data.slice(-5));
  }));

Deno.test("open streams in 1 MiB chunks, whole or ranged", () =>
  withStore(async (store) => {
    const MIB = 1 << 20;
    const data = bytesOf(3 * MIB + 5);
    const d = await digestOfBytes(data);
    await store.putBlob(d, data);
    const sizes = async (stream: ReadableStream<Uint8Array>, out: Uint8Array[] = []) => {
      for await (const chunk of stream) out.push(chunk);
      return out;
    };
    const whole = await sizes((await store.open(d)).stream);
    assert.deepEqual(whole.map((c) => c.length), [MIB, MIB, MIB, 5]);
    assert.deepEqual(concatBytes(whole), data);
    const part = await sizes((await store.open(d, { offset: 100, length: 2 * MIB + 1 })).stream);
    assert.deepEqual(part.map((c) => c.length), [MIB, MIB, 1]);
    assert.deepEqual(concatBytes(part), data.subarray(100, 100 + 2 * MIB + 1));
    // A cancelled stream releases its file.
    const open = await store.open(d);
    const reader = open.stream.getReader();
    await reader.read();
    await reader.cancel();
  }));

Deno.test("source re-opens a cached blob at any range, each open independent", () =>
  withStore(async (store) => {
    const data = bytesOf(3 * 1024 * 1024 + 17);
    const d = await digestOfBytes(data);
    await store.putBlob(d, data);
    const source = await store.source(d);
    assert.equal(source.size, data.length);
    assert.deepEqual(await readAll(await source.open()), data);
    const [a, b] = await Promise.all([source.open(5, 1_500_000), source.open(2_000_000)]);
    assert.deepEqual(await readAll(b), data.subarray(2_000_000));
    assert.deepEqual(await readAll(a), data.subarray(5, 1_500_000));
    assert.deepEqual(await readAll(await source.open(data.length)), new Uint8Array());
    await assert.rejects(source.open(0, data.length + 1), RangeError);
    await assert.rejects(source.open(10, 9), RangeError);
    const missing = await digestOfBytes(enc.encode("missing"));
    await assert.rejects(store.source(missing), BlobNotFoundError);
  }));
