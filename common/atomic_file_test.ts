import assert from "node:assert/strict";
import { DEFAULT_TEMP_PREFIX, removeTempFiles, writeAll, writeFileAtomic } from "./atomic_file.ts";
import { withTempDir } from "../tests/harness/fs.ts";

const withDir = (fn: (dir: string) => Promise<void>) =>
  withTempDir(fn, { prefix: "kraken-atomic-file-test-" });

const names = async (dir: string) => (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);

Deno.test("writeFileAtomic writes strings, bytes and streams, replacing the old content", () =>
  withDir(async (dir) => {
    const path = `${dir}/value`;
    await writeFileAtomic(path, "first");
    assert.equal(await Deno.readTextFile(path), "first");
    await writeFileAtomic(path, new TextEncoder().encode("second"));
    assert.equal(await Deno.readTextFile(path), "second");
    await writeFileAtomic(path, new Blob(["th", "ird"]).stream());
    assert.equal(await Deno.readTextFile(path), "third");
    assert.deepEqual(await names(dir), ["value"], "no temporary file is left");
  }));

Deno.test("writeFileAtomic creates the target's directory and uses the given temp directory", () =>
  withDir(async (dir) => {
    await Deno.mkdir(`${dir}/tmp`);
    await writeFileAtomic(`${dir}/a/b/value`, "x", { tempDir: `${dir}/tmp`, tempPrefix: "meta-" });
    assert.equal(await Deno.readTextFile(`${dir}/a/b/value`), "x");
    assert.deepEqual(await names(`${dir}/tmp`), []);
  }));

Deno.test("writeFileAtomic: a failing stream leaves the old file and no temp file", () =>
  withDir(async (dir) => {
    const path = `${dir}/value`;
    await writeFileAtomic(path, "old");
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode("partial"));
        c.error(new Error("client went away"));
      },
    });
    await assert.rejects(writeFileAtomic(path, body), /client went away/);
    assert.equal(await Deno.readTextFile(path), "old");
    assert.deepEqual(await names(dir), ["value"]);
  }));

Deno.test("writeFileAtomic: a failed rename keeps the target and cancels an unread stream", () =>
  withDir(async (dir) => {
    // The target is a non-empty directory: the rename fails after the temp file was written.
    await Deno.mkdir(`${dir}/value/inner`, { recursive: true });
    await assert.rejects(writeFileAtomic(`${dir}/value`, "x"));
    assert.deepEqual((await names(dir)).sort(), ["value"]);
    assert.deepEqual(await names(`${dir}/value`), ["inner"]);

    // The temp directory cannot be created (a file is in the way): the stream is never read.
    await Deno.writeTextFile(`${dir}/blocker`, "");
    let cancelled: unknown;
    const body = new ReadableStream<Uint8Array>({
      cancel(reason) {
        cancelled = reason;
      },
    });
    await assert.rejects(writeFileAtomic(`${dir}/other`, body, { tempDir: `${dir}/blocker/t` }));
    assert.ok(cancelled instanceof Error, "the unread body was cancelled with the error");
  }));

Deno.test("writeFileAtomic: concurrent writers never produce a torn file", () =>
  withDir(async (dir) => {
    const path = `${dir}/value`;
    const values = Array.from({ length: 20 }, (_, i) => String(i).repeat(10_000));
    await Promise.all(values.map((v) => writeFileAtomic(path, v)));
    assert.ok(values.includes(await Deno.readTextFile(path)));
    assert.deepEqual(await names(dir), ["value"]);
  }));

Deno.test("removeTempFiles deletes only files with the prefix", () =>
  withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/${DEFAULT_TEMP_PREFIX}left-by-crash`, "half");
    await Deno.writeTextFile(`${dir}/meta-x`, "half");
    await Deno.writeTextFile(`${dir}/kept`, "whole");
    await removeTempFiles(dir);
    assert.deepEqual((await names(dir)).sort(), ["kept", "meta-x"]);
    await removeTempFiles(dir, "meta-");
    assert.deepEqual(await names(dir), ["kept"]);
  }));

Deno.test("writeAll writes every byte even when one write is short", async () => {
  const chunks: number[] = [];
  const bytes = new Uint8Array(10).map((_, i) => i);
  const written: number[] = [];
  // A file whose write takes at most 3 bytes at a time.
  const file = {
    write(p: Uint8Array) {
      const n = Math.min(3, p.length);
      written.push(...p.subarray(0, n));
      chunks.push(n);
      return Promise.resolve(n);
    },
  } as unknown as Deno.FsFile;
  await writeAll(file, bytes);
  assert.deepEqual(written, [...bytes]);
  assert.deepEqual(chunks, [3, 3, 3, 1]);
});
